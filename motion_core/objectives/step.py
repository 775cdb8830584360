"""The tensors of one training step, and the frame residuals every motion objective is built on.

Notation (REFERENCE.md, top): video tensors are ``(b, c, f, h, w)``; ``abar_t`` is the scheduler's
cumulative alpha at the sampled timestep; ``x_t = sqrt(abar_t)·x0 + sqrt(1-abar_t)·eps``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError

X0_ESTIMATES = ("scaled", "released")
"""How the SMA terms see x0 space; see :func:`x0_motion`."""

RELEASED_ABAR_FLOOR = 1e-9
"""Smallest ``abar_t`` the ``released`` x0 estimate divides by.

Just below the smallest non-zero ``abar_t`` of the common schedules (cosine: 2.4e-9 at t = 999,
where ``1/sqrt(abar_t)`` ≈ 2·10⁴), so on those the released formula is unchanged; only
zero-terminal-SNR schedules (``abar_T = 0``) are affected, where the formula would divide by zero.
"""


@dataclass(frozen=True)
class StepTensors:
    """One training step's tensors, as the objectives read them.

    Attributes:
        eps_hat: predicted noise ``(b, c, f, h, w)``, any float dtype; the tensor gradients flow to.
        eps: the sampled noise ``(b, c, f, h, w)``.
        x0: clean latents ``(b, c, f, h, w)``.
        x_t: noisy latents ``(b, c, f, h, w)``, ``sqrt(abar_t)·x0 + sqrt(1-abar_t)·eps``.
        abar_t: cumulative alpha of each sample's timestep, in [0, 1]: a tensor of ``b`` values
            (e.g. ``(b,)``) or a single one (any shape with one element), or a float.
    """

    eps_hat: torch.Tensor
    eps: torch.Tensor
    x0: torch.Tensor
    x_t: torch.Tensor
    abar_t: torch.Tensor

    @property
    def frames(self) -> int:
        return self.eps_hat.shape[2]

    def abar(self) -> torch.Tensor:
        """``abar_t`` as fp32 of shape ``(b, 1, 1, 1, 1)`` (or ``(1, 1, 1, 1, 1)``) on eps_hat's device."""
        abar = torch.as_tensor(self.abar_t, dtype=torch.float32, device=self.eps_hat.device)
        return abar.reshape(-1, 1, 1, 1, 1)


def frame_diff(z: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Frame residuals ``Δ_f z = z[:, :, s:] - z[:, :, :-s]``: ``(b, c, f, h, w)`` -> ``(b, c, f-s, h, w)``."""
    return z[:, :, stride:] - z[:, :, :-stride]


def x0_motion(step: StepTensors, x0_estimate: str) -> tuple[torch.Tensor, torch.Tensor]:
    """x0-space motion of prediction and target for the SMA terms: ``(d_hat, d)``, fp32 ``(b, c, f-1, h, w)``.

    ``d = |Δ_f x0|``, ``d_hat = |Δ_f x0_hat|`` (REFERENCE.md §2), always computed in fp32 so that
    fp16/bf16 inputs cannot overflow. ``x0_estimate`` chooses how x0 is measured:

    - ``"scaled"`` (default): both sides are multiplied by ``sqrt(abar_t)``, i.e. the motion of the
      *signal part of x_t*: ``sqrt(abar_t)·x0_hat = x_t - sqrt(1-abar_t)·eps_hat`` (no division) and
      ``sqrt(abar_t)·x0``. Their difference is ``sqrt(1-abar_t)·(eps - eps_hat)``, bounded for every
      t, so the spectral terms stay on the scale of the noise loss at every timestep. At small t
      (``abar_t`` ≈ 1) this equals the released code; near t = T it fades the x0 target out and
      the terms reduce to aligning the predicted noise's motion with the sampled noise's. The phase
      term is scale-invariant and so unchanged; the wavelet and amplitude terms are the released
      ones times ``sqrt(abar_t)``.
    - ``"released"``: the released SMA code, ``x0_hat = (x_t - sqrt(1-abar_t)·eps_hat) / sqrt(abar_t)``,
      neither clamped nor weighted. Near t = T, ``1/sqrt(abar_t)`` reaches ~2·10⁴ (cosine schedule)
      and the terms grow by that factor; in the released training only the grad-norm clip contains
      it. ``abar_t`` is floored at :data:`RELEASED_ABAR_FLOOR` so that zero-terminal-SNR schedules
      do not divide by zero.
    """
    if x0_estimate not in X0_ESTIMATES:
        raise InputError("x0_estimate", f"unknown x0 estimate {x0_estimate!r}; use one of {', '.join(X0_ESTIMATES)}")
    abar = step.abar()
    eps_hat, x_t, x0 = step.eps_hat.float(), step.x_t.float(), step.x0.float()
    signal_hat = x_t - (1.0 - abar).clamp_min(0.0).sqrt() * eps_hat
    if x0_estimate == "scaled":
        x0_hat, x0 = signal_hat, abar.sqrt() * x0
    else:
        x0_hat = signal_hat / abar.clamp_min(RELEASED_ABAR_FLOOR).sqrt()
    return frame_diff(x0_hat).abs(), frame_diff(x0).abs()
