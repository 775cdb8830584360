"""Train the toy AnimateDiff model on the toy world, AnimateDiff's way, seeded.

    python -m motion_core.toy.train_animatediff --init-from models/toy-t2v --out models/toy-animatediff

AnimateDiff (Guo et al. 2024, "AnimateDiff: Animate Your Personalized Text-to-Image Diffusion Models
without Specific Tuning") animates a frozen text-to-image model with *motion modules*: temporal
transformers, with a sinusoidal frame-position encoding, inserted after every spatial block and
trained alone on videos. Here the image model comes from the toy text-to-video model
(``--init-from``, a folder :mod:`motion_core.toy.train_model` wrote):

1. **Image model.** A diffusers ``UNet2DConditionModel`` of the UNet3D's widths, heads and
   cross-attention gets the UNet3D's spatial weights (:func:`image_unet_from_unet3d`); its temporal
   convolutions, temporal attentions and ``transformer_in`` have no place in it. The UNet3D's
   spatial layers were trained together with its temporal convolutions, which act on a single frame
   too (a residual per-pixel layer after every resnet), so the copy alone predicts noise badly
   (ε-MSE 0.20-0.64 where the UNet3D has 0.003-0.03): ``--image-steps`` fine-tunes all of it on
   single world frames (8 × ``--batch`` per step, each from another clip, captions dropped as the
   UNet3D's training did), on AnimateDiff's schedule. Tokenizer, text encoder and VAE (with its
   ``scaling_factor``) are reused unchanged.
2. **Motion modules.** A v2-shaped diffusers ``MotionAdapter`` of the UNet's widths (a mid block,
   ``motion_max_seq_length`` 32) whose output projections start at zero, as AnimateDiff's do, so
   the combined ``UNetMotionModel`` starts out as the image model on every frame
   (:func:`motion_adapter_for`); ``--steps`` steps train only its parameters on clips of 8 frames
   (captions with their motion words, 10 % empty for classifier-free guidance), image model frozen.

Both stages minimise ε-MSE on AnimateDiff's schedule (linear betas 0.00085 → 0.012, 1000 steps,
:data:`SCHEDULER`, which the folder's scheduler config says). The motion stage draws timesteps
shifted toward high noise (``--timestep-shift``) and weights them by min-SNR (``--min-snr``): where
an object's path is decided (high noise), uniformly drawn noise-space losses are nearly flat (the
toy-world figures of issue 15). An exponential moving average of the trained weights is what is
saved. The result is an AnimateDiff diffusers folder (``model_index.json`` naming an
``AnimateDiffPipeline`` with a ``UNetMotionModel``) that ``motion_core.backbones.load_backbone``
loads as the ``animatediff`` family.

**Motion words** (``--train-text``). Trained this way, the motion modules move objects but the
captions' motion words do not steer them (1.2 % followed, chance 8 %): the text encoder, trained
with a UNet that never needed them, barely tells them apart, and the motion modules see the text
only through the image model's cross-attention. ``--train-text`` trains the text encoder and the
spatial cross-attentions (``attn2``) together with the motion modules, so the words can reach them;
with ``--init-from`` an AnimateDiff folder this script wrote, training continues from its motion
modules (no image stage). The captions then keep their motion phrase except in
``--motion-drop`` of the steps' clips (and 10 % empty).

Training clips come from the seeds :mod:`~motion_core.toy.train_model` uses (below
``HELD_OUT_SEEDS``); the benchmarks' references never appear.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..backbones.animatediff import AnimateDiffBackbone
from ..sampling import LOSS_WEIGHTINGS, LossWeighting, TimestepDistribution
from . import model
from .train_model import (add_device_argument, add_output_arguments, checked_device, min_snr_weighting, output_folder,
                          parts_to, save_atomically, train_denoiser)

SCHEDULER = {**model.SCHEDULER, "beta_schedule": "linear"}
"""AnimateDiff's schedule: linear betas 0.00085 → 0.012 over 1000 steps, DDIM, ε-prediction."""
PIPELINE_CLASS = "AnimateDiffPipeline"
MOTION_HEADS, MOTION_GROUPS, MOTION_FRAMES = 4, 8, 32
"""Motion-module attention heads (head widths 8 and 16 on the 32 / 64 channels), group-norm groups,
and frame-position encoding length (v2's 32)."""
MOTION_CAPTION_DROP = {"no_motion": 0.0, "empty": 0.1}
"""Motion stage: captions keep their motion words; 10 % are empty, for classifier-free guidance."""


def image_unet_from_unet3d(unet3d: torch.nn.Module) -> torch.nn.Module:
    """A ``UNet2DConditionModel`` with the widths, heads and cross-attention of a diffusers
    ``UNet3DConditionModel`` and its spatial weights (conv_in, time embedding, resnets, spatial
    transformers, samplers, output norm and conv).

    Raises:
        ValueError: when a weight of the image model has no counterpart in the UNet3D.
    """
    config = unet3d.config
    # diffusers' UNet3D blocks build their spatial transformers with heads of width attention_head_dim
    # (``Transformer2DModel(channels // n, n)``), SD-style UNet2D blocks with attention_head_dim heads:
    # the same attention needs channels / width heads per level in the UNet2D.
    head_width = config.num_attention_heads or config.attention_head_dim
    unet = image_unet_like(config, tuple(width // head_width for width in config.block_out_channels),
                           use_linear_projection=True)  # the UNet3D's spatial transformers project with linear layers
    missing, _ = unet.load_state_dict(unet3d.state_dict(), strict=False)  # temporal weights are left out
    if missing:
        raise ValueError(f"the UNet3D lacks {len(missing)} weights of the image model, e.g. {missing[:3]}")
    return unet


IMAGE_BLOCKS = {f"{kind}{video}": f"{kind}2D" for kind in ("CrossAttnDownBlock", "DownBlock", "CrossAttnUpBlock",
                                                           "UpBlock") for video in ("3D", "Motion")}
"""The image UNet's block type for each block type of a UNet3D or a ``UNetMotionModel``."""


def image_unet_like(config, heads: tuple[int, ...], **settings) -> torch.nn.Module:
    """A fresh ``UNet2DConditionModel`` with the sizes of a video UNet's ``config`` (a UNet3D's or a
    ``UNetMotionModel``'s): its widths, block kinds (:data:`IMAGE_BLOCKS`), cross-attention, norms and
    ``heads`` per level (SD's ``attention_head_dim``); ``settings`` add or replace arguments."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**{
        "sample_size": config.sample_size, "in_channels": config.in_channels, "out_channels": config.out_channels,
        "down_block_types": tuple(IMAGE_BLOCKS[kind] for kind in config.down_block_types),
        "up_block_types": tuple(IMAGE_BLOCKS[kind] for kind in config.up_block_types),
        "block_out_channels": tuple(config.block_out_channels), "layers_per_block": config.layers_per_block,
        "cross_attention_dim": config.cross_attention_dim, "attention_head_dim": heads,
        "norm_num_groups": config.norm_num_groups, "norm_eps": config.norm_eps, "act_fn": config.act_fn,
        "downsample_padding": config.downsample_padding, "mid_block_scale_factor": config.mid_block_scale_factor,
        **settings})


def motion_adapter_for(unet: torch.nn.Module, heads: int = MOTION_HEADS, groups: int = MOTION_GROUPS,
                       max_frames: int = MOTION_FRAMES, seed: int = 0) -> torch.nn.Module:
    """A fresh v2-shaped ``MotionAdapter`` (one motion module per resnet, a mid block) for ``unet``.

    Every temporal transformer's output projection ``proj_out`` is zero, as AnimateDiff initialises
    its motion modules (``zero_module``), so each module adds nothing until trained: the combined
    model starts as the image model on every frame.
    """
    from diffusers import MotionAdapter

    torch.manual_seed(seed)
    adapter = MotionAdapter(
        block_out_channels=tuple(unet.config.block_out_channels), motion_layers_per_block=unet.config.layers_per_block,
        motion_num_attention_heads=heads, motion_norm_num_groups=groups, motion_max_seq_length=max_frames,
        use_motion_mid_block=True,
    )
    with torch.no_grad():
        for name, module in adapter.named_modules():
            if name.endswith("proj_out"):
                module.weight.zero_()
                module.bias.zero_()
    return adapter


def motion_parameters(unet: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters of a ``UNetMotionModel``'s motion modules (what the motion stage trains)."""
    return [p for name, p in unet.named_parameters() if ".motion_modules." in name]


def cross_attention_parameters(unet: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters of a UNet's spatial cross-attentions (``attn2``: where the text enters)."""
    return [p for name, p in unet.named_parameters() if ".attn2." in name and ".motion_modules." not in name]


def call_image_unet(module: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """A ``UNet2DConditionModel`` on video latents: ``x_t (b, c, f, h, w)``, ``t (b,)``, ``text (b, tokens,
    dim)`` -> ``(b, c, f, h, w)``, every frame on its own."""
    b, c, f, h, w = x_t.shape
    flat = x_t.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    out = module(flat, t.repeat_interleave(f), encoder_hidden_states=text.repeat_interleave(f, dim=0)).sample
    return out.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m motion_core.toy.train_animatediff",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--init-from", required=True, metavar="DIR",
                        help="the toy text-to-video folder (train_model's) whose image layers, text encoder and "
                             "VAE are taken, or a toy AnimateDiff folder (this script's) to continue")
    add_output_arguments(parser, "models/toy-animatediff")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-steps", type=int, default=250,
                        help="fine-tuning steps of the image model on single frames (default: %(default)s)")
    parser.add_argument("--image-lr", type=float, default=5e-4)
    parser.add_argument("--steps", type=int, default=1100, help="motion-module steps on clips (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=8,
                        help="clips per motion step; image steps take 8x as many single frames (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=8e-4, help="motion-module learning rate (default: %(default)s)")
    parser.add_argument("--loss-weighting", choices=LOSS_WEIGHTINGS, default="min_snr",
                        help="motion stage: loss weighting by noise level (motion_core.sampling.LossWeighting; "
                             "v: the ε-MSE plus the x0-MSE, which weights high noise up; default: %(default)s)")
    parser.add_argument("--min-snr", type=float, default=5.0, metavar="GAMMA",
                        help="motion stage: min-SNR loss weighting's γ (0 = off; default: %(default)s)")
    parser.add_argument("--timestep-shift", type=float, default=3.0,
                        help="motion stage: timestep draws shifted toward high noise (1 = uniform; "
                             "default: %(default)s)")
    parser.add_argument("--train-text", action="store_true",
                        help="also train the text encoder and the spatial cross-attentions (motion words)")
    parser.add_argument("--motion-drop", type=float, default=0.0,
                        help="share of clips shown without their motion phrase (default: %(default)s)")
    add_device_argument(parser)
    args = parser.parse_args(argv)
    out = output_folder(parser, args)
    device = checked_device(parser, args)
    try:
        continuing = model.unet_class_name(args.init_from) == "UNetMotionModel"
    except (OSError, KeyError, ValueError) as err:
        parser.error(f"--init-from: {args.init_from} is not a model folder train_model or this script wrote ({err})")
    if continuing and args.image_steps:
        args.image_steps = 0  # a toy AnimateDiff model's image layers are kept as they are
    try:
        timesteps = TimestepDistribution(shift=args.timestep_shift).validate()
    except ValueError as err:
        parser.error(str(err))

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    started = time.time()
    from diffusers import DDIMScheduler, UNetMotionModel

    parts = parts_to(model.load_parts(args.init_from), device)
    init_record = Path(args.init_from) / "training.json"
    if not continuing:
        parts.update(unet=image_unet_from_unet3d(parts["unet"]).to(device), scheduler=DDIMScheduler(**SCHEDULER))
    for frozen in ("vae", "text_encoder"):
        parts[frozen].eval().requires_grad_(False)
    record = {"command": "python -m motion_core.toy.train_animatediff " + " ".join(
                  argv if argv is not None else sys.argv[1:]),
              "seed": args.seed, "device": str(device), "init_from": str(args.init_from),
              "init_training": json.loads(init_record.read_text()) if init_record.is_file() else None,
              "image_steps": args.image_steps, "image_lr": args.image_lr, "steps": args.steps, "batch": args.batch,
              "lr": args.lr, "loss_weighting": args.loss_weighting, "min_snr": args.min_snr,
              "timestep_shift": args.timestep_shift,
              "train_text": args.train_text, "motion_drop": args.motion_drop,
              "motion_module": {"heads": MOTION_HEADS, "groups": MOTION_GROUPS, "max_frames": MOTION_FRAMES},
              "scaling_factor": parts["vae"].config.scaling_factor, "frames": model.FRAMES, "width": model.WIDTH,
              "height": model.HEIGHT}

    if args.image_steps:  # stage 1: the image model alone, on single frames
        parts = train_denoiser(parts, rng, args.image_steps, args.batch, args.image_lr, video_share=0.0,
                               trained={"unet": list(parts["unet"].parameters())}, call=call_image_unet,
                               stage="image")
    record["image_minutes"] = round((time.time() - started) / 60, 1)

    # stage 2: motion modules on clips, the image model frozen (but for its cross-attentions with --train-text)
    if not continuing:
        parts["unet"] = UNetMotionModel.from_unet2d(parts["unet"], motion_adapter_for(parts["unet"], seed=args.seed)
                                                    ).to(device)
    unet = parts["unet"]
    moved = {"unet": motion_parameters(unet)}
    if args.train_text:
        moved = {"unet": moved["unet"] + cross_attention_parameters(unet),
                 "text_encoder": list(parts["text_encoder"].parameters())}

    def checkpoint(ema_parts: dict, step: int) -> None:
        so_far = {"steps": step, "minutes": round((time.time() - started) / 60, 1), "threads": torch.get_num_threads()}
        save_atomically(ema_parts, out.with_name(f"{out.name}-step{step}"), {**record, **so_far},
                        overwrite=True, pipeline_class=PIPELINE_CLASS)

    weighting = (min_snr_weighting(args.min_snr) if args.loss_weighting == "min_snr"
                 else LossWeighting(args.loss_weighting).validate())
    trained = train_denoiser(parts, rng, args.steps, args.batch, args.lr, video_share=1.0, weighting=weighting,
                             trained=moved, call=AnimateDiffBackbone.call_denoiser,
                             caption_drop={**MOTION_CAPTION_DROP, "no_motion": args.motion_drop},
                             timesteps=timesteps, stage="motion",
                             checkpoint=checkpoint, checkpoint_every=args.checkpoint_every)
    record["minutes"] = round((time.time() - started) / 60, 1)
    record["threads"] = torch.get_num_threads()
    save_atomically(trained, out, record, overwrite=args.overwrite, pipeline_class=PIPELINE_CLASS)
    print(f"wrote {out} in {record['minutes']} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
