"""Initial noise for sampling: how much of the reference's DDIM-inverted latent to keep.

Pure functions of (inverted latent, seed, options); every strategy draws its fresh Gaussian ``z``
on the CPU from ``torch.Generator().manual_seed(seed)``, so a seed gives the same noise on any
device. Latents are ``(batch, channels, frames, height, width)``. Formulas: shared
docs/METHODS.md §5 (inv = inverted latent, z = fresh noise, p = ``ratio``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .errors import InputError

STRATEGIES: dict[str, Callable[..., torch.Tensor]] = {}


def _strategy(name: str):
    def register(function):
        STRATEGIES[name] = function
        return function

    return register


def fresh_noise(like: torch.Tensor, seed: int) -> torch.Tensor:
    """Standard Gaussian with ``like``'s shape, dtype and device, reproducible from ``seed``."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(like.shape, generator=generator, dtype=torch.float32).to(like.device, like.dtype)


def low_pass(latents: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """DMT's spatial low-pass: bilinear down by ``factor`` then back up, per frame.

    ``(b, c, f, h, w)`` -> same shape.
    """
    b, c, f, h, w = latents.shape
    frames = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w).float()
    small = F.interpolate(frames, size=(max(1, h // factor), max(1, w // factor)), mode="bilinear",
                          align_corners=False)
    back = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return back.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4).to(latents.dtype)


def gaussian_low_pass_mask(frames: int, height: int, width: int, spatial_stop: float = 0.25,
                           temporal_stop: float = 0.25) -> torch.Tensor:
    """FreeInit's Gaussian low-pass mask over a centred (fftshifted) 3-D spectrum, ``(f, h, w)``.

    Normalised frequencies run over [-1, 1] per axis; the temporal axis is scaled by
    ``spatial_stop / temporal_stop`` so both stops are measured on one radius, and the mask is
    ``exp(-r^2 / (2 * spatial_stop^2))`` (1 at DC).
    """

    def axis(n: int) -> torch.Tensor:
        return 2 * torch.arange(n, dtype=torch.float64) / n - 1

    t = axis(frames) * (spatial_stop / temporal_stop)
    radius_sq = t[:, None, None] ** 2 + axis(height)[None, :, None] ** 2 + axis(width)[None, None, :] ** 2
    return torch.exp(-radius_sq / (2 * spatial_stop**2)).float()


@_strategy("direct")
def direct(inverted: torch.Tensor, seed: int, ratio: float = 1.0) -> torch.Tensor:
    """VMC: the inverted latent replaces the noise (``x_T = inv``)."""
    return inverted.clone()


@_strategy("random")
def random(inverted: torch.Tensor, seed: int, ratio: float = 0.0) -> torch.Tensor:
    """No reference at all: ``x_T = z``."""
    return fresh_noise(inverted, seed)


@_strategy("blend")
def blend(inverted: torch.Tensor, seed: int, ratio: float = 0.5) -> torch.Tensor:
    """MotionDirector / Motion Inversion: ``sqrt(p) inv + sqrt(1-p) z`` (unit variance kept)."""
    return ratio**0.5 * inverted + (1 - ratio) ** 0.5 * fresh_noise(inverted, seed)


@_strategy("low_frequency")
def low_frequency(inverted: torch.Tensor, seed: int, ratio: float = 0.0) -> torch.Tensor:
    """DMT: the inversion's low band with fresh high frequencies, ``LP(inv) + (z - LP(z))``."""
    z = fresh_noise(inverted, seed)
    return low_pass(inverted) + (z - low_pass(z))


@_strategy("blend_low_frequency")
def blend_low_frequency(inverted: torch.Tensor, seed: int, ratio: float = 0.5) -> torch.Tensor:
    """``LP(inv) + sqrt(p) (inv - LP(inv)) + sqrt(1-p) (z - LP(z))``: low band kept, high band blended."""
    z = fresh_noise(inverted, seed)
    low = low_pass(inverted)
    return low + ratio**0.5 * (inverted - low) + (1 - ratio) ** 0.5 * (z - low_pass(z))


@_strategy("freeinit")
def freeinit(inverted: torch.Tensor, seed: int, ratio: float = 0.25) -> torch.Tensor:
    """FreeInit-style: the inversion's spectrum under a Gaussian 3-D low-pass, fresh noise above it.

    ``ratio`` is the normalised stop frequency (FreeInit's d_s = d_t, default 0.25).
    """
    if ratio <= 0:
        raise InputError("ratio", f"{ratio!r} is not valid for freeinit; use a stop frequency above 0 (default 0.25)")
    z = fresh_noise(inverted, seed)
    _, _, f, h, w = inverted.shape
    mask = gaussian_low_pass_mask(f, h, w, ratio, ratio).to(inverted.device)
    dims = (-3, -2, -1)

    def spectrum(x: torch.Tensor) -> torch.Tensor:
        return torch.fft.fftshift(torch.fft.fftn(x.float(), dim=dims), dim=dims)

    mixed = spectrum(inverted) * mask + spectrum(z) * (1 - mask)
    return torch.fft.ifftn(torch.fft.ifftshift(mixed, dim=dims), dim=dims).real.to(inverted.dtype)


def initial_noise(strategy: str, inverted: torch.Tensor, seed: int, ratio: float | None = None) -> torch.Tensor:
    """Apply a named strategy. ``ratio`` is p for the blends and the stop frequency for ``freeinit``.

    Raises:
        InputError: unknown strategy, or ratio outside [0, 1].
    """
    if strategy not in STRATEGIES:
        raise InputError("strategy", f"{strategy!r} is not a noise strategy; choose one of {sorted(STRATEGIES)}")
    if ratio is None:
        return STRATEGIES[strategy](inverted, seed)
    if not 0.0 <= ratio <= 1.0:
        raise InputError("ratio", f"{ratio!r} is not valid; use a value from 0 to 1")
    return STRATEGIES[strategy](inverted, seed, ratio)
