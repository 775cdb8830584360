"""Nodes that keep trained motions as files in ``models/motion_adapters``."""

import os

from ..motion_core.adapters import MotionAdapter, adapter_writer, load_adapter
from ..motion_core.errors import InputError
from ..motion_core.files import write_numbered_file
from ._comfy import (ADAPTER_FOLDER, CATEGORY, adapter_path, adapter_save_folder, file_fingerprint, input_problem, io,
                     list_adapters, node_id, ui)
from .types import Adapter


class SaveMotionAdapter(io.ComfyNode):
    """Save an adapter under the next free number; an existing file is never replaced."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("SaveMotionAdapter"),
            display_name="Save Motion Adapter",
            category=CATEGORY,
            description=f"Saves the trained motion as a small .safetensors file in models/{ADAPTER_FOLDER}, named "
                        "<prefix>_00001.safetensors with the next free number (files are never overwritten).",
            inputs=[
                Adapter.Input("adapter", tooltip="From Train Motion Adapter."),
                io.String.Input("filename_prefix", default="motion",
                                tooltip=f"File name before the number; may include subfolders of "
                                        f"models/{ADAPTER_FOLDER} ('cars/turn')."),
            ],
            outputs=[io.String.Output("adapter_name", display_name="adapter_name",
                                      tooltip="The saved name, as Load Motion Adapter lists it.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, adapter, filename_prefix) -> io.NodeOutput:
        if not isinstance(adapter, MotionAdapter):
            raise InputError("adapter", "Save Motion Adapter saves one adapter; connect Train or Load Motion Adapter "
                                        "(a stack from Combine Motion Adapters is not saved)")
        folder = adapter_save_folder()
        path = write_numbered_file(folder, filename_prefix, ".safetensors", adapter_writer(adapter))
        name = os.path.relpath(path, folder).replace(os.sep, "/")
        return io.NodeOutput(name, ui=ui.PreviewText(f"saved {name}"))


class LoadMotionAdapter(io.ComfyNode):
    """Load an adapter file saved by Save Motion Adapter (or shared by someone)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("LoadMotionAdapter"),
            display_name="Load Motion Adapter",
            category=CATEGORY,
            description=f"Loads a motion adapter from models/{ADAPTER_FOLDER}. Use it with the model family and "
                        "size it was trained on.",
            inputs=[
                io.Combo.Input("adapter_name", options=list_adapters(),
                               tooltip=f"A .safetensors adapter in models/{ADAPTER_FOLDER}."),
            ],
            outputs=[Adapter.Output("adapter", display_name="adapter", tooltip="The motion, for Generate Video.")],
        )

    @classmethod
    def validate_inputs(cls, adapter_name):
        return input_problem(lambda: adapter_path(adapter_name))

    @classmethod
    def fingerprint_inputs(cls, adapter_name):
        return file_fingerprint(lambda: [adapter_path(adapter_name)])

    @classmethod
    def execute(cls, adapter_name) -> io.NodeOutput:
        return io.NodeOutput(load_adapter(adapter_path(adapter_name), input_name="adapter_name"))


NODES = [SaveMotionAdapter, LoadMotionAdapter]
