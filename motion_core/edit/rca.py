"""Edit-Your-Motion's Recurrent Causal Attention (RCA) in place of spatial self-attention.

For frame ``i`` of ``n`` (0-based), with the spatial self-attention's own projections and
concatenation along the token axis (docs/METHODS.md §7, "Recurrent Causal Attention")::

    Q = W_Q z_i,   K = W_K [z_{i-1}, z_{i+1}],   V = W_V [z_{i-1}, z_i]

Edge frames use the neighbours they have, for K and V alike. The paper counts frames from 1:
"the first frame: frames 1 and 2; the last: the last two". 0-based (:func:`neighbour_frames`):

============  ===============  ===============
frame         K from frames    V from frames
============  ===============  ===============
0             0, 1             0, 1
0 < i < n-1   i-1, i+1         i-1, i
n-1           n-2, n-1         n-2, n-1
============  ===============  ===============

(the last row is also what the general formula gives once ``z_{n}``, which does not exist, is
replaced by ``z_{n-1}``). A single frame uses itself twice, which equals plain self-attention.
Token ``t`` of the first K frame pairs with token ``t`` of the first V frame, and likewise for the
second, so the order of the two frames matters and is the one above.

The processor has no weights of its own: "training RCA" trains the projections it uses. UNet
blocks see hidden states ``(batch·frames, tokens, channels)``, batch-major (``b·F + f``), so the
processor must know the frame count: :func:`attach_rca` registers a forward pre-hook on the UNet
that reads it from the 5-D ``sample`` ``(b, c, f, h, w)`` of every call, so any caller (training,
inversion, sampling) works unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def neighbour_frames(frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(key_frames, value_frames)``, each ``(frames, 2)`` long: the two frames each frame's K and
    V come from, in concatenation order (see the module doc)."""
    if frames < 1:
        raise ValueError(f"RCA needs at least one frame, got {frames}")
    last = frames - 1
    keys, values = [], []
    for i in range(frames):
        if i == 0:
            keys.append((0, min(1, last)))
            values.append((0, min(1, last)))
        elif i == last:
            keys.append((i - 1, i))
            values.append((i - 1, i))
        else:
            keys.append((i - 1, i + 1))
            values.append((i - 1, i))
    return torch.tensor(keys), torch.tensor(values)


class FrameCount:
    """The frame count of the UNet call in progress, set by a forward pre-hook on the UNet."""

    frames: int | None = None

    def hook(self, module, args, kwargs) -> None:
        sample = args[0] if args else kwargs.get("sample")
        if isinstance(sample, torch.Tensor) and sample.ndim == 5:
            self.frames = sample.shape[2]


class RecurrentCausalAttention(nn.Module):
    """A diffusers attention processor computing RCA with the attention's own ``to_q/k/v/out``.

    Takes ``hidden_states`` ``(batch·frames, tokens, channels)`` (batch-major) and returns the same
    shape; self-attention only (no ``encoder_hidden_states``, no mask).
    """

    def __init__(self, frame_count: FrameCount):
        super().__init__()
        self.frame_count = frame_count

    def forward(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                temb=None, **kwargs) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None or hidden_states.ndim != 3:
            raise RuntimeError("recurrent causal attention replaces spatial self-attention only (3-D hidden "
                               "states, no encoder states, no mask)")
        if attn.group_norm is not None or attn.spatial_norm is not None:
            raise RuntimeError("recurrent causal attention does not support attention with group or spatial norms")
        frames = self.frame_count.frames
        rows, tokens, _ = hidden_states.shape
        if frames is None or rows % frames:
            raise RuntimeError(f"recurrent causal attention needs the frame count of the UNet call (got {frames} "
                               f"for {rows} rows); attach it with attach_rca, which reads it from the UNet's "
                               "5-D sample")
        batch = rows // frames
        key_frames, value_frames = (index.to(hidden_states.device) for index in neighbour_frames(frames))
        query = attn.to_q(hidden_states)
        key = _gather(attn.to_k(hidden_states), key_frames, batch, frames)
        value = _gather(attn.to_v(hidden_states), value_frames, batch, frames)
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (x.view(rows, -1, attn.heads, head_dim).transpose(1, 2) for x in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(query, key, value, scale=attn.scale)
        out = out.transpose(1, 2).reshape(rows, tokens, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def _gather(projected: torch.Tensor, pairs: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    """``(batch·frames, tokens, C)`` -> ``(batch·frames, 2·tokens, C)``: each frame's two source frames'
    tokens, concatenated in ``pairs`` order."""
    per_frame = projected.view(batch, frames, *projected.shape[1:])
    joined = torch.cat([per_frame[:, pairs[:, 0]], per_frame[:, pairs[:, 1]]], dim=2)
    return joined.reshape(batch * frames, *joined.shape[2:])


def spatial_self_attentions(unet: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, Attention)`` of ``attn1`` in every block of every spatial ``Transformer2DModel`` (the
    motion modules' temporal attentions are not among them)."""
    from diffusers.models.transformers.transformer_2d import Transformer2DModel

    found = []
    for name, module in unet.named_modules():
        if isinstance(module, Transformer2DModel):
            for index, block in enumerate(module.transformer_blocks):
                found.append((f"{name}.transformer_blocks.{index}.attn1", block.attn1))
    return found


@dataclass
class RCAAttachment:
    """RCA attached to a UNet view: which attentions, and how to undo it (:meth:`remove`)."""

    unet: nn.Module
    names: tuple[str, ...]
    frame_count: FrameCount
    _previous: dict
    _hook: object

    def remove(self) -> None:
        """Put the previous processors back and drop the frame-count hook."""
        for name in self.names:
            self.unet.get_submodule(name).set_processor(self._previous[name])
        self._hook.remove()


def attach_rca(unet: nn.Module) -> RCAAttachment:
    """Replace the spatial self-attention of ``unet`` with RCA (a ``UNetMotionModel`` or any UNet
    whose spatial blocks see ``(batch·frames, …)`` and whose ``forward`` takes a 5-D ``sample``).

    ``unet`` is changed in place: pass a private view (:func:`motion_core.adapters.make_view`), never
    a shared model. Its weights are not touched (RCA has none).
    """
    sites = spatial_self_attentions(unet)
    if not sites:
        raise ValueError("the UNet has no spatial Transformer2DModel self-attention to replace")
    frame_count = FrameCount()
    processor = RecurrentCausalAttention(frame_count)
    previous = {name: attention.processor for name, attention in sites}
    for _, attention in sites:
        attention.set_processor(processor)
    hook = unet.register_forward_pre_hook(frame_count.hook, with_kwargs=True)
    return RCAAttachment(unet, tuple(name for name, _ in sites), frame_count, previous, hook)
