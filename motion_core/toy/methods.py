"""The motion transfer methods the toy demo and the benchmarks compare, by the names users know.

A method is a parameterisation (what is trained: an adapter kind of ``motion_core.adapters``), an
objective (changes to :class:`~motion_core.objectives.ObjectiveSpec`'s defaults, the command
line's ``--objective`` presets), the timesteps training draws and the initial noise its paper
samples from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..cli import OBJECTIVE_PRESETS
from ..objectives import ObjectiveSpec
from ..sampling import TimestepDistribution
from ..train import TrainOptions


@dataclass(frozen=True)
class Method:
    """One method.

    Attributes:
        name: the demo's ``--method`` value, e.g. ``"vmc+sma"``.
        kind: the adapter kind trained (a key of ``motion_core.adapters.ADAPTER_KINDS``).
        objective: keyword arguments of :class:`ObjectiveSpec` (changes to its defaults).
        noise: the initial noise strategy (a key of ``motion_core.noise.STRATEGIES``).
        description: one line for ``--help`` and benchmark tables.
        timesteps: where training draws its timesteps on the toy model (the papers' uniform draw
            unless the toy world's measurements say otherwise; see README, "The toy world").
    """

    name: str
    kind: str
    objective: dict = field(hash=False)
    noise: str
    description: str
    timesteps: TimestepDistribution = TimestepDistribution()

    def spec(self) -> ObjectiveSpec:
        """The objective as a validated :class:`ObjectiveSpec`."""
        return ObjectiveSpec(**self.objective).validate()

    def train_options(self) -> TrainOptions:
        """:class:`TrainOptions` (the library's defaults) with this method's timesteps."""
        return TrainOptions(timesteps=self.timesteps).validate()


METHODS: dict[str, Method] = {method.name: method for method in (
    Method("vmc", "temporal_attention", dict(OBJECTIVE_PRESETS["vmc"]), "direct",
           "Video Motion Customization: temporal-attention q/k/v, residual-difference loss"),
    Method("vmc+sma", "temporal_attention", dict(OBJECTIVE_PRESETS["vmc+sma"]), "direct",
           "VMC with SMA's wavelet (global) and Fourier-phase (local) motion regularisers"),
    # Both papers sample from a blend of the inverted latent and fresh noise, not the inversion alone.
    Method("motiondirector", "lora", dict(OBJECTIVE_PRESETS["motion_director"]), "blend",
           "MotionDirector: temporal LoRA, appearance-debiased loss"),
    # Differs from the paper's uniform draw: on the toy model, embeddings trained on t >= 0.6 only carry
    # the clip's path from fresh noise (memorisation +0.37 over the uniform draw, 8 of 8 paired runs;
    # BENCHMARKS.md, "Memorisation and transfer from fresh noise"); the uniform draw barely does.
    Method("motion-inversion", "motion_embeddings", dict(OBJECTIVE_PRESETS["motion_director"]), "blend",
           "Motion Inversion: motion embeddings in temporal attention, appearance-debiased loss, "
           "trained at high noise", TimestepDistribution(0.6, 1.0)),
)}
"""The methods by name, in the order tables list them."""
