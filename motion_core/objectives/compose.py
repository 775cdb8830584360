"""Build the training objective a spec describes: ``L = base + λ_g·L_g + λ_l·L_l``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InputError
from .motion_director import debiased_loss, draw_anchor
from .mse import noise_mse
from .sma import sma_global, sma_local
from .spec import ObjectiveSpec
from .step import StepTensors, x0_motion
from .vmc import vmc_loss


@dataclass(frozen=True)
class ObjectiveResult:
    """What one objective evaluation gives.

    Attributes:
        total: the fp32 scalar to back-propagate.
        terms: detached fp32 scalars for logging, without the spec's λ weights: ``base`` and, where
            they apply, ``mse`` and ``debiased`` (MotionDirector's two parts), ``sma_global``,
            ``sma_local`` (``= sma_local_amplitude + sma_local_phase``), and ``total``. ``base`` and
            its parts carry the step's per-sample weights (:attr:`StepTensors.weight`), as ``total`` does.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


class Objective:
    """A callable training objective: ``objective(step, generator) -> ObjectiveResult``.

    Stateless apart from its (validated) spec; the same instance serves every step and device.
    """

    def __init__(self, spec: ObjectiveSpec):
        self.spec = spec.validate()

    def __repr__(self) -> str:
        return f"Objective({self.spec!r})"

    def __call__(self, step: StepTensors, generator: torch.Generator | None = None) -> ObjectiveResult:
        """Evaluate on one step's tensors.

        ``generator`` draws MotionDirector's anchor frame (ignored by the other bases): pass a seeded
        :class:`torch.Generator` for reproducible training.
        """
        spec = self.spec
        _check_step(step)
        spec.check_frames(step.frames)
        terms: dict[str, torch.Tensor] = {}
        # The base losses compare prediction and target, so the step's loss weights apply to them; the
        # SMA terms compare x0 motion, already in the space they were designed for, and are not weighted.
        if spec.base_loss == "vmc":
            base = _weighted(step, lambda p, q: vmc_loss(p, q, spec.vmc_variant, spec.vmc_frame_stride))
        elif spec.base_loss == "motion_director":
            anchor = draw_anchor(step.frames, generator)
            terms["mse"], terms["debiased"] = _weighted(step, lambda p, q: debiased_loss(p, q, anchor, spec.debias_beta))
            base = terms["mse"] + terms["debiased"]
        else:
            base = _weighted(step, noise_mse)
        terms["base"] = total = base
        if spec.sma_global_weight > 0 or spec.sma_local_weight > 0:
            d_hat, d = x0_motion(step, spec.x0_estimate)
            if spec.sma_global_weight > 0:
                terms["sma_global"] = sma_global(d_hat, d, spec.sma_global_levels, spec.sma_global_wavelet,
                                                 spec.level_weights())
                total = total + spec.sma_global_weight * terms["sma_global"]
            if spec.sma_local_weight > 0:
                amplitude, phase = sma_local(d_hat, d, spec.sma_local_delta, spec.sma_local_base, spec.sma_local_phase)
                terms.update(sma_local_amplitude=amplitude, sma_local_phase=phase, sma_local=amplitude + phase)
                total = total + spec.sma_local_weight * terms["sma_local"]
        terms["total"] = total
        return ObjectiveResult(total, {name: value.detach() for name, value in terms.items()})


def build_objective(spec: ObjectiveSpec | dict[str, Any]) -> Objective:
    """The objective a spec (or its dict form, as the node outputs and adapter metadata store) describes."""
    return Objective(spec if isinstance(spec, ObjectiveSpec) else ObjectiveSpec.from_dict(spec))


def _check_step(step: StepTensors) -> None:
    shape = step.prediction.shape
    for name in ("prediction", "target", "x0", "x0_hat", "signal_hat", "x_t"):
        tensor = getattr(step, name)
        if tensor.ndim != 5 or not tensor.is_floating_point() or tensor.shape != shape:
            raise InputError(name, f"expected a float (batch, channels, frames, height, width) tensor shaped "
                                   f"like eps_hat {tuple(shape)}; got {tuple(tensor.shape)} {tensor.dtype}")
    weight = step.weight
    if weight is not None and (weight.numel() != shape[0] or not torch.isfinite(weight).all() or (weight < 0).any()):
        raise InputError("weight", f"expected {shape[0]} finite weights >= 0, one per sample; got "
                                   f"{weight.reshape(-1)[:8].tolist()}")


def _weighted(step: StepTensors, loss: Callable[[torch.Tensor, torch.Tensor], Any]) -> Any:
    """``loss(prediction, target)`` (a scalar, or a tuple of scalars) as the step's weights ask.

    Without weights: one call on the whole batch, as the loss defines its mean. With weights: the
    loss of each sample alone, ``Σ_i weight_i·loss_i / b`` (for a mean over elements, the same as
    weighting each sample's elements).
    """
    if step.weight is None:
        return loss(step.prediction, step.target)
    weight = step.weight.to(step.prediction.device, torch.float32).reshape(-1)
    samples = [loss(step.prediction[i:i + 1], step.target[i:i + 1]) for i in range(step.prediction.shape[0])]
    if isinstance(samples[0], tuple):
        return tuple((torch.stack(parts) * weight).mean() for parts in zip(*samples))
    return (torch.stack(samples) * weight).mean()
