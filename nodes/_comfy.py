"""The one place where the pack touches ComfyUI's Python API.

Everything ComfyUI-specific the nodes need (the V3 schema, folders, progress, cancellation) is
imported or wrapped here, so that a change of ComfyUI's API is a change of this file.
"""

import os

import comfy.model_management
import comfy.utils
import folder_paths
from comfy_api.latest import ComfyExtension, io, ui

__all__ = ["ComfyExtension", "io", "ui", "PREFIX", "CATEGORY", "node_id", "custom_type",
           "resolve_input_file", "list_input_files", "Progress"]

PREFIX = "MTX_"
"""Prefix of every node id and custom type of the pack (kept forever: saved graphs use it)."""

CATEGORY = "motion transfer"


def node_id(name: str) -> str:
    return PREFIX + name


def custom_type(name: str) -> type:
    """A custom socket type carrying the pack prefix, e.g. ``MTX_VIDEO_INFO``."""
    return io.Custom(PREFIX + name)


def resolve_input_file(name: str) -> tuple[str, str, str]:
    """Split ComfyUI's annotated name (``clip.mp4 [output]``) into (folder, name inside it, kind).

    ``kind`` is "input", "output" or "temp", for messages that should not show server paths.
    """
    plain, base = folder_paths.annotated_filepath(name)
    if base is None:
        return folder_paths.get_input_directory(), plain, "input"
    kind = "output" if base == folder_paths.get_output_directory() else "temp"
    return base, plain, kind


def list_input_files(extensions: frozenset[str]) -> list[str]:
    """Files directly inside the input folder whose extension is in ``extensions`` (sorted)."""
    folder = folder_paths.get_input_directory()
    if not os.path.isdir(folder):
        return []
    return sorted(
        name for name in os.listdir(folder)
        if os.path.isfile(os.path.join(folder, name)) and os.path.splitext(name)[1].lower() in extensions
    )


class Progress:
    """Node progress bar that also honours ComfyUI's cancel button.

    Pass an instance as a ``progress(done, total)`` callback to a motion_core loop: each call moves
    the bar and raises ComfyUI's interrupt exception if the user cancelled.
    """

    def __init__(self, total: int | None = None):
        self._bar = comfy.utils.ProgressBar(total or 1)

    def __call__(self, done: int, total: int | None = None) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        self._bar.update_absolute(done, max(total or 0, done, 1))
