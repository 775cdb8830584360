"""Adapter files: safetensors tensors + ``str -> str`` metadata, validated on load.

One format for every kind. Metadata written: ``format`` (:data:`FORMAT`), ``format_version``,
``kind``, ``backbone`` (``family:config-hash`` of the model it was trained on), ``options`` (the
kind's build options as JSON) and what training recorded (``objective`` as spec JSON, ``prompt``,
``steps``, ``lr``, ``seed``, ``frames``, ``latent_height``, ``latent_width``, ``width``,
``height``, ``precision``, ``pack_version``; ``timesteps`` as JSON when they were not drawn
uniformly, ``loss_weighting`` as JSON when the loss was weighted). Each kind's ``from_tensors`` checks its tensors
against the options (names, ranks, frame slots, pairs complete). Files are written with :func:`motion_core.files.write_new_file`: never
half-written, never over an existing file. Only safetensors are read (no pickle).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError
from ..files import write_new_file
from .base import ADAPTER_KINDS, MotionAdapter

FORMAT = "motion-transfer-adapter"
FORMAT_VERSION = 1
"""Version written by :func:`save_adapter`; :func:`load_adapter` reads every version up to it."""

SUFFIX = ".safetensors"


def save_adapter(adapter: MotionAdapter, path: str | os.PathLike, input_name: str = "filename") -> Path:
    """Write ``adapter`` to ``path`` (a new ``.safetensors`` file); return the path.

    Raises:
        InputError: naming ``input_name`` if the file exists or the name does not end in .safetensors.
    """
    path = Path(path)
    if path.suffix != SUFFIX:
        raise InputError(input_name, f"{path.name!r} must end in {SUFFIX}")
    return write_new_file(path, adapter_writer(adapter), input_name)


def adapter_writer(adapter: MotionAdapter) -> Callable[[Path], None]:
    """``write(path)`` writing ``adapter``'s file, for :mod:`motion_core.files`' writers.

    The tensors are taken (to the CPU) now, so the file holds the adapter as it is at this call.
    """
    from safetensors.torch import save_file

    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in adapter.to_tensors().items()}
    metadata = {**adapter.metadata, "format": FORMAT, "format_version": str(FORMAT_VERSION), "kind": adapter.kind}
    return lambda temporary: save_file(tensors, str(temporary), metadata)


def load_adapter(path: str | os.PathLike, backbone: str = "", input_name: str = "adapter") -> MotionAdapter:
    """Read an adapter file written by :func:`save_adapter`.

    Args:
        path: a ``.safetensors`` file (resolve user names with ``motion_core.paths.resolve_inside``).
        backbone: the fingerprint of the model it will be used with; ``""`` skips the check.

    Raises:
        InputError: naming ``input_name`` for a file that is not safetensors, is corrupt, is not a
            motion adapter, has an unknown kind or version, or was trained on another model.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    name = path.name
    if path.suffix != SUFFIX:
        raise InputError(input_name, f"{name!r} is not a {SUFFIX} file; only safetensors adapter files are loaded")
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
            tensors = {key: file.get_tensor(key) for key in file.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise InputError(input_name, f"{name!r} could not be read as safetensors (corrupt or truncated?): "
                                     f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    if metadata.get("format") != FORMAT:
        raise InputError(input_name, f"{name!r} is a safetensors file but not a motion adapter (its metadata has no "
                                     f"format {FORMAT!r}); choose a file saved by Save Motion Adapter")
    version = metadata.get("format_version", "")
    if not version.isdigit() or not 1 <= int(version) <= FORMAT_VERSION:
        raise InputError(input_name, f"{name!r} has format version {version!r}; this pack reads versions 1 to "
                                     f"{FORMAT_VERSION} (update the pack?)")
    kind = metadata.get("kind", "")
    if kind not in ADAPTER_KINDS:
        known = ", ".join(sorted(ADAPTER_KINDS))
        raise InputError(input_name, f"{name!r} holds an adapter of kind {kind or '(missing)'!r}, which this pack does "
                                     f"not know (known: {known}; update the pack?)")
    meta = {key: value for key, value in metadata.items() if key not in ("format", "format_version", "kind")}
    adapter = ADAPTER_KINDS[kind].from_tensors(tensors, meta)
    adapter.check_backbone(backbone, input_name)
    return adapter
