"""Motion sites: where a denoiser computes motion, declared by its model family.

Adapters attach to motion sites, never to a family's module classes: each family
(:class:`~motion_core.backbones.base.VideoBackbone` subclass) finds its sites in a denoiser module
(:meth:`~motion_core.backbones.base.VideoBackbone.find_motion_sites`), and :func:`motion_sites`
asks the family that owns the module. A site says how its attention sees a video (its *layout*),
so that an adapter kind can refuse a layout it was not made for with a clear message.

ModelScope / ZeroScope (``block_out_channels (320, 640, 1280, 1280)``, 2 layers per block):
17 temporal transformers (``transformer_in``, 6 down, 1 mid, 9 up), 34 temporal attentions,
102 ``to_q``/``to_k``/``to_v`` linears.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from ..errors import InputError

LAYOUTS = {
    "frames": "temporal attention over frames: tokens (batch·height·width, frames, channels), one "
              "sequence per latent pixel (UNet3D, AnimateDiff motion modules)",
    "joint": "full 3-D attention: tokens (batch, frames·height·width, channels) (video DiTs such as Wan)",
}
"""How a motion site's attention sees a video, by name."""

PROJECTIONS = ("to_q", "to_k", "to_v")
"""The projections VMC trains in every temporal attention (docs/METHODS.md §1)."""


@dataclass(frozen=True)
class MotionSite:
    """One place of a denoiser where motion is computed (a temporal transformer), and where it sits.

    Attributes:
        name: qualified module name, e.g. ``"down_blocks.2.temp_attentions.0"`` or ``"transformer_in"``.
        module: the transformer module itself (``TransformerTemporalModel`` in a UNet3D).
        family: the model family that declared it (:attr:`VideoBackbone.family`).
        layout: how its attentions see a video, one of :data:`LAYOUTS`.
        block: the block it belongs to: ``"transformer_in"``, ``"down_blocks.<i>"``, ``"mid_block"``
            or ``"up_blocks.<i>"`` in a UNet.
        level: resolution level of its latent grid: 0 = the full latent grid, each level halves it.
        channels: channels of the hidden states it receives (the block's width).
        inner_dim: width of its attentions (``heads × head_dim``; after ``proj_in``). Equal to
            ``channels`` except in ``transformer_in`` (ModelScope: 320 channels, 8×64 = 512 wide).
        heads: attention heads.
        attentions: ``(name, Attention)`` of the self-attentions that see the video's frames, in order
            (``attn1`` and ``attn2`` of every transformer block of a temporal transformer; a DiT
            block's ``attn1``).
        feed_forwards: ``(name, FeedForward)`` of each transformer block's feed-forward, in order (one per
            block; the attentions are split evenly among them). MotionDirector's LoRA adapts these too.
        patch: the spatial patch size tokens are made of (a DiT's ``patch_size``; Wan: 2): the token
            grid is the latent grid divided by it. 1 for UNets (one token per latent pixel).
    """

    name: str
    module: nn.Module
    family: str
    layout: str
    block: str
    level: int
    channels: int
    inner_dim: int
    heads: int
    attentions: tuple[tuple[str, nn.Module], ...]
    feed_forwards: tuple[tuple[str, nn.Module], ...] = ()
    patch: int = 1

    def blocks(self) -> list[tuple[tuple[tuple[str, nn.Module], ...], tuple[str, nn.Module] | None]]:
        """``(attentions, feed_forward)`` of each transformer block of the site, in order."""
        if not self.feed_forwards:
            return [(self.attentions, None)]
        per = len(self.attentions) // len(self.feed_forwards)
        return [(self.attentions[k * per:(k + 1) * per], ff) for k, ff in enumerate(self.feed_forwards)]

    def grid(self, latent_height: int, latent_width: int) -> tuple[int, int]:
        """``(h, w)`` of this transformer's latent grid for a ``latent_height × latent_width`` input.

        Latent size = pixel size / the VAE's scale factor (8 for ModelScope/ZeroScope); each level
        is one stride-2 ``Downsample2D`` (3×3 kernel, padding 1): ``ceil(n / 2)``. E.g. 576×320
        pixels → 72×40 latents → 72×40, 36×20, 18×10, 9×5 at levels 0..3. A DiT's grid is the latent
        grid over its :attr:`patch` (Wan at 832×480: 104×60 latents → 52×30 tokens).
        """
        h, w = latent_height // self.patch, latent_width // self.patch
        for _ in range(self.level):
            h, w = -(-h // 2), -(-w // 2)
        return h, w

    def tokens(self, latent_height: int, latent_width: int) -> int:
        """Pixels of the grid, ``h·w`` (the spatial size of Motion Inversion's value embedding)."""
        h, w = self.grid(latent_height, latent_width)
        return h * w


@dataclass(frozen=True)
class SiteAttention:
    """One self-attention of a motion site (``attn1`` or ``attn2`` of a temporal transformer).

    Attributes:
        name: qualified module name, e.g. ``"transformer_in.transformer_blocks.0.attn1"``.
        module: the diffusers ``Attention``.
        site: the :class:`MotionSite` it sits in (block, level, widths).
        slot: ``"attn1"`` or ``"attn2"``.
    """

    name: str
    module: nn.Module
    site: MotionSite
    slot: str

    def projections(self) -> tuple[tuple[str, nn.Linear], ...]:
        """``(qualified name, module)`` of its ``to_q``, ``to_k`` and ``to_v``."""
        return tuple((f"{self.name}.{p}", getattr(self.module, p)) for p in PROJECTIONS)


def family_of(module: nn.Module):
    """The :class:`~motion_core.backbones.base.VideoBackbone` class whose denoisers ``module`` is one of
    (a base model or a private view of it); :class:`InputError` for a module no family owns."""
    from .base import FAMILIES

    for family in FAMILIES.values():
        if family.owns(module):
            return family
    known = ", ".join(f"{name} ({family.describe})" for name, family in FAMILIES.items())
    raise InputError("model", f"{type(module).__name__} is not the denoiser of a known model family; known: {known}")


def motion_sites(module: nn.Module) -> list[MotionSite]:
    """Every motion site of a denoiser (base or view), in data-flow order, as its family declares them.

    Works on any device, ``meta`` included (nothing is computed).
    """
    return family_of(module).find_motion_sites(module)


def site_attentions(module: nn.Module) -> list[SiteAttention]:
    """Every self-attention of every motion site of ``module`` (``attn1`` and ``attn2`` of each)."""
    return [SiteAttention(name, attention, site, name.rsplit(".", 1)[1])
            for site in motion_sites(module) for name, attention in site.attentions]


def appearance_sites(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(qualified name, transformer)`` of the spatial transformers that carry a frame's appearance
    (MotionDirector's spatial LoRA), as the module's family declares them."""
    return family_of(module).find_appearance_sites(module)


ATTENTION_SLOTS = ("attn1", "attn2")
"""The two self-attentions over frames of a ``BasicTransformerBlock`` in a temporal transformer
(UNet3D's ``TransformerTemporalModel``, AnimateDiff's ``AnimateDiffTransformer3D``)."""


def unet_motion_sites(unet: nn.Module, transformer_type: type, family: str) -> list[MotionSite]:
    """Every ``transformer_type`` module of a video UNet as a ``frames``-layout site, in data-flow order.

    For UNets built like diffusers' ``UNet3DConditionModel`` / ``UNetMotionModel``: ``down_blocks``,
    ``mid_block``, ``up_blocks`` (each with optional down/upsamplers), and optionally a
    ``transformer_in`` before them. Order: ``transformer_in``, then down blocks, the mid block, up
    blocks (each by index, then by position in the block). Works on any device, ``meta`` included
    (nothing is computed). A model without such transformers gives an empty list.
    """
    found, levels = [], None
    for name, module in unet.named_modules():
        if not isinstance(module, transformer_type):
            continue
        levels = levels or _block_levels(unet)  # only UNets with temporal transformers have the blocks
        block = _block_of(name)
        attentions = tuple((f"{name}.transformer_blocks.{i}.{slot}", getattr(layer, slot))
                           for i, layer in enumerate(module.transformer_blocks) for slot in ATTENTION_SLOTS)
        feed_forwards = tuple((f"{name}.transformer_blocks.{i}.ff", layer.ff)
                              for i, layer in enumerate(module.transformer_blocks))
        first = attentions[0][1]
        found.append(MotionSite(name, module, family, "frames", block, levels[block], module.in_channels,
                                first.inner_dim, first.heads, attentions, feed_forwards))
    stage = {"transformer_in": 0, "down_blocks": 1, "mid_block": 2, "up_blocks": 3}
    position = {t.name: i for i, t in enumerate(found)}

    def order(t: MotionSite):
        parts = t.block.split(".")
        return stage[parts[0]], int(parts[1]) if len(parts) > 1 else 0, position[t.name]

    return sorted(found, key=order)


def _block_of(name: str) -> str:
    parts = name.split(".")
    if parts[0] in ("down_blocks", "up_blocks"):
        return ".".join(parts[:2])
    return parts[0]


def _block_levels(unet: nn.Module) -> dict[str, int]:
    """Resolution level of each block's temporal transformers, counted from the down/up samplers.

    A down block's attentions run before its downsampler, an up block's after the previous up
    block's upsampler; the mid block runs at the deepest level.
    """
    levels = {"transformer_in": 0}
    level = 0
    for i, block in enumerate(unet.down_blocks):
        levels[f"down_blocks.{i}"] = level
        level += len(getattr(block, "downsamplers", None) or ())
    levels["mid_block"] = level
    for i, block in enumerate(unet.up_blocks):
        levels[f"up_blocks.{i}"] = level
        level -= len(getattr(block, "upsamplers", None) or ())
    return levels
