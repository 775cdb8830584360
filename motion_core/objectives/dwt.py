"""1-D discrete wavelet transform along the last axis, in plain torch.

Why not ``pytorch_wavelets``: it is the SMA authors' choice and stays the reference the tests
check against, but it imports ``pkg_resources`` at package import, which setuptools >= 82 removed
and Python >= 3.12 virtual environments do not ship (docs/METHODS.md §9) — importing it at runtime would
break the node pack in many users' ComfyUI environments. The transform itself is one strided
convolution per level, so the runtime computes it here from PyWavelets' filter taps (PyWavelets
is a plain compiled package with no such import) and ``torch.nn.functional.conv1d``. It is
differentiable by autograd and runs on any device and dtype.

Conventions are ``pytorch_wavelets.DWT1DForward(J, wave, mode='zero')``'s exactly: each level
zero-pads the signal and convolves it with the analysis filters at stride 2, giving
``floor((N + L - 1) / 2)`` coefficients for a signal of length N and a filter of length L
(``floor((N + 1) / 2)`` for Haar).
"""

from __future__ import annotations

import functools

import numpy as np
import pywt
import torch
import torch.nn.functional as F

WAVELETS = tuple(pywt.wavelist(kind="discrete"))
"""Names accepted for ``wavelet`` (PyWavelets' discrete families: haar, db*, sym*, coif*, ...)."""


@functools.lru_cache(maxsize=None)
def _analysis_taps(wavelet: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(2, 1, L)`` lowpass and highpass analysis filters, reversed for conv1d's correlation.

    Cached per device and dtype so that a training loop does not copy them to the GPU every step;
    made outside inference mode (ComfyUI runs nodes inside it), or a cached copy first made there
    could not be saved for a later backward pass.
    """
    w = pywt.Wavelet(wavelet)
    taps = np.stack([np.asarray(w.dec_lo)[::-1], np.asarray(w.dec_hi)[::-1]])[:, None, :]
    with torch.inference_mode(False):
        return torch.tensor(taps, device=device, dtype=dtype)


def max_levels(length: int) -> int:
    """Most levels a signal of ``length`` samples can be decomposed into: ``ceil(log2(length))``.

    That is how many halvings (with Haar) reduce it to a single coefficient; a further level
    would only transform that one coefficient again. Longer filters keep more coefficients per
    level in zero mode, but the same bound is applied to every wavelet so that a spec means the
    same depth whatever the wavelet.
    """
    return max(length - 1, 0).bit_length()


def dwt1d(x: torch.Tensor, levels: int, wavelet: str = "haar") -> tuple[torch.Tensor, list[torch.Tensor]]:
    """J-level DWT of ``x`` ``(..., n)`` along its last axis, zero-padded.

    Returns ``(yl, [yh_1, ..., yh_J])`` like ``pytorch_wavelets.DWT1DForward``: the coarsest lowpass
    coefficients and the highpass ones, finest level first; each ``(..., n_j)`` with
    ``n_j = floor((n_{j-1} + L - 1) / 2)``, ``n_0 = n``.
    """
    if wavelet not in WAVELETS:
        raise ValueError(f"unknown wavelet {wavelet!r}")
    taps = _analysis_taps(wavelet, x.device, x.dtype)
    length = taps.shape[-1]
    lead = x.shape[:-1]
    low = x.reshape(-1, 1, x.shape[-1])
    highs = []
    for _ in range(levels):
        n = low.shape[-1]
        out = (n + length - 1) // 2
        pad = 2 * (out - 1) - n + length  # as pytorch_wavelets: the odd sample goes at the end
        coeffs = F.conv1d(F.pad(low, (pad // 2, pad - pad // 2)), taps, stride=2)
        low = coeffs[:, :1]
        highs.append(coeffs[:, 1].reshape(*lead, -1))
    return low.reshape(*lead, -1), highs
