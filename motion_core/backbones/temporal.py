"""Where the temporal attention of a ModelScope/ZeroScope ``UNet3DConditionModel`` is.

Every ``TransformerTemporalModel`` of the UNet (``transformer_in``, those of the down, mid and up
blocks) runs one ``BasicTransformerBlock`` whose ``attn1`` and ``attn2`` both attend over frames:
tokens are the ``(batch·height·width)`` pixels of a block's latent grid, sequences are frames
(REFERENCE.md §1, §8). Adapters find the layers they train here, by qualified module name, so the
same code serves the tiny test UNet and the 1.4 B-parameter published ones.

ModelScope / ZeroScope (``block_out_channels (320, 640, 1280, 1280)``, 2 layers per block):
17 temporal transformers (``transformer_in``, 6 down, 1 mid, 9 up), 34 temporal attentions,
102 ``to_q``/``to_k``/``to_v`` linears.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

ATTENTION_SLOTS = ("attn1", "attn2")
"""The two temporal self-attentions of a ``BasicTransformerBlock`` in a ``TransformerTemporalModel``."""

PROJECTIONS = ("to_q", "to_k", "to_v")
"""The projections VMC trains in every temporal attention (REFERENCE.md §1)."""


@dataclass(frozen=True)
class TemporalTransformer:
    """One ``TransformerTemporalModel`` of a UNet3D and where it sits.

    Attributes:
        name: qualified module name, e.g. ``"down_blocks.2.temp_attentions.0"`` or ``"transformer_in"``.
        module: the ``TransformerTemporalModel`` itself.
        block: ``"transformer_in"``, ``"down_blocks.<i>"``, ``"mid_block"`` or ``"up_blocks.<i>"``.
        level: resolution level of its latent grid: 0 = the full latent grid, each level halves it.
        channels: channels of the hidden states it receives (the block's width).
        inner_dim: width of its attentions (``heads × head_dim``; after ``proj_in``). Equal to
            ``channels`` except in ``transformer_in`` (ModelScope: 320 channels, 8×64 = 512 wide).
        heads: attention heads.
        attentions: ``(name, Attention)`` of ``attn1`` and ``attn2`` of every transformer block, in order.
    """

    name: str
    module: nn.Module
    block: str
    level: int
    channels: int
    inner_dim: int
    heads: int
    attentions: tuple[tuple[str, nn.Module], ...]

    def grid(self, latent_height: int, latent_width: int) -> tuple[int, int]:
        """``(h, w)`` of this transformer's latent grid for a ``latent_height × latent_width`` input.

        Latent size = pixel size / the VAE's scale factor (8 for ModelScope/ZeroScope); each level
        is one stride-2 ``Downsample2D`` (3×3 kernel, padding 1): ``ceil(n / 2)``. E.g. 576×320
        pixels → 72×40 latents → 72×40, 36×20, 18×10, 9×5 at levels 0..3.
        """
        h, w = latent_height, latent_width
        for _ in range(self.level):
            h, w = -(-h // 2), -(-w // 2)
        return h, w

    def tokens(self, latent_height: int, latent_width: int) -> int:
        """Pixels of the grid, ``h·w`` (the spatial size of Motion Inversion's value embedding)."""
        h, w = self.grid(latent_height, latent_width)
        return h * w


@dataclass(frozen=True)
class TemporalAttention:
    """One temporal self-attention (``attn1`` or ``attn2``) and the transformer it belongs to.

    Attributes:
        name: qualified module name, e.g. ``"transformer_in.transformer_blocks.0.attn1"``.
        module: the diffusers ``Attention``.
        transformer: the :class:`TemporalTransformer` it sits in (block, level, widths).
        slot: ``"attn1"`` or ``"attn2"``.
    """

    name: str
    module: nn.Module
    transformer: TemporalTransformer
    slot: str

    def projections(self) -> tuple[tuple[str, nn.Linear], ...]:
        """``(qualified name, module)`` of its ``to_q``, ``to_k`` and ``to_v``."""
        return tuple((f"{self.name}.{p}", getattr(self.module, p)) for p in PROJECTIONS)


def temporal_transformers(unet: nn.Module) -> list[TemporalTransformer]:
    """Every ``TransformerTemporalModel`` of a diffusers ``UNet3DConditionModel``, in data-flow order.

    Order: ``transformer_in``, then down blocks, the mid block, up blocks (each by index, then by
    position in the block). Works on any device, ``meta`` included (nothing is computed). A model
    without temporal transformers gives an empty list.
    """
    from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

    found, levels = [], None
    for name, module in unet.named_modules():
        if not isinstance(module, TransformerTemporalModel):
            continue
        levels = levels or _block_levels(unet)  # only UNets with temporal transformers have the blocks
        block = _block_of(name)
        attentions = tuple((f"{name}.transformer_blocks.{i}.{slot}", getattr(layer, slot))
                           for i, layer in enumerate(module.transformer_blocks) for slot in ATTENTION_SLOTS)
        first = attentions[0][1]
        found.append(TemporalTransformer(name, module, block, levels[block], module.in_channels,
                                         first.inner_dim, first.heads, attentions))
    stage = {"transformer_in": 0, "down_blocks": 1, "mid_block": 2, "up_blocks": 3}
    position = {t.name: i for i, t in enumerate(found)}

    def order(t: TemporalTransformer):
        parts = t.block.split(".")
        return stage[parts[0]], int(parts[1]) if len(parts) > 1 else 0, position[t.name]

    return sorted(found, key=order)


def temporal_attentions(unet: nn.Module) -> list[TemporalAttention]:
    """Every temporal self-attention of a UNet3D (``attn1`` and ``attn2`` of each temporal transformer)."""
    return [TemporalAttention(name, module, transformer, name.rsplit(".", 1)[1])
            for transformer in temporal_transformers(unet) for name, module in transformer.attentions]


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
