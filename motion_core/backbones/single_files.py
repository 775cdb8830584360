"""Reading the single-file checkpoints users keep in ComfyUI's model folders, safely.

Tensors come from ``.safetensors`` files, or from pickle-format checkpoints read with
``weights_only`` (never pickled code). What a file is can be told from its safetensors header alone
(names, dtypes, shapes), without reading a weight: :func:`safetensors_header`. GGUF files are
refused by name (:func:`refuse_gguf`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError


GGUF = ".gguf"
"""The suffix of GGUF files (ComfyUI-GGUF's quantised weights, from llama.cpp's format)."""


def refuse_gguf(path: Path, input_name: str) -> None:
    """Refuse a GGUF file by name, saying what to choose instead."""
    if Path(path).suffix.lower() == GGUF:
        raise InputError(input_name, f"{Path(path).name!r} is a GGUF file (quantised weights for ComfyUI-GGUF), which "
                                     "this pack does not load; choose the model's .safetensors file (fp16, bf16, or "
                                     "fp8: fp8_e4m3fn, fp8_scaled)")


def read_state_dict(path: Path, input_name: str) -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` or a pickle-format checkpoint (read with ``weights_only``)."""
    path = Path(path)
    refuse_gguf(path, input_name)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError) as err:
            raise InputError(input_name, f"{path.name!r} is not a readable safetensors file ({err})") from err
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError… for files it refuses
        raise InputError(input_name, f"{path.name!r} could not be read safely ({str(err).splitlines()[0][:200]}); "
                                     "only tensors are loaded from .ckpt files, never pickled code — early "
                                     "v3_sd15_mm.ckpt downloads hold a pickled config object: download the file "
                                     "again or use its .safetensors version") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(input_name, f"{path.name!r} does not hold a dictionary of tensors")
    return state


def tensor_names(path: Path, input_name: str) -> list[str]:
    """The tensor names of a checkpoint file (a safetensors header only; a ``.ckpt`` memory-mapped)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return list(safetensors_header(path, input_name))
    return list(read_state_dict(path, input_name))


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as a safetensors header describes it: ``dtype`` as safetensors writes it
    (``"F16"``, ``"BF16"``, ``"F8_E4M3"``, ``"U8"``…) and ``shape``."""

    dtype: str
    shape: tuple[int, ...]


def safetensors_header(path: Path, input_name: str) -> dict[str, TensorInfo]:
    """Every tensor's name, dtype and shape, from the file's header (no weight is read)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    refuse_gguf(path, input_name)
    try:
        with safe_open(path, framework="pt") as handle:
            return {name: TensorInfo(handle.get_slice(name).get_dtype(), tuple(handle.get_slice(name).get_shape()))
                    for name in handle.keys()}
    except (SafetensorError, OSError) as err:
        raise InputError(input_name, f"{path.name!r} is not a readable safetensors file ({err})") from err
