"""Gradient checkpointing of a private view's blocks, for denoisers whose class does not offer it.

diffusers' ``UNet3DConditionModel`` sets ``_supports_gradient_checkpointing = False``, so
``enable_gradient_checkpointing()`` refuses. Training instead wraps the ``forward`` of each block
its family names (:attr:`VideoBackbone.checkpoint_blocks`: a UNet's down/mid/up blocks, a DiT's
``blocks``) of its *private view* (``motion_core.adapters.make_view``) in
``torch.utils.checkpoint.checkpoint(use_reentrant=False)``: a block's activations are recomputed
during backward instead of being kept. The shared model is never touched.
"""

from __future__ import annotations

import functools

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from .errors import InputError

def checkpoint_blocks(view: nn.Module, names: tuple[str, ...]) -> list[str]:
    """Checkpoint every block named in ``names`` (module lists are taken item by item) of ``view``.

    Only while gradients are being recorded; under ``no_grad``/inference the blocks run as before.
    Results and gradients equal the plain ones (non-reentrant checkpointing restores the RNG state).
    Returns the qualified names of the wrapped blocks. Raises :class:`InputError` when none of
    ``names`` is in ``view`` (checkpointing asked for would otherwise silently do nothing).
    """
    wrapped = []
    for name in names:
        try:
            module = view.get_submodule(name)  # dotted names reach nested blocks (Wan 2.2's "high.blocks")
        except AttributeError:
            continue
        items = list(module.named_children()) if isinstance(module, nn.ModuleList) else [("", module)]
        for index, block in items:
            block.forward = _checkpointed(block.forward)
            wrapped.append(f"{name}.{index}" if index else name)
    if not wrapped:
        raise InputError("gradient_checkpointing", f"{type(view).__name__} has none of the blocks "
                                                   f"{', '.join(names) or '(none declared)'}; this model family "
                                                   "cannot be trained with gradient checkpointing")
    return wrapped


def _checkpointed(forward):
    @functools.wraps(forward)
    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return run
