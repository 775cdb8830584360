"""Does the toy pose ControlNet put the object where the skeleton says?

    python benchmarks/toy_pose_controlnet.py --clips 16

For ``--clips`` held-out clips (seeds ``HELD_OUT_SEEDS + 9000`` upward, none seen in training), the toy
AnimateDiff model samples a whole clip from fresh noise of the clip's seed (DDIM, 25 steps, cfg 7.5,
the clip's caption) twice: with the toy pose ControlNet conditioned on the clip's toy skeleton images
(:func:`motion_core.toy.skeleton.pose_images`, applied per frame by
:func:`motion_core.edit.motion_attention.attach_pose_control`, as Edit-Your-Motion applies it) and without it, from the same noise.
The tracker measures each generated frame; reported per row: the object's centre error in pixels
against the skeleton's intended centre (the reference object's centre: the torso's midpoint), the
size error, the share of frames with an object found, and colour / shape right rates (per clip).
Nothing is written: the table is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import mean_and_interval, table  # noqa: E402
from motion_core.adapters import make_view  # noqa: E402
from motion_core.backbones import load_backbone  # noqa: E402
from motion_core.edit.controlnet import load_controlnet  # noqa: E402
from motion_core.edit.motion_attention import PoseCondition, attach_pose_control  # noqa: E402
from motion_core.noise import fresh_noise  # noqa: E402
from motion_core.sample import guided  # noqa: E402
from motion_core.toy import model, skeleton, tracker, world  # noqa: E402
from motion_core.toy.train_controlnet import ANIMATEDIFF  # noqa: E402
from motion_core.toy.train_model import HELD_OUT_SEEDS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIRST_SEED = HELD_OUT_SEEDS + 9000
"""Away from the seeds other toy benchmarks and the bundled clips use."""


def generate(backbone, clip: world.Clip, seed: int, controlnet=None, steps: int = 25, cfg: float = 7.5) -> np.ndarray:
    """One clip of ``clip``'s size from fresh noise of ``seed`` with its caption, the ControlNet (if
    given) on its skeleton: frames ``(f, h, w, 3)`` float32 in [0, 1]."""
    frames, height, width, _ = clip.frames.shape
    scale = backbone.latent_scale()
    x_T = fresh_noise(torch.empty(1, backbone.unet.config.in_channels, frames, height // scale, width // scale), seed)
    cond, uncond = backbone.encode_prompt([clip.caption]), backbone.encode_prompt([""])
    unet = backbone.unet
    if controlnet is not None:  # the pose conditioning Edit-Your-Motion uses, on a private view
        unet = make_view(backbone.unet)
        attach_pose_control(unet, PoseCondition.from_image(controlnet, skeleton.pose_images(clip)))
    predict = partial(backbone.call_denoiser, unet)
    with torch.no_grad():
        latents = backbone.sampling.sample(guided(predict, cond, uncond, cfg), x_T, steps)
    return backbone.decode_latents(latents).numpy()


def score(clip: world.Clip, frames: np.ndarray) -> dict:
    """Tracker figures of generated ``frames`` against ``clip``'s ground truth (the skeleton's centre and size)."""
    track = tracker.track(frames)
    found = track.found
    centre_error = np.linalg.norm(track.centres[found] - clip.centres[found], axis=1)
    size_error = np.abs(track.sizes[found] - clip.sizes[found])
    return {"centre": float(centre_error.mean()) if found.any() else np.nan,
            "size": float(size_error.mean()) if found.any() else np.nan, "found": float(found.mean()),
            "colour": float(track.colour == clip.colour), "shape": float(track.shape == clip.shape)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--model", default=str(ANIMATEDIFF))
    parser.add_argument("--controlnet", default=str(ROOT / "models" / "toy-pose-controlnet"))
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--cfg", type=float, default=7.5)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    started = time.time()
    backbone = load_backbone(args.model)
    folder = Path(args.controlnet)
    controlnet = load_controlnet(folder / "toy_pose_controlnet.safetensors", configs=folder)
    rows = {"without ControlNet": [], "with ControlNet": []}
    for index in range(args.clips):
        seed = FIRST_SEED + index
        clip = world.random_clip(seed, model.FRAMES, model.WIDTH, model.HEIGHT)
        for label, net in (("without ControlNet", None), ("with ControlNet", controlnet)):
            rows[label].append(score(clip, generate(backbone, clip, seed, net, args.steps, args.cfg)))
        print(f"clip {index + 1}/{args.clips}: {clip.caption}; centre error without "
              f"{rows['without ControlNet'][-1]['centre']:.2f} px, with {rows['with ControlNet'][-1]['centre']:.2f} px",
              file=sys.stderr, flush=True)
    header = ["", "centre error (px)", "size error (px)", "frames with an object", "colour right", "shape right"]
    body = [[label, *(mean_and_interval([r[key] for r in results]) for key in ("centre", "size")),
             *(f"{np.mean([r[key] for r in results]):.0%}" for key in ("found", "colour", "shape"))]
            for label, results in rows.items()]
    print(f"{args.clips} held-out clips (seeds {FIRST_SEED}..{FIRST_SEED + args.clips - 1}), {model.FRAMES} frames "
          f"of {model.WIDTH}x{model.HEIGHT}, DDIM {args.steps} steps, cfg {args.cfg}; "
          f"{time.time() - started:.0f} s, {torch.get_num_threads()} thread(s)\n")
    print(table(header, body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
