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
from .progress import Progress

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``denoise(x (b, c, f, h, w), t) -> prediction`` in the family's parameterisation (guidance included)."""

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
    def sample(self, denoise: DenoiseFn, x_T: torch.Tensor, steps: int,
               progress: Progress | None = None) -> torch.Tensor:
        """Deterministic sampling from noise ``x_T`` to clean latents with ``steps`` denoiser calls."""

    @abstractmethod
    def invert(self, denoise: DenoiseFn, x0: torch.Tensor, steps: int,
               progress: Progress | None = None) -> torch.Tensor:
        """The sampler run backwards: the noise that :meth:`sample` turns (about) back into ``x0``."""

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

    def sample(self, denoise, x_T, steps, progress=None):
        from .sample import sample

        return sample(denoise, x_T, self.scheduler_config, steps, progress)

    def invert(self, denoise, x0, steps, progress=None):
        from .invert import invert

        return invert(denoise, x0, self.scheduler_config, steps, progress)
