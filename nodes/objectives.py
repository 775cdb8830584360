"""Nodes that choose what training minimises."""

from ..motion_core.objectives import BASE_LOSSES, WAVELETS, ObjectiveSpec, parse_level_weights
from ..motion_core.objectives.sma import PHASE_DIFFERENCES
from ..motion_core.objectives.step import X0_ESTIMATES
from ..motion_core.objectives.vmc import VMC_VARIANTS
from ._comfy import CATEGORY, io, node_id
from .types import Objective

_DEFAULT = ObjectiveSpec()


class MotionObjective(io.ComfyNode):
    """Choose the base motion loss and the SMA regularisers, with their weights and options."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("MotionObjective"),
            display_name="Motion Objective",
            category=CATEGORY,
            description="What training the motion adapter minimises: a base motion loss plus the optional "
                        "SMA wavelet (along time) and Fourier (within frames) terms. The defaults are VMC "
                        "with SMA at its authors' weights, made stable at every training step.",
            inputs=[
                io.Combo.Input("base_loss", options=list(BASE_LOSSES), default=_DEFAULT.base_loss,
                               tooltip="vmc: match how the clip changes between frames (VMC). motion_director: "
                                       "noise loss plus a version that ignores what all frames share "
                                       "(MotionDirector). mse: the plain noise loss."),
                io.Combo.Input("vmc_variant", options=list(VMC_VARIANTS), default=_DEFAULT.vmc_variant,
                               tooltip="VMC only. released: the authors' code (per-pixel direction of change "
                                       "over time). paper: the paper's formula (per frame pair). l2: squared "
                                       "difference of frame-to-frame changes."),
                io.Int.Input("vmc_frame_stride", default=_DEFAULT.vmc_frame_stride, min=1, max=16,
                             tooltip="VMC only. Compare frames this far apart: 1 looks at every step of the "
                                     "motion, larger values at slower, broader motion."),
                io.Float.Input("debias_beta", default=_DEFAULT.debias_beta, min=0.0, max=10.0, step=0.1,
                               tooltip="MotionDirector only. How strongly one random frame is subtracted from "
                                       "all frames to hide the appearance. 1 as released; 0 turns it off."),
                io.Float.Input("sma_global_weight", default=_DEFAULT.sma_global_weight, min=0.0, max=10.0,
                               step=0.01, tooltip="Weight of the SMA wavelet term that matches slow and fast "
                                                  "motion over the whole clip. 0 turns it off; 0.4 as released."),
                io.Int.Input("sma_global_levels", default=_DEFAULT.sma_global_levels, min=1, max=8,
                             tooltip="How many time scales the wavelet term separates: 2 for 8 frames, 3 for "
                                     "16. Training stops with a message if the clip is too short for it."),
                io.Combo.Input("sma_global_wavelet", options=list(WAVELETS), default=_DEFAULT.sma_global_wavelet,
                               tooltip="Wavelet of the SMA wavelet term. haar, as released, suits the few "
                                       "frames of a short clip."),
                io.String.Input("sma_global_level_weights", default="", multiline=False,
                                tooltip="Optional weights per time scale, coarsest average first, then each "
                                        "level from fastest to slowest, e.g. '1, 1, 1' for 2 levels. Empty "
                                        "weights all equally."),
                io.Float.Input("sma_local_weight", default=_DEFAULT.sma_local_weight, min=0.0, max=10.0,
                               step=0.01, tooltip="Weight of the SMA Fourier term that matches where in the "
                                                  "frame things move. 0 turns it off; 0.2 as released."),
                io.Float.Input("sma_local_delta", default=_DEFAULT.sma_local_delta, min=0.0, max=1.0,
                               step=0.01, tooltip="How much the Fourier term favours large, smooth motion "
                                                  "over fine detail. 0.05 as released; 0 weighs all equally."),
                io.Float.Input("sma_local_base", default=_DEFAULT.sma_local_base, min=0.0, max=10.0,
                               step=0.1, tooltip="Weight the Fourier term gives the finest detail. 1 as "
                                                 "released."),
                io.Combo.Input("sma_local_phase", options=list(PHASE_DIFFERENCES), default=_DEFAULT.sma_local_phase,
                               tooltip="wrapped: compare positions as angles on a circle (recommended; the "
                                       "same result on every GPU). raw: as released, for reproducing it."),
                io.Combo.Input("x0_estimate", options=list(X0_ESTIMATES), default=_DEFAULT.x0_estimate,
                               tooltip="How the SMA terms treat the noisiest training steps. released (default): "
                                       "as SMA's released code, the noisiest steps weigh most; measured to carry "
                                       "the motion better. scaled: fade the clean-video estimate out as noise "
                                       "grows (bounded on any noise schedule)."),
            ],
            outputs=[Objective.Output("objective", display_name="objective",
                                      tooltip="The objective, for Train Motion Adapter.")],
        )

    @classmethod
    def execute(cls, sma_global_level_weights, **options) -> io.NodeOutput:
        weights = parse_level_weights(sma_global_level_weights)
        return io.NodeOutput(ObjectiveSpec(sma_global_level_weights=weights, **options).validate().to_dict())


NODES = [MotionObjective]
