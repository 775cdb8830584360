"""The tensors of one training step, and the frame residuals every motion objective is built on.

Notation: video tensors are ``(b, c, f, h, w)``; a noisy latent is ``x_t = signal_t·x0 + noise_t·eps``
(:mod:`motion_core.sampling`: ``sqrt(abar_t)`` and ``sqrt(1 - abar_t)`` for DDPM, ``1 - σ`` and ``σ``
for flow matching). The objectives read the denoiser's *prediction* against its training *target*
(``eps`` for ε-prediction models, ``v`` for v- and flow models) and the clean-latent estimate
``x0_hat`` the prediction implies, so that the same terms serve every family.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError

X0_ESTIMATES = ("scaled", "released")
"""How the SMA terms see x0 space; see :func:`x0_motion`."""


@dataclass(frozen=True)
class StepTensors:
    """One training step's tensors, as the objectives read them.

    Attributes:
        prediction: the denoiser's output ``(b, c, f, h, w)``, any float dtype; gradients flow to it.
        target: what it is trained to output (the sampled noise ``eps`` for ε-prediction).
        x0: clean latents ``(b, c, f, h, w)``.
        x0_hat: the clean-latent estimate the prediction implies, fp32, differentiable
            (:meth:`motion_core.sampling.Sampling.x0_from`).
        signal_hat: ``signal_t·x0_hat``, formed without a division (finite at every t), fp32
            (:meth:`motion_core.sampling.Sampling.signal_from`).
        x_t: noisy latents ``(b, c, f, h, w)``.
        signal_scale: ``signal_t`` of each sample (``x_t = signal_t·x0 + noise_t·eps``): a tensor of
            ``b`` values or a single one, or a float.
        weight: ``b`` weights (a tensor) on the terms that compare prediction and target: each such
            term becomes the weighted mean over the batch of its per-sample values
            (:class:`motion_core.sampling.LossWeighting`); None (default): the plain mean.
    """

    prediction: torch.Tensor
    target: torch.Tensor
    x0: torch.Tensor
    x0_hat: torch.Tensor
    signal_hat: torch.Tensor
    x_t: torch.Tensor
    signal_scale: torch.Tensor
    weight: torch.Tensor | None = None

    @classmethod
    def for_noise_prediction(cls, eps_hat: torch.Tensor, eps: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor,
                             abar_t: torch.Tensor | float) -> StepTensors:
        """A step of an ε-prediction model on a DDPM schedule, ``x_t = sqrt(abar_t)·x0 + sqrt(1-abar_t)·eps``.

        ``abar_t``: a tensor of ``b`` values (any shape with ``b`` elements) or one value, or a float.
        """
        from ..sampling import epsilon_signal, epsilon_x0

        abar = torch.as_tensor(abar_t, dtype=torch.float32, device=eps_hat.device).reshape(-1)
        column = abar.reshape(-1, 1, 1, 1, 1)
        return cls(eps_hat, eps, x0, epsilon_x0(eps_hat, x_t, column), epsilon_signal(eps_hat, x_t, column), x_t,
                   abar.sqrt())

    @property
    def frames(self) -> int:
        return self.prediction.shape[2]

    def signal(self) -> torch.Tensor:
        """``signal_t`` as fp32 of shape ``(b, 1, 1, 1, 1)`` (or ``(1, 1, 1, 1, 1)``) on the prediction's device."""
        signal = torch.as_tensor(self.signal_scale, dtype=torch.float32, device=self.prediction.device)
        return signal.reshape(-1, 1, 1, 1, 1)


def frame_diff(z: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Frame residuals ``Δ_f z = z[:, :, s:] - z[:, :, :-s]``: ``(b, c, f, h, w)`` -> ``(b, c, f-s, h, w)``."""
    return z[:, :, stride:] - z[:, :, :-stride]


def x0_motion(step: StepTensors, x0_estimate: str) -> tuple[torch.Tensor, torch.Tensor]:
    """x0-space motion of prediction and target for the SMA terms: ``(d_hat, d)``, fp32 ``(b, c, f-1, h, w)``.

    ``d = |Δ_f x0|``, ``d_hat = |Δ_f x0_hat|`` (SMA, Park et al. 2025; docs/METHODS.md §2), always
    in fp32 so that fp16/bf16 inputs cannot overflow. ``x0_estimate`` chooses how x0 is measured:

    - ``"scaled"``: both sides are multiplied by ``signal_t``, i.e. the motion of the
      *signal part of x_t* (``signal_hat``, formed without a division). For ε-prediction, ``sqrt(abar_t)·(x0_hat - x0) = sqrt(1-abar_t)·(eps -
      eps_hat)``, bounded for every t, so the spectral terms stay on the scale of the noise loss at
      every timestep. At small t (``abar_t`` ≈ 1) this equals the released code; near t = T it fades
      the x0 target out and the terms reduce to aligning the predicted noise's motion with the
      sampled noise's. The phase term is scale-invariant and so unchanged; the wavelet and amplitude
      terms are the released ones times ``signal_t``.
    - ``"released"`` (default): the released SMA code, ``x0_hat = (x_t - sqrt(1-abar_t)·eps_hat) /
      sqrt(abar_t)`` for ε-prediction (for flow matching ``x_σ - σ·v_hat``, no division), neither clamped
      nor weighted. Near t = T, ``1/sqrt(abar_t)`` reaches ~2·10⁴ (cosine schedule; at most ~15 on the
      schedules of the families the pack loads) and the terms grow by that factor; in the released
      training only the grad-norm clip contains it (``abar_t`` is floored at
      :data:`motion_core.sampling.ABAR_FLOOR`). The default by measurement: on the toy Wan model
      VMC + SMA memorises its clip at 0.94 released against 0.78 scaled (+0.15 [+0.05, +0.33] paired,
      8 of 8), and on the toy AnimateDiff model the two transfer alike; ``scaled`` takes out the
      high-noise weight where the path is decided.
    """
    if x0_estimate not in X0_ESTIMATES:
        raise InputError("x0_estimate", f"unknown x0 estimate {x0_estimate!r}; use one of {', '.join(X0_ESTIMATES)}")
    if x0_estimate == "scaled":
        x0_hat, x0 = step.signal_hat.float(), step.signal() * step.x0.float()
    else:
        x0_hat, x0 = step.x0_hat.float(), step.x0.float()
    return frame_diff(x0_hat).abs(), frame_diff(x0).abs()
