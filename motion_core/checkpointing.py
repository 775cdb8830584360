"""Gradient checkpointing for UNets whose diffusers class does not offer it (UNet3D).

diffusers' ``UNet3DConditionModel`` sets ``_supports_gradient_checkpointing = False``, so
``enable_gradient_checkpointing()`` refuses. Training instead wraps the ``forward`` of each
down/mid/up block of its *private view* (``motion_core.adapters.make_view``) in
``torch.utils.checkpoint.checkpoint(use_reentrant=False)``: a block's activations are recomputed
during backward instead of being kept. The shared model is never touched.
"""

from __future__ import annotations

import functools

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

UNET_BLOCKS = ("down_blocks", "mid_block", "up_blocks")


def checkpoint_blocks(view: nn.Module, names: tuple[str, ...] = UNET_BLOCKS) -> list[str]:
    """Checkpoint every block named in ``names`` (module lists are taken item by item) of ``view``.

    Only while gradients are being recorded; under ``no_grad``/inference the blocks run as before.
    Results and gradients equal the plain ones (non-reentrant checkpointing restores the RNG state).
    Returns the qualified names of the wrapped blocks.
    """
    wrapped = []
    for name in names:
        module = getattr(view, name, None)
        if module is None:
            continue
        items = list(module.named_children()) if isinstance(module, nn.ModuleList) else [("", module)]
        for index, block in items:
            block.forward = _checkpointed(block.forward)
            wrapped.append(f"{name}.{index}" if index else name)
    return wrapped


def _checkpointed(forward):
    @functools.wraps(forward)
    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return run
