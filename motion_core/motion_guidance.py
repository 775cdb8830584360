"""FlowMotion's training-free motion guidance: the latent, not the model, follows the reference.

Wang, Xu, Xiao, Chen — *FlowMotion: Training-Free Flow Guidance for Video Motion Transfer* (CVPR 2026,
MIT licence); docs/METHODS.md §11. Nothing is trained. At each of the first sampler steps (10 of
50 in the paper), before the step's denoiser call, a few Adam steps move the latent ``x_t`` to lower

    L = α·mean((x0_hat − r)²) + β·mean((D(x0_hat) − D(r))²)

where ``x0_hat`` is the target's clean-latent estimate at ``x_t``, ``r`` the reference's estimate at
the same noise level (the clean reference noised with fresh noise, no inversion, empty prompt) and
``D`` the absolute differences between frames (:func:`frame_differences`). As in the released code
the denoiser's output is held constant while the latent moves (a stop-gradient): ``x0_hat`` is the
family's ``x0_from(prediction, x_t, t)`` with the gradient through ``x_t`` alone, so a guided step
holds no activations of the model, only a few latent-sized tensors, and no weight ever gets a
gradient. A velocity regulariser damps the part of the predicted velocity that leaves the path
taken so far (:func:`sideways`).

Everything goes through the family's :class:`~motion_core.sampling.Sampling` (``noised``,
``x0_from``, ``scales``) and the sampler's :data:`~motion_core.sampling.LatentGuide` hook, so the
guidance runs on every family: DDPM/DDIM (ε or v) and flow matching (Wan). Latents are
``(b, c, f, h, w)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .errors import InputError
from .progress import Progress
from .sampling import DenoiseFn, LatentGuide, Sampling

if TYPE_CHECKING:
    from .pipeline import VideoLatents

REFERENCE_ESTIMATES = ("noised", "clean")
"""What the target's estimate is compared with: the reference's x0 estimate from the reference
noised with fresh noise at the step's level (the paper's default), or the clean reference itself
(the released code's variant for complex motion)."""


GUIDANCE_DEFAULTS: dict = {"fraction": 0.2, "adam_steps": 3, "lr": 3e-3, "latent_weight": 20.0,
                           "difference_weight": 5.0, "regulariser": 0.9, "seed": 0, "estimate": "noised"}
"""The settings of :class:`MotionGuidance` besides the reference at their defaults, the released code's
(10 of 50 steps, 3 Adam steps at lr 3e-3, α 20, β 5, 10 % of the sideways velocity kept)."""


@dataclass(frozen=True)
class MotionGuidance:
    """Settings of FlowMotion's guidance, with the reference it follows; defaults: :data:`GUIDANCE_DEFAULTS`.

    Attributes:
        reference: clean latents of the reference clip ``(1, c, f, h, w)`` (Encode Reference), of the
            size of the noise sampled from.
        fraction: share of the sampler's steps that are guided, from the first (0.2 = 10 of 50).
        adam_steps: Adam steps on the latent per guided step (3).
        lr: Adam's learning rate (3e-3; the released README advises up to 1e-2 for hard motions).
        latent_weight: α, weight of the x0-estimate MSE (20).
        difference_weight: β, weight of the frame-difference MSE (5).
        regulariser: share of the predicted velocity's sideways part (across the path taken so far)
            that the guided estimate leaves out: 0 off, 0.9 the released code's (it keeps 10 %).
        seed: of the fresh noise the reference is noised with (a new draw each guided step).
        estimate: one of :data:`REFERENCE_ESTIMATES`.
    """

    reference: VideoLatents
    fraction: float = GUIDANCE_DEFAULTS["fraction"]
    adam_steps: int = GUIDANCE_DEFAULTS["adam_steps"]
    lr: float = GUIDANCE_DEFAULTS["lr"]
    latent_weight: float = GUIDANCE_DEFAULTS["latent_weight"]
    difference_weight: float = GUIDANCE_DEFAULTS["difference_weight"]
    regulariser: float = GUIDANCE_DEFAULTS["regulariser"]
    seed: int = GUIDANCE_DEFAULTS["seed"]
    estimate: str = GUIDANCE_DEFAULTS["estimate"]

    def validate(self) -> MotionGuidance:
        """The settings, checked; :class:`InputError` names the Motion Guidance node's input."""
        from .pipeline import VideoLatents

        if not isinstance(self.reference, VideoLatents) or self.reference.noise:
            raise InputError("latents", "expected the clean reference latents from Encode Reference")
        if self.reference.samples.ndim != 5 or self.reference.samples.shape[2] < 2:
            raise InputError("latents", f"expected one video of at least 2 frames, got latents of shape "
                                        f"{tuple(self.reference.samples.shape)}")
        _number(self.fraction, "guided_fraction", 0.0, 1.0, "a share of the steps from 0 to 1 (FlowMotion: 0.2)")
        if isinstance(self.adam_steps, bool) or not isinstance(self.adam_steps, int) or not 1 <= self.adam_steps <= 100:
            raise InputError("adam_steps", f"{self.adam_steps!r} is not valid; use a whole number from 1 to 100 "
                                           "(FlowMotion: 3)")
        _number(self.lr, "lr", 0.0, 1.0, "a learning rate above 0 (FlowMotion: 0.003)", low_open=True)
        _number(self.latent_weight, "latent_weight", 0.0, 1e6, "a weight of 0 or more (FlowMotion: 20)")
        _number(self.difference_weight, "difference_weight", 0.0, 1e6, "a weight of 0 or more (FlowMotion: 5)")
        if self.latent_weight == 0 and self.difference_weight == 0:
            raise InputError("difference_weight", "both weights are 0, so nothing would guide the latent; give "
                                                  "latent_weight or difference_weight a value above 0")
        _number(self.regulariser, "velocity_regulariser", 0.0, 1.0, "a share from 0 (off) to 1 (FlowMotion: 0.9)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**64:
            raise InputError("seed", f"{self.seed!r} is not valid; use a whole number of 0 or more")
        if self.estimate not in REFERENCE_ESTIMATES:
            raise InputError("reference_estimate", f"{self.estimate!r} is not valid; use one of "
                                                   f"{', '.join(REFERENCE_ESTIMATES)}")
        return self


def _number(value, name: str, low: float, high: float, advice: str, low_open: bool = False) -> None:
    valid = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not valid or not low <= value <= high or (low_open and value == low):
        raise InputError(name, f"{value!r} is not valid; use {advice}")


def guided_step_count(fraction: float, steps: int) -> int:
    """How many of ``steps`` sampler steps a ``fraction`` guides, rounded up (0.2 of 50 = 10, of 2 = 1),
    so that any fraction above 0 guides at least the first step."""
    return min(steps, math.ceil(fraction * steps - 1e-9))


def frame_pairs(frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(first, second)`` of the frame pairs :func:`frame_differences` compares: each
    consecutive pair ``(k, k+1)``, then every ordered pair ``(i, j)``, ``i ≠ j`` (the released code's
    set: ``(f-1) + f·(f-1) = f² - 1`` pairs, so consecutive pairs weigh three times, others twice)."""
    consecutive = torch.arange(frames - 1)
    i, j = torch.meshgrid(torch.arange(frames), torch.arange(frames), indexing="ij")
    others = i != j
    return torch.cat([consecutive, i[others]]), torch.cat([consecutive + 1, j[others]])


def frame_differences(x: torch.Tensor) -> torch.Tensor:
    """FlowMotion's motion representation: ``|x_i - x_j|`` for the pairs of :func:`frame_pairs`.

    ``(b, c, f, h, w)`` -> ``(b, c, f² - 1, h, w)``. Absolute differences keep where and how much
    the content changes between frames, not its colour: what carries motion to another subject.
    """
    first, second = frame_pairs(x.shape[2])
    return (x[:, :, first.to(x.device)] - x[:, :, second.to(x.device)]).abs()


def guidance_loss(x0_hat: torch.Tensor, reference: torch.Tensor, latent_weight: float,
                  difference_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """``α·mean((x0_hat - r)²) + β·mean((D(x0_hat) - D(r))²)`` (fp32) and its terms as floats.

    Args:
        x0_hat: the target's clean-latent estimate ``(b, c, f, h, w)``.
        reference: the reference's estimate (or clean latents), broadcastable to ``x0_hat``.
        latent_weight, difference_weight: α and β.
    """
    reference = reference.float().expand_as(x0_hat)
    latent = (x0_hat.float() - reference).square().mean()
    difference = (frame_differences(x0_hat.float()) - frame_differences(reference)).square().mean()
    loss = latent_weight * latent + difference_weight * difference
    return loss, {name: float(term.detach()) for name, term in
                  (("loss", loss), ("latent", latent), ("difference", difference))}


def rectified(sampling: Sampling, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` in rectified-flow coordinates: ``(x / (signal_t + noise_t), noise_t / (signal_t + noise_t))``.

    Any ``x_t = signal_t·x0 + noise_t·eps`` divided by ``signal_t + noise_t`` is
    ``(1 - σ)·x0 + σ·eps`` with that σ, a point on the straight path from ``x0`` to ``eps``, where the
    velocity ``eps - x0`` is defined for every family (flow models: the identity). Returns the latent
    (fp32) and σ as a ``(b or 1, 1, 1, 1, 1)`` column.
    """
    signal, noise = (torch.as_tensor(s, dtype=torch.float32).to(x.device).reshape(-1, 1, 1, 1, 1)
                     for s in sampling.scales(t))
    return x.float() / (signal + noise), noise / (signal + noise)


def sideways(velocity: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """The part of ``velocity`` perpendicular to ``direction`` at each latent position (over channels).

    ``(b, c, f, h, w)`` each -> the same shape: ``v - (<v, d> / (|d|² + 1e-8))·d`` with the inner
    products over ``c``, as the released code splits the predicted velocity against the mean one.
    """
    along = (velocity * direction).sum(1, keepdim=True) / (direction.square().sum(1, keepdim=True) + 1e-8)
    return velocity - along * direction


class LatentGuidance:
    """The :data:`~motion_core.sampling.LatentGuide` of one sampling run (state: the path so far).

    Args:
        settings: validated :class:`MotionGuidance`.
        sampling: the family's process.
        denoise: the target's prediction ``denoise(x, t)`` (prompt, guidance scale, adapters: the
            sampler's own); reference_denoise: the reference's (empty prompt, no guidance).
        steps: the sampler's step count (for the guided share and progress).
        progress: called with the steps done so far before each Adam step: cancel works inside
            the guided steps, which cost ``adam_steps + 1`` extra denoiser calls each.
        history: when given, each Adam step's loss terms are appended (tests, benchmarks).
    """

    def __init__(self, settings: MotionGuidance, sampling: Sampling, denoise: DenoiseFn,
                 reference_denoise: DenoiseFn, steps: int, progress: Progress | None = None,
                 history: list[dict[str, float]] | None = None):
        self.settings, self.sampling, self.denoise, self.reference_denoise = settings, sampling, denoise, reference_denoise
        self.steps, self.progress, self.history = steps, progress, history
        self.count = guided_step_count(settings.fraction, steps)
        self.noise = torch.Generator().manual_seed(settings.seed)
        self.start: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, x: torch.Tensor, t: torch.Tensor, index: int) -> torch.Tensor:
        if index >= self.count:
            return x
        if index == 0:
            self.start = rectified(self.sampling, x, t)
        # ComfyUI runs nodes in inference mode: the latent's own small graph is built outside it
        with torch.inference_mode(False), torch.enable_grad():
            reference = self.reference_estimate(x, t).clone()
            mean_velocity = self.mean_velocity(x, t) if index > 0 and self.settings.regulariser > 0 else None
            latent = x.detach().clone().float().requires_grad_(True)
            optimiser = torch.optim.Adam([latent], lr=self.settings.lr)
            for _ in range(self.settings.adam_steps):
                if self.progress is not None:
                    self.progress(index, self.steps)
                loss, terms = guidance_loss(self.estimate(latent, t, x.dtype, mean_velocity), reference,
                                            self.settings.latent_weight, self.settings.difference_weight)
                optimiser.zero_grad(set_to_none=True)
                loss.backward(inputs=[latent])
                optimiser.step()
                if self.history is not None:
                    self.history.append({"step": index, **terms})
        return latent.detach().to(x.dtype)

    def estimate(self, latent: torch.Tensor, t: torch.Tensor, dtype: torch.dtype,
                 mean_velocity: torch.Tensor | None) -> torch.Tensor:
        """The target's ``x0_hat`` at the fp32 ``latent`` (differentiable in it), regularised from the
        second guided step on; the model runs in ``dtype``."""
        with torch.no_grad():  # the stop-gradient: the model's output is a constant of the step
            prediction = self.denoise(latent.detach().to(dtype), t).clone()
        x0_hat = self.sampling.x0_from(prediction, latent, t)
        if mean_velocity is None:
            return x0_hat
        return x0_hat + self.regularisation(latent.detach(), x0_hat.detach(), t, mean_velocity)

    @torch.no_grad()
    def reference_estimate(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``r``: the reference's x0 estimate at ``t`` from fresh noise (fp32, ``(1, c, f, h, w)``), or the
        clean reference (``estimate="clean"``)."""
        clean = self.settings.reference.samples.to(x.device, torch.float32)
        if self.settings.estimate == "clean":
            return clean
        eps = torch.randn(clean.shape, generator=self.noise, dtype=torch.float32).to(x.device)
        t = t[:1] if t.ndim else t  # one reference, whatever the batch sampled
        x_t = self.sampling.noised(clean, eps, t).to(x.dtype)
        return self.sampling.x0_from(self.reference_denoise(x_t, t), x_t, t)

    def mean_velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The average velocity of the path from the first guided step's latent to ``x`` (rectified
        coordinates, fp32): the direction sampling has kept so far."""
        start, start_sigma = self.start
        here, sigma = rectified(self.sampling, x, t)
        return (here - start) / (sigma - start_sigma)

    def regularisation(self, x: torch.Tensor, x0_hat: torch.Tensor, t: torch.Tensor,
                       mean_velocity: torch.Tensor) -> torch.Tensor:
        """What the regulariser adds to ``x0_hat`` (a constant of the Adam step): ``σ·w·sideways(v)``.

        With the predicted velocity ``v = (x̃ - x0_hat)/σ`` in rectified coordinates, ``x0 = x̃ - σ·v``;
        the released code keeps ``1 - w`` of ``v``'s part across the mean velocity, i.e. adds
        ``σ·w·sideways(v, v̄)`` to the estimate (flow models: exactly its formula).
        """
        here, sigma = rectified(self.sampling, x, t)
        velocity = (here - x0_hat) / sigma
        return sigma * self.settings.regulariser * sideways(velocity, mean_velocity)


def guide_for(settings: MotionGuidance | None, sampling: Sampling, denoise: DenoiseFn, reference_denoise: DenoiseFn,
              steps: int, progress: Progress | None = None,
              history: list[dict[str, float]] | None = None) -> LatentGuide | None:
    """The sampler's ``guide`` for ``settings`` (None without settings or with no guided step, so that
    sampling is then exactly the unguided one)."""
    if settings is None or guided_step_count(settings.fraction, steps) == 0:
        return None
    return LatentGuidance(settings, sampling, denoise, reference_denoise, steps, progress, history)
