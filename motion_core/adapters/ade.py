"""Motion LoRAs in AnimateDiff-Evolved's format: export a temporal LoRA trained here, import one made elsewhere.

The format (what ADE reads, from its loader's source): safetensors with, for every adapted
attention projection of a motion module, a pair

    ``<block>.motion_modules.<j>.temporal_transformer.transformer_blocks.<k>.attention_blocks.<0|1>
    .processor.<to_q|to_k|to_v|to_out>_lora.<down|up>.weight``

with ``down`` ``(r, in)`` and ``up`` ``(out, r)``; ADE adds ``strength · up @ down`` to the weight and
reads no alpha, rank or other key (any key that is not half of such a pair breaks its loader).
``attention_blocks.0/1`` are diffusers' ``attn1/attn2``, ``to_out`` its ``to_out.0``.

So an export bakes the LoRA scale into ``up`` (``up = B · alpha / r``, ``down = A``) and carries the
attention projections only: feed-forward LoRAs (which the pack trains by default, as MotionDirector)
have no place in it and are reported as left out. An import gives a temporal LoRA with
``alpha = r`` (scale 1), no dropout, attention only.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from ..errors import InputError
from ..files import write_new_file
from .base import options_metadata
from .lora import LoRAAdapter

ADE_KEY = re.compile(
    r"(?P<module>(?:down_blocks\.\d+|up_blocks\.\d+|mid_block)\.motion_modules\.\d+)\.temporal_transformer\."
    r"transformer_blocks\.(?P<block>\d+)\.attention_blocks\.(?P<slot>[01])\.processor\."
    r"(?P<linear>to_q|to_k|to_v|to_out)_lora\.(?P<half>down|up)\.weight")
PACK_LAYER = re.compile(
    r"temporal\.(?P<module>(?:down_blocks\.\d+|up_blocks\.\d+|mid_block)\.motion_modules\.\d+)\."
    r"transformer_blocks\.(?P<block>\d+)\.attn(?P<slot>[12])\.(?P<linear>to_q|to_k|to_v|to_out\.0)")
"""A temporal LoRA layer of an AnimateDiff motion module, as :class:`LoRAAdapter` names it."""


def to_ade(adapter: LoRAAdapter) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``(tensors, left_out)``: the adapter's motion-module attention LoRAs in ADE's keys (fp32, scale
    baked in) and the names of its layers the format cannot carry (feed-forward, spatial).

    Raises:
        InputError: for an adapter that is not a LoRA, or has no AnimateDiff motion-module attention.
    """
    if not isinstance(adapter, LoRAAdapter):
        raise InputError("adapter", f"only LoRA adapters can be exported as motion LoRAs; this one is "
                                    f"{getattr(adapter, 'kind', type(adapter).__name__)} (train with parameterisation "
                                    "lora)")
    scale = adapter.options["alpha"] / adapter.options["rank"]
    tensors, left_out = {}, []
    for name, a, b in zip(adapter.names, adapter.lora_A, adapter.lora_B):
        match = PACK_LAYER.fullmatch(name)
        if match is None:
            left_out.append(name)
            continue
        linear = match["linear"].removesuffix(".0")
        key = (f"{match['module']}.temporal_transformer.transformer_blocks.{match['block']}.attention_blocks."
               f"{int(match['slot']) - 1}.processor.{linear}_lora")
        tensors[f"{key}.down.weight"] = a.detach().float().cpu().contiguous()
        tensors[f"{key}.up.weight"] = (b.detach().float() * scale).cpu().contiguous()
    if not tensors:
        raise InputError("adapter", "this LoRA has no AnimateDiff motion-module attention layers (it was trained on "
                                    f"{adapter.backbone or 'another model'}); motion LoRAs are for AnimateDiff models")
    return tensors, left_out


def from_ade(tensors: dict[str, torch.Tensor], backbone: str = "", input_name: str = "lora_name") -> LoRAAdapter:
    """A temporal :class:`LoRAAdapter` (``alpha = r``) from an ADE motion LoRA's tensors.

    Raises:
        InputError: naming ``input_name`` for keys that are not down/up pairs of motion-module
            attention projections, incomplete pairs, or ranks that differ.
    """
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        match = ADE_KEY.fullmatch(key)
        if match is None or tensor.ndim != 2 or not tensor.is_floating_point():
            raise InputError(input_name, f"tensor {key!r} {tuple(tensor.shape)} is not part of an AnimateDiff motion "
                                         "LoRA (expected '…motion_modules.N.temporal_transformer…attention_blocks.K."
                                         "processor.to_q_lora.down.weight' and its up pair, 2-D)")
        linear = "to_out.0" if match["linear"] == "to_out" else match["linear"]
        name = (f"temporal.{match['module']}.transformer_blocks.{match['block']}.attn{int(match['slot']) + 1}."
                f"{linear}")
        pairs.setdefault(name, {})[match["half"]] = tensor.float()
    if not pairs:
        raise InputError(input_name, "the file holds no motion LoRA tensors")
    ranks = set()
    weights = {}
    for name, pair in sorted(pairs.items()):
        if set(pair) != {"down", "up"}:
            raise InputError(input_name, f"{name} has only its {next(iter(pair))} half; the file is incomplete")
        down, up = pair["down"], pair["up"]
        if down.shape[0] != up.shape[1]:
            raise InputError(input_name, f"{name}: down {tuple(down.shape)} and up {tuple(up.shape)} do not pair")
        ranks.add(down.shape[0])
        weights[name] = (down, up)
    if len(ranks) != 1:
        raise InputError(input_name, f"the file mixes LoRA ranks {sorted(ranks)}; one rank per file is supported")
    rank = ranks.pop()
    options = LoRAAdapter.check_options({"rank": rank, "alpha": float(rank), "dropout": 0.0, "feed_forward": False})
    return LoRAAdapter(weights, {**options_metadata(backbone, options), "imported_from": "animatediff-evolved"})


def ade_writer(adapter: LoRAAdapter):
    """``(write(path), left_out)``: a writer of the adapter's ADE file (for :mod:`motion_core.files`) and
    the layers it leaves out. The metadata (which ADE does not read) records where it came from."""
    from safetensors.torch import save_file

    tensors, left_out = to_ade(adapter)
    metadata = {"exported_by": "motion-transfer", "rank": str(adapter.options["rank"]),
                "backbone": adapter.backbone, "left_out": json.dumps(left_out)}
    return (lambda temporary: save_file(tensors, str(temporary), metadata)), left_out


def save_ade(adapter: LoRAAdapter, path: str | os.PathLike, input_name: str = "filename") -> tuple[Path, list[str]]:
    """Write the adapter as a new ADE motion-LoRA file; ``(path, left_out)``."""
    write, left_out = ade_writer(adapter)
    return write_new_file(path, write, input_name), left_out


def load_ade(path: str | os.PathLike, backbone: str = "", input_name: str = "lora_name",
             model_input: str = "model") -> LoRAAdapter:
    """Read an ADE motion-LoRA ``.safetensors`` file as a temporal :class:`LoRAAdapter` for ``backbone``
    (a model fingerprint; refused, naming ``model_input``, unless an AnimateDiff model's)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    family = backbone.partition(":")[0]
    if backbone and family != "animatediff":  # else the adapter, stamped with this model, fails when applied
        raise InputError(model_input, f"motion LoRAs adapt AnimateDiff motion modules; this is a {family} model: "
                                      "load an SD1.5 model with a motion module, or an AnimateDiff folder")
    path = Path(path)
    if path.suffix != ".safetensors":
        raise InputError(input_name, f"{path.name!r} is not a .safetensors file; only safetensors motion LoRAs are read")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError) as err:
        raise InputError(input_name, f"{path.name!r} could not be read as safetensors ({err})") from err
    return from_ade(tensors, backbone, input_name)
