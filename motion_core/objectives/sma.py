"""Spectral Motion Alignment's regularisers (Park, Jeong, Ye, AAAI 2025; docs/METHODS.md §2).

Both terms compare x0-space motion, ``d = |Δ_f x0|`` and ``d_hat = |Δ_f x0_hat|`` of shape
``(b, c, f-1, h, w)`` (see :func:`.step.x0_motion`):

- the *global* term looks along time: a wavelet decomposition of each pixel's residual sequence,
  so that slow (coarse-level) and fast (fine-level) motion are matched separately;
- the *local* term looks within each residual frame: its 2-D Fourier amplitude and phase, weighted
  towards low spatial frequencies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .dwt import dwt1d

PHASE_DIFFERENCES = ("wrapped", "raw")
"""How the local term compares phases; see :func:`sma_local`."""


def sma_global(d_hat: torch.Tensor, d: torch.Tensor, levels: int, wavelet: str = "haar",
               level_weights: Sequence[float] | None = None) -> torch.Tensor:
    """Wavelet term ``L_g`` of ``(b, c, f', h, w)`` motion -> scalar.

    Each pixel's sequence of ``f'`` residuals (the released code's ``(b, c·h·w, f')`` layout) is
    decomposed into ``levels`` levels (:func:`.dwt.dwt1d`, zero padding);
    ``L_g = w_0·mean|yl - yl_hat| + Σ_j w_j·mean|yh_j - yh_hat_j|`` with ``j = 1`` the finest level.
    ``level_weights`` is ``(w_0, w_1, ..., w_J)``; ``None`` weights every group 1 (released).
    """
    weights = [1.0] * (levels + 1) if level_weights is None else list(level_weights)
    if len(weights) != levels + 1:
        raise ValueError(f"{levels} levels need {levels + 1} weights, got {len(weights)}")
    # The DWT is linear: transforming the difference once equals differencing two transforms.
    low, highs = dwt1d((d_hat - d).movedim(2, -1), levels, wavelet)
    loss = weights[0] * low.abs().mean()
    for weight, high in zip(weights[1:], highs):
        loss = loss + weight * high.abs().mean()
    return loss


def radial_weight(height: int, width: int, delta: float = 0.05, base: float = 1.0,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """Soft low-frequency weight ``W`` ``(height, width)`` in fftshift-ed coordinates, fp32.

    ``W[u, v] = ((H/2)² + (W/2)²)^δ - ((u - H/2)² + (v - W/2)²)^δ + base`` (docs/METHODS.md §2):
    largest at the centre (DC after fftshift; 2.44 for 40×64 with δ = 0.05), ``base`` at the corners.
    """
    u = torch.arange(height, dtype=torch.float32, device=device)[:, None]
    v = torch.arange(width, dtype=torch.float32, device=device)[None, :]
    radius = (u - height / 2).square() + (v - width / 2).square()
    return ((height / 2) ** 2 + (width / 2) ** 2) ** delta - radius.pow(delta) + base


def wrap_phase(angle: torch.Tensor) -> torch.Tensor:
    """Angles mapped into (−π, π] (the same point on the circle); gradient 1."""
    return math.pi - torch.remainder(math.pi - angle, 2 * math.pi)


def sma_local(d_hat: torch.Tensor, d: torch.Tensor, delta: float = 0.05, base: float = 1.0,
              phase: str = "wrapped") -> tuple[torch.Tensor, torch.Tensor]:
    """Fourier term ``L_l`` of ``(b, c, f', h, w)`` motion -> ``(amplitude term, phase term)``, scalars.

    Per residual frame and channel, ``F = fftshift(fft2(d))`` over ``(h, w)``, no normalisation;
    ``L_l = mean(|A - A_hat|·W) + mean(|P - P_hat|·W)`` with ``A = |F|``, ``P = angle(F)`` and
    ``W`` = :func:`radial_weight`.

    ``phase`` chooses the phase difference:

    - ``"wrapped"`` (default): ``P - P_hat`` wrapped into (−π, π], the angular distance. Two
      phases either side of ±π are close, and the raw difference calls them ~2π apart. Worse, at
      bins whose value is real and negative (the Nyquist row/column of even sizes for real
      input), ``angle()`` returns +π or −π depending on the sign of a zero imaginary part, which
      differs between FFT implementations (numpy and torch disagree on 6×7 inputs): the raw loss
      there jumps by 2π·W between libraries or devices. Wrapping removes both.
    - ``"raw"``: the released code's plain difference, for reproducing it.
    """
    if phase not in PHASE_DIFFERENCES:
        raise ValueError(f"unknown phase difference {phase!r}; use one of {PHASE_DIFFERENCES}")
    height, width = d.shape[-2:]
    # The loss is a mean over bins, so instead of fftshift-ing both spectra the weight is moved
    # to unshifted (fft2) order once.
    weight = torch.fft.ifftshift(radial_weight(height, width, delta, base, d.device))
    spectra = torch.fft.fft2(torch.stack([d_hat, d]).float())
    amplitude = (spectra[0].abs() - spectra[1].abs()).abs()
    phase_diff = spectra[0].angle() - spectra[1].angle()
    if phase == "wrapped":
        phase_diff = wrap_phase(phase_diff)
    return (amplitude * weight).mean(), (phase_diff.abs() * weight).mean()
