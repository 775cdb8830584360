"""LoRA files ComfyUI's own LoRA loader applies: a temporal LoRA trained on Wan, usable in plain ComfyUI
Wan workflows (*Load LoRA* / *LoraLoaderModelOnly*).

ComfyUI names a Wan model's weights as the original Wan code does (``blocks.3.self_attn.q.weight``,
``blocks.3.ffn.0.weight``) under ``diffusion_model.``, and its loader (``comfy/lora.py``) takes, for
every weight ``diffusion_model.<name>.weight``, the pair ``diffusion_model.<name>.lora_A.weight``
``(r, in)`` / ``.lora_B.weight`` ``(out, r)`` with an optional ``.alpha``, adding
``strength · (alpha / r) · B @ A``. The pack's LoRA (diffusers names, peft's ``A``/``B``, scale
``alpha / r``) maps onto that one to one: ``attn1.to_q|to_k|to_v|to_out.0`` → ``self_attn.q|k|v|o``,
``ffn.net.0.proj`` / ``ffn.net.2`` → ``ffn.0`` / ``ffn.2`` (the inverse of diffusers'
``convert_wan_transformer_to_diffusers``).
"""

from __future__ import annotations

import json
import re

import torch

from ..errors import InputError
from .lora import LoRAAdapter

WAN_LAYER = re.compile(r"temporal\.blocks\.(?P<block>\d+)\.(?P<layer>attn1\.to_q|attn1\.to_k|attn1\.to_v|attn1\.to_out\.0|"
                       r"ffn\.net\.0\.proj|ffn\.net\.2)")
WAN_NAMES = {"attn1.to_q": "self_attn.q", "attn1.to_k": "self_attn.k", "attn1.to_v": "self_attn.v",
             "attn1.to_out.0": "self_attn.o", "ffn.net.0.proj": "ffn.0", "ffn.net.2": "ffn.2"}
"""diffusers' Wan layer names -> ComfyUI's (the original Wan code's)."""


def to_comfy_wan(adapter: LoRAAdapter) -> dict[str, torch.Tensor]:
    """The adapter's tensors under the keys ComfyUI's LoRA loader applies to a Wan model (fp32; ``alpha``
    per layer, so ComfyUI scales by ``alpha / r`` as the pack does).

    Raises:
        InputError: for an adapter that is not a LoRA trained on a Wan model.
    """
    if not isinstance(adapter, LoRAAdapter):
        raise InputError("adapter", f"only LoRA adapters can be exported as LoRA files; this one is "
                                    f"{getattr(adapter, 'kind', type(adapter).__name__)}")
    if not adapter.backbone.startswith("wan:"):
        raise InputError("adapter", f"this LoRA was trained on {adapter.backbone or 'an unknown model'}; ComfyUI "
                                    "LoRA files are written for Wan models")
    if any(".high.blocks." in name or ".low.blocks." in name for name in adapter.names):
        raise InputError("adapter", "this LoRA spans Wan 2.2 A14B's two experts; ComfyUI applies a LoRA to each "
                                    "expert's model separately, and exporting one file per expert is not supported "
                                    "yet: use the adapter in the pack's Generate Video")
    alpha = torch.tensor(float(adapter.options["alpha"]))
    tensors = {}
    for name, a, b in zip(adapter.names, adapter.lora_A, adapter.lora_B):
        match = WAN_LAYER.fullmatch(name)
        if match is None:  # a Wan LoRA has no spatial part: every layer is a block's attention or feed-forward
            raise InputError("adapter", f"layer {name!r} has no ComfyUI Wan name; the adapter is not a Wan LoRA")
        key = f"diffusion_model.blocks.{match['block']}.{WAN_NAMES[match['layer']]}"
        tensors[f"{key}.lora_A.weight"] = a.detach().float().cpu().contiguous()
        tensors[f"{key}.lora_B.weight"] = b.detach().float().cpu().contiguous()
        tensors[f"{key}.alpha"] = alpha.clone()
    return tensors


def comfy_wan_writer(adapter: LoRAAdapter):
    """``write(path)`` of the adapter's ComfyUI LoRA file (for :mod:`motion_core.files`' writers)."""
    from safetensors.torch import save_file

    tensors = to_comfy_wan(adapter)
    metadata = {"exported_by": "motion-transfer", "backbone": adapter.backbone,
                "options": json.dumps(adapter.options, sort_keys=True)}
    return lambda temporary: save_file(tensors, str(temporary), metadata)
