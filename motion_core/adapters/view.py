"""Private views of a shared UNet: new module objects over the base model's own weight tensors.

A ComfyUI model handle is shared by every branch of a graph and by ComfyUI's cache, so an adapter
never changes it. It changes a *view* instead: a copy of the module tree (modules, attention
processors, hooks are new objects) whose parameters and buffers are the base's tensors, not copies.
Replacing a submodule or a processor in a view leaves the base and every other view as they were;
a view costs no weight memory.
"""

from __future__ import annotations

import copy
from itertools import chain

import torch
import torch.nn as nn


def make_view(unet: nn.Module, for_training: bool = False) -> nn.Module:
    """A private view of ``unet``: the same weights (the same tensor objects), new modules.

    Two adjustments keep the base's tensors untouched while the view is used:

    - a base parameter that requires grad is seen through a frozen alias (``p.detach()``: same
      storage, ``requires_grad=False``). A view never collects gradients in the base's weights,
      and freezing is never done by flipping ``requires_grad`` on the shared tensor.
    - ``for_training``: a tensor created under ``torch.inference_mode()`` (ComfyUI runs nodes,
      model loading included, in inference mode) cannot be saved for backward, so the view gets a
      normal copy of it. This is the only case where a view costs memory (one copy of those
      weights); a model loaded outside inference mode costs none.

    Args:
        unet: any ``nn.Module`` (a diffusers UNet in practice); it is not modified.
        for_training: the view will be used with autograd (see above).
    """
    memo = {}
    for tensor in chain(unet.parameters(), unet.buffers()):
        memo[id(tensor)] = _shared(tensor, for_training)
    return copy.deepcopy(unet, memo)


def _shared(tensor: torch.Tensor, for_training: bool) -> torch.Tensor:
    is_parameter = isinstance(tensor, nn.Parameter)
    if for_training and tensor.is_inference():
        with torch.inference_mode(False):
            copied = tensor.detach().clone()
        return nn.Parameter(copied, requires_grad=False) if is_parameter else copied
    if is_parameter and tensor.requires_grad:
        return nn.Parameter(tensor.detach(), requires_grad=False)
    return tensor
