"""The objective spec: a plain, versioned description of what one-shot training minimises.

A spec is what the **Motion Objective** node outputs and what adapter files record in their
metadata, so it round-trips through JSON (:meth:`ObjectiveSpec.to_dict` / :meth:`from_dict`).
Field names are the node's input names, so a validation error names the input to change.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import InputError
from .dwt import WAVELETS, max_levels
from .sma import PHASE_DIFFERENCES
from .step import X0_ESTIMATES
from .vmc import VMC_VARIANTS

SPEC_VERSION = 1
"""Version written by :meth:`ObjectiveSpec.to_dict`; later versions must read every earlier one."""

BASE_LOSSES = ("vmc", "motion_director", "mse")
"""Base objectives: VMC residual loss, MotionDirector's debiased loss, plain noise MSE."""


@dataclass(frozen=True)
class ObjectiveSpec:
    """``L = base + sma_global_weight·L_g + sma_local_weight·L_l`` and every option of each term.

    Defaults follow the released SMA code on VMC (docs/METHODS.md §1, §2) except where a field's
    documentation says otherwise.
    """

    base_loss: str = "vmc"
    """One of :data:`BASE_LOSSES`."""
    vmc_variant: str = "released"
    """VMC only: ``released`` | ``paper`` | ``l2`` (see :func:`.vmc.vmc_loss`)."""
    vmc_frame_stride: int = 1
    """VMC only: residuals between frames this far apart (>= 1)."""
    debias_beta: float = 1.0
    """MotionDirector only: β of ``φ(z) = sqrt(β²+1)·z - β·z[anchor]`` (>= 0; 0 is plain MSE twice)."""
    sma_global_weight: float = 0.4
    """λ_g (>= 0; 0 switches the wavelet term off)."""
    sma_global_levels: int = 2
    """J, wavelet levels (>= 1): 2 for 8 frames, 3 for 16; at most ``ceil(log2(frames - 1))``."""
    sma_global_wavelet: str = "haar"
    """A PyWavelets discrete wavelet name (:data:`.dwt.WAVELETS`)."""
    sma_global_level_weights: tuple[float, ...] = ()
    """``(w_0, w_1, ..., w_J)`` for the lowpass and each highpass level (finest first); empty = all 1."""
    sma_local_weight: float = 0.2
    """λ_l (>= 0; 0 switches the Fourier term off)."""
    sma_local_delta: float = 0.05
    """δ of the radial low-frequency weight (>= 0; larger favours low frequencies more)."""
    sma_local_base: float = 1.0
    """Weight of the highest frequencies (the radial weight's corners, >= 0)."""
    sma_local_phase: str = "wrapped"
    """``wrapped`` (default) | ``raw`` (released); see :func:`.sma.sma_local`."""
    x0_estimate: str = "released"
    """``released`` (default, as measured best; see :func:`.step.x0_motion`) | ``scaled``."""

    def validate(self) -> ObjectiveSpec:
        """Return self, or raise :class:`InputError` naming the first invalid field."""
        _choice("base_loss", self.base_loss, BASE_LOSSES, "objective")
        _choice("vmc_variant", self.vmc_variant, VMC_VARIANTS, "VMC variant")
        _choice("sma_global_wavelet", self.sma_global_wavelet, WAVELETS, "wavelet",
                shown=("haar", "db2", "sym4", "coif1", "..."))
        _choice("sma_local_phase", self.sma_local_phase, PHASE_DIFFERENCES, "phase difference")
        _choice("x0_estimate", self.x0_estimate, X0_ESTIMATES, "x0 estimate")
        _whole("vmc_frame_stride", self.vmc_frame_stride, 1)
        _whole("sma_global_levels", self.sma_global_levels, 1)
        for name in ("debias_beta", "sma_global_weight", "sma_local_weight", "sma_local_delta", "sma_local_base"):
            _non_negative(name, getattr(self, name))
        weights = self.sma_global_level_weights
        if not isinstance(weights, tuple):
            raise InputError("sma_global_level_weights", f"{weights!r} is not a list of numbers")
        if weights and len(weights) != self.sma_global_levels + 1:
            raise InputError("sma_global_level_weights",
                             f"{len(weights)} weights given; {self.sma_global_levels} levels take "
                             f"{self.sma_global_levels + 1} (lowpass, then each level finest first), "
                             f"or leave it empty for all 1")
        for weight in weights:
            _non_negative("sma_global_level_weights", weight)
        return self

    def check_frames(self, frames: int) -> None:
        """Raise :class:`InputError` if a clip of ``frames`` frames is too short for this spec."""
        if self.base_loss == "vmc" and frames <= self.vmc_frame_stride:
            raise InputError("vmc_frame_stride", f"a stride of {self.vmc_frame_stride} needs more than "
                                                 f"{self.vmc_frame_stride} frames; the clip has {frames}")
        if self.sma_global_weight > 0 or self.sma_local_weight > 0 or self.base_loss != "mse":
            if frames < 2:
                raise InputError("frames", f"motion objectives need at least 2 frames; the clip has {frames}")
        if self.sma_global_weight > 0 and self.sma_global_levels > max_levels(frames - 1):
            most = max_levels(frames - 1)
            raise InputError("sma_global_levels",
                             f"{self.sma_global_levels} levels are too many for {frames} frames "
                             f"({frames - 1} frame residuals); use at most {most}, or at least "
                             f"{2 ** (self.sma_global_levels - 1) + 2} frames")

    def level_weights(self) -> tuple[float, ...]:
        """``(w_0, ..., w_J)`` with the empty default expanded to all 1."""
        return self.sma_global_level_weights or (1.0,) * (self.sma_global_levels + 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with a ``version`` key; :meth:`from_dict` reads it back equal."""
        data = asdict(self)
        data["sma_global_level_weights"] = list(self.sma_global_level_weights)
        return {"version": SPEC_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectiveSpec:
        """Read a dict written by :meth:`to_dict` (any version up to :data:`SPEC_VERSION`), validated.

        Missing fields take their defaults; unknown fields are an error (a newer pack wrote them).
        """
        if not isinstance(data, dict):
            raise InputError("objective", f"expected an objective spec (a dict); got {type(data).__name__}")
        version = data.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SPEC_VERSION:
            raise InputError("objective", f"spec version {version!r} is not supported; this pack reads "
                                          f"versions 1 to {SPEC_VERSION} (update the pack?)")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"version"})
        if unknown:
            raise InputError(unknown[0], f"unknown objective option (known: {', '.join(sorted(known))})")
        values = {k: v for k, v in data.items() if k != "version"}
        if isinstance(values.get("sma_global_level_weights"), list):
            values["sma_global_level_weights"] = tuple(values["sma_global_level_weights"])
        return cls(**values).validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ObjectiveSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError("objective", f"not valid JSON: {err}") from None
        return cls.from_dict(data)


def parse_level_weights(text: str) -> tuple[float, ...]:
    """``"1, 0.5, 0.5"`` -> ``(1.0, 0.5, 0.5)``; blank -> ``()`` (all 1). Separators: commas or spaces."""
    try:
        return tuple(float(item) for item in text.replace(",", " ").split())
    except ValueError:
        raise InputError("sma_global_level_weights",
                         f"{text!r} is not a list of numbers; write e.g. '1, 1, 1' (lowpass, then each "
                         f"level finest first) or leave it empty") from None


def _choice(name: str, value: object, options: tuple[str, ...], what: str, shown: tuple[str, ...] | None = None) -> None:
    if value not in options:
        raise InputError(name, f"unknown {what} {value!r}; use one of {', '.join(shown or options)}")


def _whole(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(name, f"{value!r} is not valid; use a whole number of at least {low}")


def _non_negative(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(name, f"{value!r} is not valid; use a number >= 0")
