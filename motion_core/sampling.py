"""How a model family relates clean latents, noise, time and its denoiser's output.

In the spirit of ComfyUI's ``model_sampling`` (EPS / V / CONST) and k-diffusion's denoisers: a
:class:`Sampling` object is everything training, the objectives, inversion and sampling need to
know about a family's diffusion process, so that none of them assumes ε-prediction on a DDPM
schedule. A noisy latent is always ``x_t = signal_t·x0 + noise_t·eps``:

- discrete diffusion (DDPM/DDIM, :class:`DiscreteDiffusion`): ``signal_t = sqrt(abar_t)``,
  ``noise_t = sqrt(1 - abar_t)``, the denoiser predicting ``eps`` (ModelScope, ZeroScope, SD1.5) or
  ``v = signal_t·eps - noise_t·x0``;
- flow matching (Wan, later): ``signal = 1 - σ``, ``noise = σ``, the denoiser predicting
  ``v = eps - x0``.

Tensors are video latents ``(b, c, f, h, w)``; timesteps ``t`` are ``(b,)`` tensors (or scalars)
in the family's own units (integer steps 0..T-1 for discrete diffusion).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import InputError
from .progress import LatentPreview, Progress

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``denoise(x (b, c, f, h, w), t) -> prediction`` in the family's parameterisation (guidance included)."""

LatentGuide = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
"""``guide(x (b, c, f, h, w), t, index) -> x``: called by a sampler before the denoiser call of its step
``index`` (0-based, at timestep ``t``); the step continues from the latent it returns (``x`` itself to
change nothing). Training-free guidance that edits the latent (FlowMotion, docs/METHODS.md §11) enters here."""

ABAR_FLOOR = 1e-9
"""Smallest ``abar_t`` an x0 estimate divides by (``sqrt`` = 3.2e-5).

Just below the smallest non-zero ``abar_t`` of the common schedules (cosine: 2.4e-9 at t = 999,
where ``1/sqrt(abar_t)`` ≈ 2·10⁴), so on those the estimate is the plain formula; only
zero-terminal-SNR schedules (``abar_T = 0``) are affected, where it would divide by zero.
"""


@dataclass(frozen=True)
class TimestepDistribution:
    """Where training draws its timesteps, as fractions of the family's noise range (0 = clean, 1 = pure noise).

    ``u ~ U[0, 1)`` is pushed toward high noise by ``shift`` (``u' = shift·u / (1 + (shift-1)·u)``, the
    time shift of Esser et al. 2024; 1 = no shift) and mapped onto ``[low, high]`` of the family's
timesteps by its :meth:`Sampling.draw_timesteps`. The default,
    ``(0, 1, 1)``, is the uniform draw the methods' released code makes.

    Why it is an option: where a clip's path is decided, at high noise, noise-space losses drawn
    uniformly are nearly flat (see the toy-world figures in BENCHMARKS.md and issue notes).
    """

    low: float = 0.0
    high: float = 1.0
    shift: float = 1.0

    def validate(self) -> TimestepDistribution:
        for name in ("low", "high", "shift"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"timestep_{name}", f"{value!r} is not valid; use a number")
        if not 0.0 <= self.low < self.high <= 1.0:
            raise InputError("timestep_low", f"[{self.low}, {self.high}] is not a timestep range; use "
                                             "0 <= low < high <= 1 (fractions of the noise range, 1 = pure noise)")
        if self.shift <= 0:
            raise InputError("timestep_shift", f"{self.shift!r} is not valid; use a number > 0 (1 = no shift, "
                                               "3 = more draws at high noise)")
        return self

    @property
    def uniform(self) -> bool:
        return (self.low, self.high, self.shift) == (0.0, 1.0, 1.0)

    def shifted_uniform(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """``batch`` shifted draws ``u'`` in ``[0, 1)`` (fp64 on the CPU), before the range is applied."""
        u = torch.rand(batch, generator=generator, dtype=torch.float64)
        return self.shift * u / (1 + (self.shift - 1) * u)


LOSS_WEIGHTINGS = ("none", "min_snr", "x0", "v")
"""Values of :attr:`LossWeighting.kind`; the first is the default."""

SNR_FLOOR = ABAR_FLOOR / (1 - ABAR_FLOOR)
"""Smallest ``SNR_t`` a loss weight divides by (≈ 1e-9): the SNR at :data:`ABAR_FLOOR`, where
:meth:`Sampling.x0_from` floors its division too. It matters only on zero-terminal-SNR schedules
(``SNR_T = 0``), where the ε-prediction weights ``1/SNR_t`` would be infinite."""


@dataclass(frozen=True)
class LossWeighting:
    """How each sample's loss is weighted by its noise level (docs/METHODS.md §1, "Timesteps and loss weighting").

    With ``SNR_t = signal_t² / noise_t²`` (DDPM: ``abar_t / (1 - abar_t)``), the plain MSE between a
    prediction and its target is an x0-space squared error ``|x0_hat - x0|²`` weighted by ``SNR_t``
    for ε-prediction and by ``SNR_t + 1`` for v-prediction (Hang et al. 2023, "Efficient Diffusion
    Training via Min-SNR Weighting Strategy", §3). Each option puts another x0-space weight ``w_t``
    in its place, i.e. multiplies the sample's loss by ``w_t / SNR_t`` (ε) or ``w_t / (SNR_t + 1)`` (v):

    - ``none``: the model's own weight; factor 1 (what the methods' released code trains with).
    - ``min_snr``: ``w_t = min(SNR_t, γ)``; ε: ``min(SNR_t, γ)/SNR_t``, v: ``min(SNR_t, γ)/(SNR_t + 1)``.
    - ``x0``: ``w_t = 1``, the squared error of ``x0_hat``; ε: ``1/SNR_t``, v: ``1/(SNR_t + 1)``.
    - ``v``: ``w_t = SNR_t + 1``, the squared error of v; ε: ``(SNR_t + 1)/SNR_t``, v: 1.

    Flow models (``v = eps - x0``, :class:`FlowMatching`) weight the x0 error by ``1/σ²`` in their
    plain loss: the factor is ``w_t·σ²`` (``x0``: σ², ``min_snr``: ``min(SNR_t, γ)·σ²``) and ``v``
    is their own loss (factor 1).

    ``min_snr`` is Hang et al.'s Min-SNR-γ (γ = 5 in the paper): it caps the weight of the nearly
    clean timesteps. ``x0`` and ``v`` move the weight toward high noise instead (for ε-prediction
    ``1/SNR_t`` is 8.5e-4 at t = 0 and 214 at t = 999 on ZeroScope's schedule); ``v`` is Salimans &
    Ho 2022's "SNR+1" weighting.
    """

    kind: str = "none"
    gamma: float = 5.0

    def validate(self) -> LossWeighting:
        if self.kind not in LOSS_WEIGHTINGS:
            raise InputError("loss_weighting", f"{self.kind!r} is not valid; use one of {', '.join(LOSS_WEIGHTINGS)}")
        gamma = self.gamma
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not math.isfinite(gamma) or gamma <= 0:
            raise InputError("min_snr_gamma", f"{gamma!r} is not valid; use a number > 0 (Min-SNR: 5)")
        return self

    def weights(self, sampling: Sampling, t: torch.Tensor) -> torch.Tensor | None:
        """The weights ``(b,)`` (fp32, CPU) of the samples at timesteps ``t`` ``(b,)``; None for ``none``,
        whose loss is the plain mean (the same computation as without weights, bit for bit)."""
        if self.kind == "none":
            return None
        snr = sampling.snr(t).double().reshape(-1)
        if sampling.prediction == "epsilon":
            inverse = 1 / snr.clamp_min(SNR_FLOOR)
            # min(SNR, γ)/SNR written as min(γ/SNR, 1): its limit 1 at SNR = 0, not 0/0
            weight = {"min_snr": (self.gamma * inverse).clamp_max(1), "x0": inverse, "v": 1 + inverse}[self.kind]
        elif sampling.prediction == "v_prediction":
            x0_weight = {"min_snr": snr.clamp_max(self.gamma), "x0": torch.ones_like(snr), "v": snr + 1}[self.kind]
            weight = x0_weight / (snr + 1)
        elif sampling.prediction == "flow":
            # a flow model's v-MSE weights the x0 error by 1/σ² (x0_hat - x0 = -σ·(v_hat - v)); its target is v
            sigma_squared = sampling.scales(t)[1].double().reshape(-1).square()
            x0_weight = {"min_snr": snr.clamp_max(self.gamma), "x0": torch.ones_like(snr),
                         "v": 1 / sigma_squared.clamp_min(SNR_FLOOR)}[self.kind]
            weight = x0_weight * sigma_squared
        else:
            raise InputError("loss_weighting", f"{self.kind} is defined for ε-, v- and flow-prediction models; this model "
                                               f"predicts {sampling.prediction!r}; use none")
        return weight.float()


def epsilon_signal(eps_hat: torch.Tensor, x_t: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """``sqrt(abar)·x0_hat = x_t - sqrt(1-abar)·eps_hat`` (fp32) of an ε-prediction; ``abar`` broadcasts."""
    return x_t.float() - (1.0 - abar).clamp_min(0.0).sqrt() * eps_hat.float()


def epsilon_x0(eps_hat: torch.Tensor, x_t: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """``x0_hat`` (fp32) of an ε-prediction, ``abar`` floored at :data:`ABAR_FLOOR`; ``abar`` broadcasts."""
    return epsilon_signal(eps_hat, x_t, abar) / abar.clamp_min(ABAR_FLOOR).sqrt()


def _column(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(b,)`` or scalar per-sample values as ``(b, 1, 1, 1, 1)`` fp32 on ``like``'s device."""
    return torch.as_tensor(values, dtype=torch.float32).to(like.device).reshape(-1, *([1] * (like.ndim - 1)))


class Sampling(ABC):
    """A family's diffusion process: noising, training targets, conversions, sampling, inversion.

    Attributes:
        prediction: what the denoiser outputs: ``"epsilon"``, ``"v_prediction"`` or ``"flow"``.
    """

    prediction: str

    @abstractmethod
    def draw_timesteps(self, batch: int, generator: torch.Generator,
                       distribution: TimestepDistribution = TimestepDistribution()) -> torch.Tensor:
        """Training timesteps ``(batch,)`` on the CPU, drawn from ``generator`` as ``distribution`` says."""

    @abstractmethod
    def scales(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(signal_t, noise_t)``, fp32 tensors shaped like ``t``: ``x_t = signal_t·x0 + noise_t·eps``."""

    @abstractmethod
    def target(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the denoiser is trained to output for ``x_t`` made of ``x0`` and ``eps``."""

    @abstractmethod
    def x0_from(self, prediction: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The clean-latent estimate ``x0_hat`` (fp32) the prediction implies; differentiable."""

    @abstractmethod
    def signal_from(self, prediction: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``signal_t·x0_hat`` (fp32), the signal part of ``x_t`` the prediction implies, formed without
        dividing by ``signal_t`` (finite at every t); differentiable."""

    @abstractmethod
    def sample(self, denoise: DenoiseFn, x_T: torch.Tensor, steps: int, progress: Progress | None = None,
               preview: LatentPreview | None = None, guide: LatentGuide | None = None) -> torch.Tensor:
        """Deterministic sampling from noise ``x_T`` to clean latents with ``steps`` denoiser calls;
        ``preview`` sees each step's clean-latent estimate; ``guide`` may move the latent before each
        step's denoiser call (:data:`LatentGuide`)."""

    @abstractmethod
    def invert(self, denoise: DenoiseFn, x0: torch.Tensor, steps: int, progress: Progress | None = None,
               preview: LatentPreview | None = None) -> torch.Tensor:
        """The sampler run backwards: the noise that :meth:`sample` turns (about) back into ``x0``;
        ``preview`` sees each step's clean-latent estimate."""

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """The signal-to-noise ratio ``SNR_t = signal_t² / noise_t²`` (fp32, shaped like ``t``)."""
        signal, noise = self.scales(t)
        return signal.square() / noise.square()

    def noised(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x_t = signal_t·x0 + noise_t·eps`` for ``(b, c, f, h, w)`` latents and ``(b,)`` timesteps."""
        signal, noise = (_column(s, x0) for s in self.scales(t))
        return signal * x0 + noise * eps


class DiscreteDiffusion(Sampling):
    """DDPM noising with DDIM sampling and inversion, from a diffusers scheduler config.

    The schedule (``alphas_cumprod``, T values) is the one diffusers' ``DDPMScheduler`` builds from
    the config (``beta_schedule``, ``beta_start/end``, ``num_train_timesteps``, zero-SNR rescaling);
    ``prediction_type`` ``epsilon`` or ``v_prediction``. Training draws ``t ~ U{0..T-1}`` by
    default; a :class:`TimestepDistribution` maps its fractions onto ``0..T-1`` (1 = ``T-1``).
    """

    PREDICTIONS = ("epsilon", "v_prediction")

    def __init__(self, scheduler_config: dict):
        from diffusers import DDPMScheduler

        self.scheduler_config = dict(scheduler_config)
        self.prediction = self.scheduler_config.get("prediction_type", "epsilon")
        if self.prediction not in self.PREDICTIONS:
            raise InputError("model", f"its scheduler predicts {self.prediction!r}; the pack trains models that "
                                      f"predict {' or '.join(self.PREDICTIONS)}")
        self.alphas_cumprod = DDPMScheduler.from_config(self.scheduler_config).alphas_cumprod.float()
        """``abar_t`` for t = 0..T-1, ``(T,)`` fp32 on the CPU."""

    def __repr__(self) -> str:
        return f"DiscreteDiffusion({self.prediction}, T={self.alphas_cumprod.numel()})"

    def draw_timesteps(self, batch: int, generator: torch.Generator,
                       distribution: TimestepDistribution = TimestepDistribution()) -> torch.Tensor:
        steps = self.alphas_cumprod.numel()
        if distribution.uniform:  # the released code's draw, kept bit for bit
            return torch.randint(0, steps, (batch,), generator=generator)
        low, high = round(distribution.low * (steps - 1)), round(distribution.high * (steps - 1))
        u = distribution.shifted_uniform(batch, generator)
        return (low + (u * (high - low + 1)).floor().long()).clamp(low, high)

    def abar(self, t: torch.Tensor) -> torch.Tensor:
        """``abar_t`` fp32, shaped like ``t``."""
        return self.alphas_cumprod[torch.as_tensor(t, dtype=torch.long).cpu()]

    def scales(self, t):
        abar = self.abar(t)
        return abar.sqrt(), (1 - abar).sqrt()

    def snr(self, t):
        abar = self.abar(t)
        return abar / (1 - abar)

    def target(self, x0, eps, t):
        if self.prediction == "epsilon":
            return eps
        signal, noise = (_column(s, x0) for s in self.scales(t))
        return signal * eps - noise * x0

    def x0_from(self, prediction, x_t, t):
        abar = _column(self.abar(t), x_t)
        if self.prediction == "epsilon":
            return epsilon_x0(prediction, x_t, abar)
        return abar.sqrt() * x_t.float() - (1.0 - abar).sqrt() * prediction.float()

    def signal_from(self, prediction, x_t, t):
        abar = _column(self.abar(t), x_t)
        if self.prediction == "epsilon":
            return epsilon_signal(prediction, x_t, abar)
        return abar.sqrt() * self.x0_from(prediction, x_t, t)

    def sample(self, denoise, x_T, steps, progress=None, preview=None, guide=None):
        from .sample import sample

        return sample(denoise, x_T, self.scheduler_config, steps, progress, preview, guide)

    def invert(self, denoise, x0, steps, progress=None, preview=None):
        from .invert import invert

        return invert(denoise, x0, self.scheduler_config, steps, progress, preview)


def flow_shift(fraction: torch.Tensor, shift: float) -> torch.Tensor:
    """The time shift of flow models, ``σ = shift·u / (1 + (shift-1)·u)`` (Esser et al. 2024; Wan: 3 to 8)."""
    return shift * fraction / (1 + (shift - 1) * fraction)


class FlowMatching(Sampling):
    """Rectified flow (Wan): ``x_σ = (1-σ)·x0 + σ·eps``, the denoiser predicting ``v = eps - x0``.

    Timesteps are the transformer's: ``t = 1000·σ`` (float), σ ∈ [0, 1], 1 = pure noise. Identities
    (docs/METHODS.md, flow matching): ``x0_hat = x_σ - σ·v_hat``, ``eps_hat = x_σ + (1-σ)·v_hat``; the
    x0 error is ``-σ·(v_hat - v)``, so a plain v-MSE weights the x0-space error by ``1/σ²``.

    Training draws ``u ~ U[0, 1)`` (pushed by a :class:`TimestepDistribution`'s own shift and mapped
    onto its ``[low, high]``), then applies the model's ``shift``: ``σ = flow_shift(u, shift)``.
    Sampling is first-order Euler on the grid ``σ_k = flow_shift((steps - k) / steps, shift)``,
    k = 0..steps (1 → 0; ComfyUI's "simple" schedule for flow models); inversion runs the same grid
    upward with the velocity at the current point (the DDIM-inversion analogue, exact only where
    the velocity does not change along a step).
    """

    prediction = "flow"
    TIMESTEP_SCALE = 1000.0

    def __init__(self, shift: float = 1.0):
        if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not math.isfinite(shift) or shift <= 0:
            raise InputError("model", f"its flow shift {shift!r} is not valid; a number > 0 is needed")
        self.shift = float(shift)

    def __repr__(self) -> str:
        return f"FlowMatching(shift={self.shift})"

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """σ (fp32, shaped like ``t``) of transformer timesteps ``t``."""
        return torch.as_tensor(t, dtype=torch.float32).cpu() / self.TIMESTEP_SCALE

    def draw_timesteps(self, batch, generator, distribution=TimestepDistribution()):
        u = distribution.shifted_uniform(batch, generator)
        fraction = distribution.low + (distribution.high - distribution.low) * u
        return (flow_shift(fraction, self.shift) * self.TIMESTEP_SCALE).float()

    def scales(self, t):
        sigma = self.sigma(t)
        return 1 - sigma, sigma

    def target(self, x0, eps, t):
        return eps - x0

    def x0_from(self, prediction, x_t, t):
        return x_t.float() - _column(self.sigma(t), x_t) * prediction.float()

    def signal_from(self, prediction, x_t, t):
        return _column(1 - self.sigma(t), x_t) * self.x0_from(prediction, x_t, t)

    def grid(self, steps: int) -> torch.Tensor:
        """The ``steps + 1`` σ values sampling visits, from 1 down to 0 (fp64)."""
        from .sample import check_steps

        check_steps(steps)
        return flow_shift(torch.arange(steps, -1, -1, dtype=torch.float64) / steps, self.shift)

    def _euler(self, denoise, x, sigmas, progress, preview, guide=None):
        steps = len(sigmas) - 1
        for done, (here, there) in enumerate(zip(sigmas[:-1], sigmas[1:]), start=1):
            t = torch.full((x.shape[0],), float(here) * self.TIMESTEP_SCALE, device=x.device)
            if guide is not None:
                x = guide(x, t, done - 1)
            velocity = denoise(x, t).to(x.dtype)
            if preview is not None:
                preview(x - float(here) * velocity)  # x0_hat = x_σ − σ·v
            x = x + float(there - here) * velocity
            if progress is not None:
                progress(done, steps)
        return x

    def sample(self, denoise, x_T, steps, progress=None, preview=None, guide=None):
        return self._euler(denoise, x_T, self.grid(steps), progress, preview, guide)

    def invert(self, denoise, x0, steps, progress=None, preview=None):
        return self._euler(denoise, x0, self.grid(steps).flip(0), progress, preview)
