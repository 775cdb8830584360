"""Train a toy pose ControlNet for the toy AnimateDiff model, ControlNet's way, seeded.

    python -m motion_core.toy.train_controlnet --out models/toy-pose-controlnet

ControlNet (Zhang et al. 2023, "Adding Conditional Control to Text-to-Image Diffusion Models") copies
the image model's encoder (down blocks and middle), feeds it the condition image through a small
convolutional *conditioning embedding*, and adds its outputs to the frozen model's skip connections
and middle through zero-initialised 1×1 convolutions, so training starts from the unchanged model.
Here:

- **Image model.** AnimateDiff runs a text-to-image UNet with motion modules; its spatial weights
  form a ``UNet2DConditionModel`` (:func:`image_unet_from_motion_unet`), from which diffusers'
  ``ControlNetModel.from_unet`` copies the encoder.
- **Conditioning embedding.** Its stride-2 convolutions bring the condition image to the latents'
  size: SD1.5's ``(16, 32, 96, 256)`` has three, for its VAE's 8×; the toy VAE downsamples 2×, so one
  (:func:`conditioning_channels`: ``(16, 32)``).
- **Data.** Single world frames (each from another clip drawn below ``HELD_OUT_SEEDS``), their
  caption (10 % empty, for classifier-free guidance) and the frame's toy skeleton image
  (:func:`motion_core.toy.skeleton.pose_images`, in [0, 1] as diffusers' ControlNet pipelines feed it).
- **Objective.** Plain ε-MSE on the model's own schedule (its scheduler config: AnimateDiff's linear
  betas), timesteps uniform, AdamW; only the ControlNet learns (UNet, VAE, text encoder frozen).

The folder written holds ``config.json`` and ``toy_pose_controlnet.safetensors`` (diffusers' key
layout, what ``save_pretrained`` writes; :func:`motion_core.edit.load_controlnet` loads it with
``configs=`` the folder) and ``training.json`` (arguments, seconds, final loss).

The shipped ``models/toy-pose-controlnet``: 2400 steps of 32 frames, 23 minutes on one CPU thread.
``benchmarks/toy_pose_controlnet.py --clips 16``: the object's centre lands 0.50 px from the
skeleton's (7.50 px without the ControlNet), colours and shapes still all right.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import model, skeleton, world
from .train_model import (HELD_OUT_SEEDS, _log, _lr_factor, add_output_arguments, output_folder, training_caption,
                          write_folder_atomically)
from .train_animatediff import MOTION_CAPTION_DROP, image_unet_like

SD15_CONDITIONING_CHANNELS = (16, 32, 96, 256)
"""SD1.5 ControlNet's conditioning embedding widths: each entry after the first adds a stride-2 convolution."""
ANIMATEDIFF = Path(__file__).resolve().parents[2] / "models" / "toy-animatediff"
"""The toy AnimateDiff model the ControlNet is trained for (default ``--model``)."""
WEIGHTS = "toy_pose_controlnet.safetensors"
"""The weights' file name: what a user copies into ComfyUI's ``models/controlnet`` (Load Pose ControlNet
reads its shape from the model, so no config goes with it)."""


def image_unet_from_motion_unet(unet: torch.nn.Module) -> torch.nn.Module:
    """A ``UNet2DConditionModel`` holding a ``UNetMotionModel``'s spatial weights (everything but its
    motion modules): the text-to-image model AnimateDiff animates, undoing diffusers'
    ``UNetMotionModel.from_unet2d`` (diffusers 0.42 has no helper for this direction).

    Raises:
        ValueError: when a weight of the image model has no counterpart in the motion UNet, or the motion
            UNet holds a weight outside its motion modules that the image model lacks.
    """
    config = unet.config
    # from_unet2d copies the UNet2D's attention_head_dim (a head count, in SD's naming) to num_attention_heads
    image = image_unet_like(config, config.num_attention_heads, use_linear_projection=config.use_linear_projection,
                            transformer_layers_per_block=config.transformer_layers_per_block)
    missing, unexpected = image.load_state_dict(unet.state_dict(), strict=False)
    unexpected = [name for name in unexpected if ".motion_modules." not in name]
    if missing or unexpected:
        raise ValueError(f"the motion UNet's spatial weights do not fit an image UNet: missing {missing[:3]}, "
                         f"left over {unexpected[:3]}")
    return image.eval()  # float32, whatever the motion UNet holds: load_state_dict casts into it


def conditioning_channels(vae_downsampling: int) -> tuple[int, ...]:
    """Conditioning embedding widths for a VAE that downsamples ``vae_downsampling``× (a power of 2):
    SD1.5's first ``log2(vae_downsampling) + 1`` widths (8 -> ``(16, 32, 96, 256)``, 2 -> ``(16, 32)``)."""
    levels = round(math.log2(vae_downsampling))
    if 2**levels != vae_downsampling or not 1 <= levels < len(SD15_CONDITIONING_CHANNELS):
        raise ValueError(f"a VAE downsampling of {vae_downsampling} is not 2, 4 or 8")
    return SD15_CONDITIONING_CHANNELS[:levels + 1]


def controlnet_for(image_unet: torch.nn.Module, vae_downsampling: int, seed: int = 0) -> torch.nn.Module:
    """A fresh ``ControlNetModel``: ``image_unet``'s encoder copied, a seeded conditioning embedding
    of :func:`conditioning_channels`, zero convolutions at zero (diffusers' ``from_unet``)."""
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    return ControlNetModel.from_unet(image_unet, conditioning_embedding_out_channels=conditioning_channels(
        vae_downsampling))


def frame_batch(rng: np.random.Generator, count: int, frames: int = model.FRAMES, width: int = model.WIDTH,
                height: int = model.HEIGHT) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``count`` single training frames, each a random frame of a fresh clip (seed below ``HELD_OUT_SEEDS``):
    frames ``(count, h, w, 3)`` and their skeleton images ``(count, h, w, 3)``, float32 in [0, 1], and
    captions (10 % empty: :data:`~motion_core.toy.train_animatediff.MOTION_CAPTION_DROP`)."""
    pictures, poses, captions = [], [], []
    for _ in range(count):
        clip = world.random_clip(int(rng.integers(HELD_OUT_SEEDS)), frames, width, height)
        k = int(rng.integers(frames))
        one = world.Clip(clip.frames[k:k + 1], clip.caption, clip.shape, clip.colour, clip.motion,
                         clip.centres[k:k + 1], clip.sizes[k:k + 1], clip.background)
        pictures.append(torch.from_numpy(one.frames))
        poses.append(skeleton.pose_images(one))
        captions.append(training_caption(clip, float(rng.random()), MOTION_CAPTION_DROP))
    return torch.cat(pictures), torch.cat(poses), captions


def controlled_noise(unet: torch.nn.Module, controlnet: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor,
                     text: torch.Tensor, pose: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """The image UNet's noise prediction with the ControlNet's residuals: ``x_t (b, c, h, w)``, ``t (b,)``,
    ``text (b, tokens, dim)``, ``pose (b, 3, H, W)`` in [0, 1] -> ``(b, c, h, w)``."""
    down, mid = controlnet(x_t, t, encoder_hidden_states=text, controlnet_cond=pose, conditioning_scale=strength,
                           return_dict=False)
    return unet(x_t, t, encoder_hidden_states=text, down_block_additional_residuals=down,
                mid_block_additional_residual=mid).sample


def train_controlnet(backbone, controlnet: torch.nn.Module, rng: np.random.Generator, steps: int, batch: int,
                     lr: float, log_every: int = 25) -> tuple[torch.nn.Module, float]:
    """ε-MSE training of ``controlnet`` alone on :func:`frame_batch` frames, with ``backbone`` (the toy
    AnimateDiff model, loaded by ``load_backbone``) frozen; returns the trained ControlNet (eval mode, no
    gradients) and the last steps' smoothed loss."""
    unet = image_unet_from_motion_unet(backbone.unet).requires_grad_(False)
    vae = backbone.vae.requires_grad_(False)
    controlnet.train().requires_grad_(True)
    optimiser = torch.optim.AdamW(controlnet.parameters(), lr=lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
    started, running = time.time(), None
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = lr * _lr_factor(step, steps, min(100, steps // 10 + 1))
        frames, poses, captions = frame_batch(rng, batch)
        with torch.no_grad():
            latents = vae.encode(frames.permute(0, 3, 1, 2) * 2 - 1).latent_dist.mode() * vae.config.scaling_factor
            text = backbone.encode_prompt(captions)
        t = backbone.sampling.draw_timesteps(batch, generator)
        noise = torch.randn(latents.shape, generator=generator)
        predicted = controlled_noise(unet, controlnet, backbone.sampling.noised(latents, noise, t), t, text,
                                     poses.permute(0, 3, 1, 2))
        loss = (predicted - noise).pow(2).mean()
        if not torch.isfinite(loss):
            raise RuntimeError(f"the loss became {loss.item()} at step {step}; lower --lr")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(controlnet.parameters(), 1.0)
        optimiser.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            _log("controlnet", step + 1, steps, running, started)
    return controlnet.eval().requires_grad_(False), running


def save_controlnet(controlnet: torch.nn.Module, out: Path, record: dict, overwrite: bool = False) -> Path:
    """Write ``config.json``, :data:`WEIGHTS` and ``training.json`` into a folder next to ``out`` and move
    it into place only when complete."""
    def write(folder: Path) -> None:
        controlnet.save_pretrained(folder, safe_serialization=True)
        (Path(folder) / "diffusion_pytorch_model.safetensors").rename(Path(folder) / WEIGHTS)

    return write_folder_atomically(write, out, record, overwrite)


def main(argv: list[str] | None = None) -> int:
    from ..backbones import load_backbone

    parser = argparse.ArgumentParser(prog="python -m motion_core.toy.train_controlnet",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ANIMATEDIFF),
                        help="the toy AnimateDiff folder the ControlNet is for (default: models/toy-animatediff)")
    add_output_arguments(parser, "models/toy-pose-controlnet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1000, help="optimiser steps (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=16, help="single frames per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--log-every", type=int, default=25, help="steps between progress lines")
    args = parser.parse_args(argv)
    out = output_folder(parser, args)

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    started = time.time()
    backbone = load_backbone(args.model)
    controlnet = controlnet_for(image_unet_from_motion_unet(backbone.unet), backbone.latent_scale(), args.seed)
    trained, loss = train_controlnet(backbone, controlnet, rng, args.steps, args.batch, args.lr, args.log_every)
    record = {"command": "python -m motion_core.toy.train_controlnet " + " ".join(
                  argv if argv is not None else sys.argv[1:]),
              "model": Path(args.model).name, "seed": args.seed, "steps": args.steps, "batch": args.batch,
              "lr": args.lr, "conditioning_embedding_out_channels": list(trained.config.
                                                                         conditioning_embedding_out_channels),
              "final_loss": round(loss, 5), "seconds": round(time.time() - started, 1),
              "threads": torch.get_num_threads()}
    save_controlnet(trained, out, record, overwrite=args.overwrite)
    print(f"wrote {out} in {record['seconds']} s (final loss {loss:.4f})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
