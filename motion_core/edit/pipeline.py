"""Edit-Your-Motion end to end (docs/METHODS.md §7): train on the source clip, then re-render it under
the reference's aligned skeleton, starting from the source's own inverted noise.

1. :func:`train_edit`: two stages of plain noise MSE on the source clip conditioned on its own
   poses — stage 1 on the masked subject (temporal attention + Motion Attention), stage 2 on the
   full frames (RCA's projections + Motion Attention). Both are :func:`motion_core.train.train` runs
   of one :class:`~.adapter.EditAdapter`, so seeds, precision, cancel and the base model's
   untouchability are training's own.
2. :func:`edit_video`: DDIM inversion of the source latents with the trained adapter conditioned
   on the source poses, then sampling from that noise with the adapter conditioned on the target
   (aligned reference) poses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..adapters import AdapterUse
from ..backbones import VideoBackbone
from ..errors import InputError
from ..objectives import ObjectiveSpec
from ..pipeline import VideoLatents, generate, invert_reference, latent_samples
from ..progress import Progress
from ..train import Callback, TrainOptions, TrainResult, train
from .adapter import EditAdapter
from .draw import draw_pose_frames
from .motion_attention import PoseCondition
from .pose import parse_pose_keypoint

PLAIN_MSE = ObjectiveSpec(base_loss="mse", sma_global_weight=0.0, sma_local_weight=0.0)
"""Both stages minimise plain noise MSE (the paper: "the standard diffusion loss")."""


@dataclass(frozen=True)
class EditTraining:
    """How :func:`train_edit` trains.

    Attributes:
        subject_steps, full_steps: steps of stage 1 (masked subject) and stage 2 (full frames); the
            paper found 300 + 300 best. ``subject_steps = 0`` is the one-stage ablation: stage 2
            alone, training every part (temporal, RCA, Motion Attention) on full frames.
        lr: AdamW's learning rate for both stages (the LoRA and the new Motion Attention module): the
            pack's LoRA rate (MotionDirector's); on the toy world 1e-4 kept the look worse on 5 of 6 pairs
            (``benchmarks/toy_edit.py``, README).
        seed: of initial values, timesteps and noise (stage 2 draws from ``seed + 1``).
        options: :class:`~motion_core.train.TrainOptions` (precision, checkpointing, timesteps).
    """

    subject_steps: int = 300
    full_steps: int = 300
    lr: float = 5e-4
    seed: int = 0
    options: TrainOptions = TrainOptions()

    def validate(self) -> EditTraining:
        for name in ("subject_steps", "full_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(name, f"{value!r} is not valid; use a whole number of steps >= 0")
        if self.subject_steps + self.full_steps == 0:
            raise InputError("full_steps", "both stages have 0 steps; train at least one step")
        self.options.validate()
        return self


def subject_frames(frames: torch.Tensor, mask: torch.Tensor, input_name: str = "mask") -> torch.Tensor:
    """IMAGE ``(f, H, W, 3)`` with everything outside ``mask`` black: stage 1's masked subject.

    ``mask``: ComfyUI's MASK, ``(f, H, W)`` or ``(1, H, W)`` (one for every frame) or ``(H, W)``, 1 on
    the subject, in ``[0, 1]`` (soft edges stay soft).
    """
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3 or tuple(mask.shape[1:]) != tuple(frames.shape[1:3]) or mask.shape[0] not in (1, frames.shape[0]):
        raise InputError(input_name, f"is {tuple(mask.shape)} but the frames are {frames.shape[0]} of "
                                     f"{frames.shape[2]}x{frames.shape[1]}; give one mask per frame (or one for all) "
                                     "at the frames' size")
    return frames * mask.to(frames.dtype).clamp(0, 1)[..., None]


def pose_images(pose: object, backbone: VideoBackbone, latents: VideoLatents, input_name: str = "pose") -> torch.Tensor:
    """``POSE_KEYPOINT`` drawn for ``latents``' clip: IMAGE ``(f, H, W, 3)`` at its pixel size, the canvas
    mapped as the frames were resized (cover + centre crop). One pose frame per clip frame."""
    samples = latents.samples
    clip = parse_pose_keypoint(pose, input_name)
    if clip.frames != samples.shape[2]:
        raise InputError(input_name, f"has {clip.frames} frames but the clip has {samples.shape[2]}; estimate the "
                                     "poses on the frames that were encoded (the same frame_load_cap and "
                                     "select_every_nth)")
    scale = backbone.latent_scale()
    return draw_pose_frames(clip, samples.shape[4] * scale, samples.shape[3] * scale)


def train_edit(backbone: VideoBackbone, controlnet: torch.nn.Module, source: VideoLatents, source_pose: torch.Tensor,
               prompt: str, subject: VideoLatents | None = None, settings: EditTraining = EditTraining(),
               adapter_options: dict | None = None, callback: Callback | None = None) -> TrainResult:
    """Train Edit-Your-Motion's adapter on the source clip.

    Args:
        backbone: an ``animatediff`` model (the only family with RCA's spatial self-attention and a
            pose ControlNet here).
        controlnet: its pose ControlNet (:func:`~.controlnet.load_controlnet`).
        source: the clip's clean latents (Encode Reference).
        source_pose: its skeleton images, IMAGE ``(f, H, W, 3)`` at the clip's pixel size.
        prompt: what the clip shows (both stages and the edit use it).
        subject: the latents of the masked subject (:func:`subject_frames`, encoded) for stage 1;
            None trains stage 1 on the full frames too.
        settings: :class:`EditTraining`; adapter_options: :attr:`EditAdapter.OPTIONS`.
        callback: ``callback(step, total, terms)`` over both stages (``total`` = their sum).

    Returns:
        the trained adapter (unconditioned) and the loss history of both stages.
    """
    settings.validate()
    if backbone.family != "animatediff":
        raise InputError("model", f"Edit-Your-Motion runs on AnimateDiff (SD1.5) models; this is a {backbone.family} "
                                  "model")
    x0 = latent_samples(source, backbone, False, "source")
    stage_one = latent_samples(subject, backbone, False, "subject") if subject is not None else x0
    if stage_one.shape != x0.shape:
        raise InputError("subject", f"the masked subject's latents are {tuple(stage_one.shape)} but the source's "
                                    f"{tuple(x0.shape)}; encode both from the same frames")
    condition = PoseCondition.from_image(controlnet, source_pose)
    condition.check_fits(x0.shape[2], tuple(x0.shape[3:]), backbone.latent_scale(), "source_pose")
    text = backbone.encode_prompt([prompt])
    adapter = EditAdapter.for_unet(backbone.denoiser_module, backbone.fingerprint, None, settings.seed,
                                   controlnet=controlnet, **dict(adapter_options or {}))
    total = settings.subject_steps + settings.full_steps
    history = []

    def run(adapter: EditAdapter, latents: torch.Tensor, steps: int, offset: int, seed: int) -> EditAdapter:
        def shifted(step, _, terms):
            if callback is not None:
                callback(offset + step, total, terms)

        result = train(backbone.denoiser(), adapter.conditioned(condition), latents, text, PLAIN_MSE, steps=steps,
                       lr=settings.lr, seed=seed, options=settings.options, callback=shifted, prompt=prompt)
        history.extend(result.history)
        return result.adapter

    with backbone.hold(backbone.denoiser_module):
        if settings.subject_steps:
            adapter = run(adapter.at_stage("subject"), stage_one, settings.subject_steps, 0, settings.seed)
        if settings.full_steps:
            stage = "full" if settings.subject_steps else "all"
            adapter = run(adapter.at_stage(stage), x0, settings.full_steps, settings.subject_steps, settings.seed + 1)
    adapter.metadata.update({"subject_steps": str(settings.subject_steps), "full_steps": str(settings.full_steps),
                             "masked_subject": str(subject is not None).lower()})
    return TrainResult(adapter.conditioned(None), history)


def edit_video(backbone: VideoBackbone, adapter: EditAdapter, controlnet: torch.nn.Module, source: VideoLatents,
               source_pose: torch.Tensor, target_pose: torch.Tensor, prompt: str, negative_prompt: str = "",
               steps: int = 50, cfg: float = 7.5, inversion_progress: Progress | None = None,
               progress: Progress | None = None) -> VideoLatents:
    """The source clip with the target poses' motion: clean latents ``(1, c, f, h, w)``.

    The source is DDIM-inverted (``steps`` steps, the prompt, no guidance) with ``adapter`` conditioned
    on ``source_pose``; sampling starts from that noise with ``adapter`` conditioned on ``target_pose``
    (IMAGE ``(f, H, W, 3)`` at the clip's size, e.g. Align Pose's images).
    """
    x0 = latent_samples(source, backbone, False, "source")
    frames, size = x0.shape[2], tuple(x0.shape[3:])
    conditions = []
    for name, images in (("source_pose", source_pose), ("target_pose", target_pose)):
        condition = PoseCondition.from_image(controlnet, images)
        condition.check_fits(frames, size, backbone.latent_scale(), name)
        conditions.append(condition)
    adapter.check_backbone(backbone.fingerprint)
    on_source, on_target = ([AdapterUse(adapter.conditioned(condition))] for condition in conditions)
    noise = invert_reference(backbone, source, steps, prompt, on_source, inversion_progress)
    return generate(backbone, noise, prompt, negative_prompt, steps, cfg, on_target, progress)
