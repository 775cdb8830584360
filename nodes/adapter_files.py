"""Nodes that keep trained motions as files: the pack's own in ``models/motion_adapters``, and
AnimateDiff-Evolved motion LoRAs in ``models/animatediff_motion_lora``."""

import os

from ..motion_core.adapters import MotionAdapter, adapter_writer, load_adapter
from ..motion_core.adapters.ade import ade_writer, load_ade
from ..motion_core.adapters.comfy_lora import comfy_wan_writer
from ..motion_core.errors import InputError
from ..motion_core.files import write_numbered_file
from ._comfy import (ADAPTER_FOLDER, CATEGORY, LORA_FOLDER, MOTION_LORA_FOLDER, lora_save_folder, adapter_path, adapter_save_folder, file_fingerprint,
                     input_problem, io, list_adapters, list_motion_loras, motion_lora_path, motion_lora_save_folder,
                     node_id, ui)
from .types import Adapter, VideoModel


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
        folder = adapter_save_folder()
        path = write_numbered_file(folder, filename_prefix, ".safetensors",
                                   adapter_writer(_one_adapter(adapter, "Save Motion Adapter")))
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


def _one_adapter(adapter, node: str) -> MotionAdapter:
    if not isinstance(adapter, MotionAdapter):
        raise InputError("adapter", f"{node} takes one adapter; connect Train or Load Motion Adapter (a stack from "
                                    "Combine Motion Adapters is not saved)")
    return adapter


class ExportMotionLoRA(io.ComfyNode):
    """Write a LoRA adapter as a LoRA file other nodes load: AnimateDiff-Evolved's motion-LoRA format for
    an AnimateDiff model, ComfyUI's own LoRA format for a Wan model."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("ExportMotionLoRA"),
            display_name="Export Motion LoRA",
            category=CATEGORY,
            description=f"Saves a LoRA adapter as a LoRA file for plain ComfyUI workflows (<prefix>_00001.safetensors, "
                        f"never overwritten). Trained on AnimateDiff: a motion LoRA in models/{MOTION_LORA_FOLDER} "
                        "for AnimateDiff-Evolved's Load AnimateDiff LoRA node (the format carries the motion "
                        "modules' attention only: train with LoRA Options feed_forward off to export everything). "
                        f"Trained on Wan: a LoRA in models/{LORA_FOLDER} for ComfyUI's own Load LoRA nodes.",
            inputs=[
                Adapter.Input("adapter", tooltip="A LoRA adapter trained on an AnimateDiff or Wan model."),
                io.String.Input("filename_prefix", default="motion_lora",
                                tooltip=f"File name before the number; may include subfolders of the folder it "
                                        f"is saved in (models/{MOTION_LORA_FOLDER} or models/{LORA_FOLDER})."),
            ],
            outputs=[io.String.Output("lora_name", display_name="lora_name",
                                      tooltip="The saved name, as the loader that reads it lists it.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, adapter, filename_prefix) -> io.NodeOutput:
        adapter = _one_adapter(adapter, "Export Motion LoRA")
        if adapter.backbone.startswith("wan:"):
            write, left_out, folder = comfy_wan_writer(adapter), [], lora_save_folder()
        else:
            (write, left_out), folder = ade_writer(adapter), motion_lora_save_folder()
        path = write_numbered_file(folder, filename_prefix, ".safetensors", write)
        name = os.path.relpath(path, folder).replace(os.sep, "/")
        note = f"; {len(left_out)} feed-forward/spatial layers left out (the format has no place for them)" \
            if left_out else ""
        return io.NodeOutput(name, ui=ui.PreviewText(f"saved {name}{note}"))


class LoadMotionLoRA(io.ComfyNode):
    """Use an AnimateDiff-Evolved motion LoRA (from any trainer) as an adapter of the pack."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("LoadMotionLoRA"),
            display_name="Load Motion LoRA (AnimateDiff-Evolved)",
            category=CATEGORY,
            description=f"Loads a motion LoRA from models/{MOTION_LORA_FOLDER} (AnimateDiff-Evolved's format) as a "
                        "motion adapter for Generate Video, Invert Video or Combine Motion Adapters.",
            inputs=[
                VideoModel.Input("model", tooltip="The AnimateDiff model the LoRA is for."),
                io.Combo.Input("lora_name", options=list_motion_loras(),
                               tooltip=f"A .safetensors motion LoRA in models/{MOTION_LORA_FOLDER}."),
            ],
            outputs=[Adapter.Output("adapter", display_name="adapter", tooltip="The motion, for Generate Video.")],
        )

    @classmethod
    def validate_inputs(cls, lora_name):
        return input_problem(lambda: motion_lora_path(lora_name))

    @classmethod
    def fingerprint_inputs(cls, lora_name, **_):
        return file_fingerprint(lambda: [motion_lora_path(lora_name)])

    @classmethod
    def execute(cls, model, lora_name) -> io.NodeOutput:
        return io.NodeOutput(load_ade(motion_lora_path(lora_name), model.fingerprint, "lora_name"))


NODES = [SaveMotionAdapter, LoadMotionAdapter, ExportMotionLoRA, LoadMotionLoRA]
