"""The toy model itself: does it follow captions, and how well do its VAE and DDIM inversion keep a clip?

    python benchmarks/toy_model.py --write

- Caption following: every shape × colour × named motion caption (4 × 5 × 12 = 240) generated from
  fresh noise per seed, each clip measured by the tracker: colour, shape and motion word right.
- VAE: mean absolute pixel error of encode → decode on held-out clips, and how far the tracked
  centres move (pixels).
- Inversion round trip: DDIM inversion of held-out clips, then sampling back with their caption;
  motion fidelity of the result against the clip.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import table, write_section  # noqa: E402
from motion_core.backbones.base import ModelOptions  # noqa: E402
from motion_core.backbones import load_backbone  # noqa: E402
from motion_core.pipeline import decode, encode_reference, generate, invert_reference, make_noise  # noqa: E402
from motion_core.toy import evaluate, model, tracker, world  # noqa: E402
from motion_core.toy.train_model import HELD_OUT_SEEDS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = {"unet3d": ("toy_model", "The toy text-to-video model"),
            "animatediff": ("toy_model_animatediff", "The toy AnimateDiff model"),
            "wan": ("toy_model_wan", "The toy Wan model")}
"""The BENCHMARKS.md section each model family's figures go to."""


def percent(flags) -> str:
    return f"{100 * np.mean(flags):.1f} %"


def caption_section(backbone, seeds: int, steps: int, cfg: float, motions=world.MOTIONS) -> str:
    results = evaluate.caption_following(backbone, range(seeds), motions=motions, steps=steps, cfg=cfg,
                                         progress=lambda done, total: print(f"{done}/{total}", file=sys.stderr))
    rows = [["all", len(results), percent([r.colour_right for r in results]), percent([r.shape_right for r in results]),
             percent([r.motion_right for r in results])]]
    for motion in motions:
        part = [r for r in results if r.motion == motion]
        rows.append([motion, len(part), percent([r.colour_right for r in part]), percent([r.shape_right for r in part]),
                     percent([r.motion_right for r in part])])
    for shape in world.SHAPES:
        part = [r for r in results if r.shape == shape]
        rows.append([f"shape {shape}", len(part), percent([r.colour_right for r in part]),
                     percent([r.shape_right for r in part]), percent([r.motion_right for r in part])])
    which = ("every caption" if tuple(motions) == world.MOTIONS
             else f"the {len(results) // seeds} captions of the motions {', '.join(motions)},")
    return (f"**Caption following** — {which} \"a <colour> <shape> <motion>\" × {seeds} seed(s), "
            f"DDIM {steps} steps, cfg {cfg}, from fresh noise; measured by `motion_core.toy.tracker` "
            "(motion word: `tracker.motion_word`, which names random paths \"unclear\" 88 % of the time).\n\n"
            + table(["captions", "clips", "colour right", "shape right", "motion word right"], rows))


def reconstruction_section(backbone, clips: int, inversion_steps: int, cfg: float) -> str:
    errors, shifts, fidelities = [], [], []
    for k in range(clips):
        clip = world.random_clip(HELD_OUT_SEEDS + 5000 + k, model.clip_frames(backbone.frame_multiple), model.WIDTH,
                                 model.HEIGHT)
        reference, fitted = encode_reference(backbone, world.to_image_tensor(clip))
        decoded = decode(backbone, reference).numpy()
        errors.append(np.abs(decoded - clip.frames).mean())
        shifts.append(np.nanmean(np.linalg.norm(tracker.track(decoded).centres - clip.centres, axis=1)))
        inverted = invert_reference(backbone, reference, inversion_steps)
        back = decode(backbone, generate(backbone, make_noise(inverted, "direct"), clip.caption,
                                         steps=inversion_steps, cfg=1.0)).numpy()
        fidelities.append(evaluate.score_transfer(clip, back, clip.shape, clip.colour).fidelity)
    return (f"**VAE and inversion** on {clips} held-out clips (all motions): VAE mean absolute pixel error "
            f"{np.mean(errors):.4f} (pixels in [0, 1]); tracked centre moved by the VAE {np.mean(shifts):.2f} px "
            f"(mean); DDIM inversion ({inversion_steps} steps, empty prompt) then sampling with the caption at cfg "
            f"1: motion fidelity to the clip {np.mean(fidelities):.3f} ± {np.std(fidelities):.3f}.")


def training_history(record: dict) -> str:
    """How a model folder's ``training.json`` says it was made, first run first: a continued model
    (``--init-from``) keeps the record of the run it started from under ``init_training``, and one
    trained on another run's VAE (``--vae-from``) keeps that run's record under ``vae_training``; each
    run's command says which."""
    runs = []
    while record:
        runs.append(f"`{record.get('command', '?')}` ({record.get('minutes', '?')} min, "
                    f"{record.get('threads', '?')} threads)")
        record = record.get("init_training") or record.get("vae_training") or {}
    return "trained by " + ", then ".join(reversed(runs)) if runs else "training record missing"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/toy-t2v")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--clips", type=int, default=24, help="held-out clips for the VAE / inversion figures")
    parser.add_argument("--motions", default=",".join(world.MOTIONS),
                        help="comma-separated motions whose captions are generated (default: all %(default)s)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    motions = tuple(name.strip() for name in args.motions.split(","))
    if unknown := [name for name in motions if name not in world.MOTIONS]:
        parser.error(f"--motions: {', '.join(unknown)} not among {', '.join(world.MOTIONS)}")
    folder = Path(args.model) if Path(args.model).is_absolute() else ROOT / args.model
    backbone = load_backbone(folder, ModelOptions())
    training = json.loads((folder / "training.json").read_text()) if (folder / "training.json").is_file() else {}
    body = "\n\n".join([
        f"Model: `{args.model}` — {training_history(training)}; denoiser "
        f"{sum(p.numel() for p in backbone.denoiser_module.parameters()) / 1e6:.2f} M, "
        f"text encoder {sum(p.numel() for p in backbone.text_encoder.parameters()) / 1e6:.2f} M, "
        f"VAE {sum(p.numel() for p in backbone.vae.parameters()) / 1e6:.2f} M parameters.",
        caption_section(backbone, args.seeds, args.steps, args.cfg, motions),
        reconstruction_section(backbone, args.clips, args.steps, args.cfg),
    ])
    print(body)
    if args.write:
        name, title = SECTIONS[backbone.family]
        write_section(name, title, body)
    return 0


if __name__ == "__main__":
    torch.manual_seed(0)
    raise SystemExit(main())
