"""Adapter files: safetensors tensors + ``str -> str`` metadata, validated on load.

Metadata written: ``format`` (:data:`FORMAT`), ``format_version``, ``kind``, ``backbone`` (the
fingerprint of the model it was trained on) and what training recorded (``objective`` as spec JSON,
``prompt``, ``steps``, ``lr``, ``seed``, ``frames``, ``latent_height``, ``latent_width``,
``pack_version``, ...). Files are written under a temporary name and linked into place; an existing
file is never overwritten. Only safetensors are read (no pickle).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from ..errors import InputError
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
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != SUFFIX:
        raise InputError(input_name, f"{path.name!r} must end in {SUFFIX}")
    if path.exists():
        raise InputError(input_name, f"{path.name!r} already exists; choose another name (adapter files are "
                                     "never overwritten)")
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in adapter.to_tensors().items()}
    metadata = {**adapter.metadata, "format": FORMAT, "format_version": str(FORMAT_VERSION), "kind": adapter.kind}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        save_file(tensors, str(temporary), metadata)
        _publish(temporary, path, input_name)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _publish(temporary: Path, path: Path, input_name: str) -> None:
    """Give the finished temporary file its name without replacing a file that appeared meanwhile."""
    try:
        os.link(temporary, path)  # atomic, and fails if ``path`` exists
    except FileExistsError:
        raise InputError(input_name, f"{path.name!r} already exists; choose another name") from None
    except OSError:  # a file system without hard links
        if path.exists():
            raise InputError(input_name, f"{path.name!r} already exists; choose another name") from None
        os.replace(temporary, path)


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
