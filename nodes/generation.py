"""Nodes that make new videos: inversion of the reference, initial noise, guided sampling."""

from ..motion_core.adapters.embeddings import DEBIAS_MODES
from ..motion_core.motion_guidance import (
    GUIDANCE_DEFAULTS,
    REFERENCE_ESTIMATES,
    MotionGuidance,
)
from ..motion_core.noise import STRATEGIES
from ..motion_core.pipeline import generate, invert_reference, make_noise, scaled_stack
from ._comfy import CATEGORY, Progress, io, node_id, use_model
from .types import Adapter, Latents, VideoModel
from .types import MotionGuidance as MotionGuidanceType


def _strength_input():
    return io.Float.Input("adapter_strength", default=1.0, min=-10.0, max=10.0, step=0.05,
                          tooltip="How strongly the adapter applies: 1 as trained, 0 off, in between for "
                                  "less of the motion. Unused without an adapter.")


class InvertVideo(io.ComfyNode):
    """DDIM inversion: the noise from which the model would regenerate the reference."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("InvertVideo"),
            display_name="Invert Video",
            category=CATEGORY,
            description="Runs the model backwards from the reference latents to the noise that makes them "
                        "(DDIM inversion). Starting generation from that noise carries the clip's layout and "
                        "motion over.",
            inputs=[
                VideoModel.Input("model", tooltip="From Load Video Model."),
                Latents.Input("latents", tooltip="The reference, from Encode Reference."),
                io.Int.Input("steps", default=50, min=1, max=1000,
                             tooltip="Inversion steps (Motion Inversion, MotionDirector: 50; VMC: 75). Use "
                                     "the same number in Generate Video."),
                io.String.Input("prompt", default="", multiline=True,
                                tooltip="Prompt during inversion. Empty, as the methods do."),
                _strength_input(),
                Adapter.Input("adapter", optional=True,
                              tooltip="Optionally invert with the trained adapter applied."),
            ],
            outputs=[Latents.Output("inverted", display_name="inverted",
                                    tooltip="The inverted noise, for Initial Noise.")],
        )

    @classmethod
    def execute(cls, model, latents, steps, prompt, adapter_strength, adapter=None) -> io.NodeOutput:
        use_model(model, "invert", latents.samples.shape)
        progress = Progress(steps, latent_format=model.latent_format)
        inverted = invert_reference(model, latents, steps, prompt, scaled_stack(adapter, adapter_strength), progress,
                                    progress.latents if progress.shows_latents else None)
        return io.NodeOutput(inverted)


class InitialNoise(io.ComfyNode):
    """Mix the inverted noise with fresh noise."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("InitialNoise"),
            display_name="Initial Noise",
            category=CATEGORY,
            description="The noise generation starts from: the inverted reference as it is, or mixed with fresh "
                        "noise so that more of the new prompt's content can appear.",
            inputs=[
                Latents.Input("inverted", tooltip="From Invert Video."),
                io.Combo.Input("strategy", options=list(STRATEGIES), default="direct",
                               tooltip="direct: the inverted noise (VMC). blend: sqrt(ratio) of it plus fresh "
                                       "noise (MotionDirector). low_frequency: its coarse layout with fresh "
                                       "detail (DMT). blend_low_frequency: both. freeinit: its low 3-D "
                                       "frequencies. random: fresh noise only (ignores the reference)."),
                io.Float.Input("ratio", default=0.0, min=0.0, max=1.0, step=0.05,
                               tooltip="blend and blend_low_frequency: share of the inverted noise (0.1-0.5 "
                                       "advised). freeinit: the stop frequency (0.25 advised). 0: the "
                                       "strategy's own default (blends 0.5, freeinit 0.25). Unused by the others."),
                io.Int.Input("seed", default=0, min=0, max=2**63 - 1, control_after_generate=True,
                             tooltip="Seed of the fresh noise: change it for another variation."),
            ],
            outputs=[Latents.Output("noise", display_name="noise", tooltip="Initial noise, for Generate Video.")],
        )

    @classmethod
    def execute(cls, inverted, strategy, ratio, seed) -> io.NodeOutput:
        return io.NodeOutput(make_noise(inverted, strategy, seed, ratio or None))


class GenerateVideo(io.ComfyNode):
    """Guided DDIM sampling from the initial noise, with the trained motion applied."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("GenerateVideo"),
            display_name="Generate Video",
            category=CATEGORY,
            description="Generates the new video from the initial noise with the target prompt and the trained "
                        "motion adapter (DDIM with classifier-free guidance).",
            inputs=[
                VideoModel.Input("model", tooltip="From Load Video Model."),
                Latents.Input("noise", tooltip="From Initial Noise (or Invert Video)."),
                io.String.Input("prompt", default="", multiline=True,
                                tooltip="What the new video shows: 'a tank turning in the desert'."),
                io.String.Input("negative_prompt", default="", multiline=True,
                                tooltip="What to steer away from (used when cfg is not 1)."),
                io.Int.Input("steps", default=50, min=1, max=1000,
                             tooltip="Sampling steps: the inversion's step count keeps the motion best."),
                io.Float.Input("cfg", default=9.0, min=0.0, max=100.0, step=0.5,
                               tooltip="Guidance scale: higher follows the prompt more closely (VMC: 9). 1 "
                                       "switches guidance off and halves the time."),
                _strength_input(),
                Adapter.Input("adapter", optional=True,
                              tooltip="The trained motion, from Train or Load Motion Adapter (or several, from "
                                      "Combine Motion Adapters)."),
                io.Combo.Input("debias", options=list(DEBIAS_MODES), default=DEBIAS_MODES[0], optional=True,
                               tooltip="Motion embeddings only (Motion Inversion's inference debiasing): object "
                                       "and hybrid motion use the frame differences of the value embedding, "
                                       "camera motion drops it, none uses it as trained; auto: object on "
                                       "UNet models (as published), none on Wan (measured better there)."),
                MotionGuidanceType.Input("motion_guidance", optional=True,
                                         tooltip="Optional training-free motion (FlowMotion), from Motion "
                                                 "Guidance: the first steps steer the video toward the "
                                                 "reference's motion. Works with or without an adapter."),
            ],
            outputs=[Latents.Output("latents", display_name="latents",
                                    tooltip="The new video's latents, for Decode Video.")],
        )

    @classmethod
    def execute(cls, model, noise, prompt, negative_prompt, steps, cfg, adapter_strength, adapter=None,
                debias=DEBIAS_MODES[0], motion_guidance=None) -> io.NodeOutput:
        adapters = scaled_stack(adapter, adapter_strength, debias=debias)
        use_model(model, "sample", noise.samples.shape)
        progress = Progress(steps, latent_format=model.latent_format)
        latents = generate(model, noise, prompt, negative_prompt, steps, cfg, adapters, progress,
                           progress.latents if progress.shows_latents else None, guidance=motion_guidance)
        return io.NodeOutput(latents)


class MotionGuidanceNode(io.ComfyNode):
    """FlowMotion's training-free motion guidance: the reference and how strongly it steers."""

    @classmethod
    def define_schema(cls):
        default = GUIDANCE_DEFAULTS
        return io.Schema(
            node_id=node_id("MotionGuidance"),
            display_name="Motion Guidance",
            category=CATEGORY,
            description="Training-free motion transfer (FlowMotion): during Generate Video's first steps the "
                        "video being made is nudged so that its frame-to-frame changes follow the reference "
                        "clip's. No adapter to train; costs a few extra model calls in those steps.",
            inputs=[
                Latents.Input("latents", tooltip="The reference clip, from Encode Reference, at the size and "
                                                 "frame count of the video to generate."),
                io.Float.Input("guided_fraction", default=default["fraction"], min=0.0, max=1.0, step=0.05,
                               tooltip="Share of the sampling steps that are guided, from the first: 0.2 guides "
                                       "10 of 50 (FlowMotion). More follows the reference more closely and "
                                       "takes longer; 0 switches guidance off."),
                io.Int.Input("adam_steps", default=default["adam_steps"], min=1, max=100,
                             tooltip="Nudges per guided step (FlowMotion: 3). Each costs one model call."),
                io.Float.Input("lr", default=default["lr"], min=1e-5, max=1.0, step=1e-4, round=False,
                               tooltip="Size of each nudge (FlowMotion: 0.003; its authors advise up to 0.01 "
                                       "for hard motions)."),
                io.Float.Input("latent_weight", default=default["latent_weight"], min=0.0, max=1000.0, step=0.5,
                               tooltip="How much the video's layout is pulled toward the reference's (FlowMotion: "
                                       "20). Lower it if the reference's look shows through."),
                io.Float.Input("difference_weight", default=default["difference_weight"], min=0.0, max=1000.0,
                               step=0.5, tooltip="How much the changes between frames are pulled toward the "
                                                 "reference's: the motion itself (FlowMotion: 5)."),
                io.Float.Input("velocity_regulariser", default=default["regulariser"], min=0.0, max=1.0,
                               step=0.05, tooltip="Keeps the nudges along the path sampling has taken so far, "
                                                  "for smooth motion: 0.9 as FlowMotion, 0 off."),
                io.Int.Input("seed", default=default["seed"], min=0, max=2**63 - 1, control_after_generate=True,
                             tooltip="Seed of the fresh noise the reference is compared through."),
                io.Combo.Input("reference_estimate", options=list(REFERENCE_ESTIMATES), default=default["estimate"],
                               tooltip="noised: compare with the model's view of the reference at the same "
                                       "noise level (FlowMotion). clean: with the reference itself (its "
                                       "authors' variant for complex motion)."),
            ],
            outputs=[MotionGuidanceType.Output("motion_guidance", display_name="motion_guidance",
                                               tooltip="The guidance, for Generate Video's motion_guidance.")],
        )

    @classmethod
    def execute(cls, latents, guided_fraction, adam_steps, lr, latent_weight, difference_weight,
                velocity_regulariser, seed, reference_estimate) -> io.NodeOutput:
        return io.NodeOutput(MotionGuidance(latents, guided_fraction, adam_steps, lr, latent_weight, difference_weight,
                                            velocity_regulariser, seed, reference_estimate).validate())


NODES = [InvertVideo, InitialNoise, GenerateVideo, MotionGuidanceNode]
