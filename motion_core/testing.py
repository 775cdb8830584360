"""Tiny random models and tensors for tests and benchmarks: offline, seconds to build, no weights.

The sizes follow the recipe in the project's testing notes (TESTING.md, "Tiny models, offline"):
small enough to train a step in ~0.1 s on two CPU cores, yet the same classes, block types and
module names as the real backbones, so that code which finds and adapts layers runs unchanged.
"""

from __future__ import annotations

import torch

from .objectives.step import StepTensors

TINY_LATENT_CHANNELS = 4
TINY_TEXT_DIM = 32
"""Width of the text embeddings the tiny UNet's cross-attention expects."""


def tiny_unet3d(seed: int = 0):
    """A ModelScope/ZeroScope-shaped ``UNet3DConditionModel`` with ~1.3 M random parameters.

    Two levels (``CrossAttnDownBlock3D``, ``DownBlock3D`` / ``UpBlock3D``, ``CrossAttnUpBlock3D``),
    32/64 channels, 4 latent channels, cross-attention width :data:`TINY_TEXT_DIM`. Input
    ``(b, 4, f, h, w)`` latents with ``h, w`` multiples of 2 (16×16 in CI); fp32, train mode off.
    """
    from diffusers import UNet3DConditionModel

    torch.manual_seed(seed)
    return UNet3DConditionModel(
        sample_size=16,
        in_channels=TINY_LATENT_CHANNELS,
        out_channels=TINY_LATENT_CHANNELS,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=TINY_TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=8,
    ).eval()


def random_step(shape: tuple[int, ...] = (1, 4, 8, 16, 16), abar_t: float | torch.Tensor = 0.5,
                error: float = 0.3, dtype: torch.dtype = torch.float32, seed: int = 0,
                requires_grad: bool = True) -> StepTensors:
    """Consistent random step tensors: ``x_t = sqrt(abar)·x0 + sqrt(1-abar)·eps`` and
    ``eps_hat = eps + error·N(0, 1)`` (a leaf in ``dtype`` that collects gradients).

    ``abar_t`` is a float or a ``(b,)`` tensor; ``shape`` is ``(b, c, f, h, w)``.
    """
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=gen)
    eps = torch.randn(shape, generator=gen)
    eps_hat = eps + error * torch.randn(shape, generator=gen)
    abar = torch.as_tensor(abar_t, dtype=torch.float32).reshape(-1)
    signal, noise = abar.sqrt().reshape(-1, 1, 1, 1, 1), (1 - abar).sqrt().reshape(-1, 1, 1, 1, 1)
    x_t = signal * x0 + noise * eps
    return StepTensors(eps_hat.to(dtype).requires_grad_(requires_grad), eps.to(dtype), x0.to(dtype),
                       x_t.to(dtype), abar)
