"""The node that learns a clip's motion."""

from collections.abc import Callable

from ..motion_core.adapters import ADAPTER_KINDS
from ..motion_core.objectives import ObjectiveSpec
from ..motion_core.pipeline import TrainingPreview, options_for, train_adapter
from ..motion_core.sampling import LOSS_WEIGHTINGS, LossWeighting, TimestepDistribution
from ..motion_core.train import PRECISIONS, TrainOptions, loss_series
from ._comfy import CATEGORY, Progress, io, node_id, use_model
from .types import Adapter, AdapterOptions, Latents, Objective, References, VideoModel

DEFAULT_PROMPT = "a video"


def loss_text(step: int, steps: int, terms: dict[str, float]) -> str:
    """One line for the node while training: the step and each loss term."""
    parts = [f"{name} {value:.4f}" for name, value in terms.items() if name != "total"]
    return f"step {step}/{steps} · loss {terms['total']:.4f}" + (f" ({', '.join(parts)})" if parts else "")


def training_progress(steps: int, node: str | None, stage: Callable[[int], str] | None = None):
    """``callback(step, total, terms)`` for training: the node's progress bar and a line of text with the
    step and each loss term, after ``stage(step)`` (e.g. "stage 1 (subject) · ") when given."""
    progress = Progress(steps, node=node)

    def callback(step: int, total: int, terms: dict[str, float]) -> None:
        progress.text((stage(step) if stage else "") + loss_text(step, total, terms))
        progress(step, total)

    return callback, progress


class TrainMotionAdapter(io.ComfyNode):
    """Train an adapter that holds the reference clip's motion."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("TrainMotionAdapter"),
            display_name="Train Motion Adapter",
            category=CATEGORY,
            description="Learns the motion of the reference clip into a small adapter (the model itself is not "
                        "changed). VMC: 400 steps at lr 1e-4, minutes on a GPU. Cancel stops it and outputs "
                        "nothing.",
            inputs=[
                VideoModel.Input("model", tooltip="From Load Video Model."),
                Latents.Input("latents", tooltip="The reference clip, from Encode Reference."),
                io.String.Input("prompt", default=DEFAULT_PROMPT, multiline=True,
                                tooltip="Describe the motion, not the look: 'a car is turning', 'a bird "
                                        "flies up'. A short prompt keeps appearance out of the adapter."),
                io.Combo.Input("parameterisation", options=sorted(ADAPTER_KINDS), default="temporal_attention",
                               tooltip="What is trained. temporal_attention: the q/k/v of every temporal "
                                       "attention (VMC, lr 1e-4). lora: LoRA on the temporal transformers "
                                       "(MotionDirector, lr 5e-4; options: LoRA Options). motion_embeddings: "
                                       "query-key/value embeddings in temporal attention (Motion Inversion, lr "
                                       "2e-2; options: Motion Embedding Options)."),
                io.Int.Input("steps", default=400, min=1, max=100_000, tooltip="Optimiser steps (VMC: 400)."),
                io.Float.Input("lr", default=0.0, min=0.0, max=1.0, step=1e-5, round=False,
                               tooltip="AdamW learning rate. 0: the parameterisation's published rate (VMC "
                                       "1e-4, LoRA 5e-4, motion embeddings 2e-2). Lower it if training stops "
                                       "with a divergence message."),
                io.Int.Input("seed", default=0, min=0, max=2**63 - 1, control_after_generate=False,
                             tooltip="Seed of the training noise and timesteps: the same seed gives the same "
                                     "adapter."),
                io.Combo.Input("precision", options=list(PRECISIONS), default="auto",
                               tooltip="auto: mixed precision on a GPU (bf16 where supported, else fp16), fp32 "
                                       "on the CPU. The adapter itself is always kept in fp32."),
                io.Boolean.Input("gradient_checkpointing", default=False,
                                 tooltip="Recompute activations during the backward pass: much less memory "
                                         "(for 8-16 GB cards), about a third more time, same result."),
                Objective.Input("objective", optional=True,
                                tooltip="From Motion Objective. Without it: VMC with SMA at the default weights."),
                AdapterOptions.Input("adapter_options", optional=True,
                                     tooltip="From LoRA Options or Motion Embedding Options (matching the "
                                             "parameterisation). Without it: that kind's published defaults."),
                io.Float.Input("timestep_low", default=0.0, min=0.0, max=1.0, step=0.01, optional=True,
                               tooltip="Train only on noise levels from here (0 = clean) up to timestep_high (1 "
                                       "= pure noise). 0 and 1: the whole range, as the methods do. Raising it "
                                       "(e.g. 0.6) trains where the video's layout and path are decided."),
                io.Float.Input("timestep_high", default=1.0, min=0.0, max=1.0, step=0.01, optional=True,
                               tooltip="Highest noise level trained on (1 = pure noise); above timestep_low."),
                io.Float.Input("timestep_shift", default=1.0, min=0.01, max=100.0, step=0.1, optional=True,
                               tooltip="Draw more training steps at high noise: 1 = evenly over the range, 3 = "
                                       "much more often near pure noise."),
                io.Combo.Input("loss_weighting", options=list(LOSS_WEIGHTINGS), default=LOSS_WEIGHTINGS[0],
                               optional=True,
                               tooltip="How much each step counts by its noise level. none: as the methods. "
                                       "min_snr: nearly clean steps count less (Min-SNR). x0, v: the error "
                                       "measured on the clean video or on v, so noisy steps count much more. "
                                       "The SMA terms are not weighted."),
                io.Float.Input("min_snr_gamma", default=5.0, min=0.01, max=1000.0, step=0.5, optional=True,
                               tooltip="The cap of min_snr (5 in the paper): smaller means nearly clean steps "
                                       "count even less."),
                References.Input("more_references", optional=True,
                                 tooltip="More clips of the same motion, each with its own prompt, from Add "
                                         "Training Clip (MotionDirector's multi-video training): each step "
                                         "trains on one clip, every clip equally often. MotionDirector uses "
                                         "several subjects doing one motion so that the adapter learns the "
                                         "motion rather than one subject's look."),
                io.Int.Input("preview_every", default=0, min=0, max=100_000, optional=True,
                             tooltip="Every this many steps, show on the node a few frames sampled (8 steps, "
                                     "fresh noise, the prompt) with the adapter as trained so far. 0: no "
                                     "previews. A preview costs about four training steps' time on the toy "
                                     "model (every 50 steps: 5 % slower; every 25: 18 %)."),
            ],
            outputs=[
                Adapter.Output("adapter", display_name="adapter",
                               tooltip="The trained motion, for Generate Video and Save Motion Adapter."),
                io.LossMap.Output("loss", display_name="loss",
                                  tooltip="Loss per step, for ComfyUI's Plot Loss Graph node: the total and "
                                          "each term (LoRA's spatial loss held over skipped steps)."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, latents, prompt, parameterisation, steps, lr, seed, precision,
                gradient_checkpointing, objective=None, adapter_options=None, timestep_low=0.0, timestep_high=1.0,
                timestep_shift=1.0, loss_weighting=LOSS_WEIGHTINGS[0], min_snr_gamma=5.0,
                more_references=(), preview_every=0) -> io.NodeOutput:
        callback, progress = training_progress(steps, cls.hidden.unique_id if cls.hidden else None)
        use_model(model, "train", latents.samples.shape)
        spec = ObjectiveSpec.from_dict(objective) if objective is not None else None
        options = TrainOptions(precision=precision, gradient_checkpointing=gradient_checkpointing,
                               timesteps=TimestepDistribution(timestep_low, timestep_high, timestep_shift),
                               loss_weighting=LossWeighting(loss_weighting, min_snr_gamma))
        result = train_adapter(model, latents, prompt, spec, parameterisation, steps=steps, lr=lr, seed=seed,
                               options=options, adapter_options=options_for(parameterisation, adapter_options),
                               callback=callback, more_references=more_references or (),
                               preview=TrainingPreview(preview_every, lambda frames, step: progress.frames(frames))
                               if preview_every else None)
        return io.NodeOutput(result.adapter, loss_series(result.history))


class AddTrainingClip(io.ComfyNode):
    """Collect one more clip of the motion, with its prompt, for Train Motion Adapter."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("AddTrainingClip"),
            display_name="Add Training Clip",
            category=CATEGORY,
            description="One more clip of the same motion for Train Motion Adapter's more_references, with its "
                        "own prompt. Chain several: each adds its clip to the ones it receives. Encode every clip "
                        "at the reference's width, height and frame count.",
            inputs=[
                Latents.Input("latents", tooltip="The clip, from Encode Reference (same size and frames as the "
                                                 "reference)."),
                io.String.Input("prompt", default=DEFAULT_PROMPT, multiline=True,
                                tooltip="This clip's prompt: its subject and the motion, e.g. 'a horse is "
                                        "running' beside 'a dog is running'."),
                References.Input("previous", optional=True,
                                 tooltip="Clips collected so far, from another Add Training Clip."),
            ],
            outputs=[References.Output("references", display_name="references",
                                       tooltip="The clips so far, for Train Motion Adapter's more_references.")],
        )

    @classmethod
    def execute(cls, latents, prompt, previous=()) -> io.NodeOutput:
        return io.NodeOutput((*(previous or ()), (latents, prompt)))


NODES = [TrainMotionAdapter, AddTrainingClip]
