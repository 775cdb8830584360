"""Do the toy models hear motion words? How far a caption's words carry into each model.

    python benchmarks/toy_motion_words.py --write

Both toy models draw the colour and shape a caption names but not its motion (``toy_model.py``).
This measures where the motion words are lost, per model:

- text encoder and where the text enters the denoiser (a UNet's spatial transformers, a DiT's
  cross-attentions): the relative difference
  of their outputs for captions that differ in one word (motion, colour, shape);
- the denoiser: noise-prediction MSE on held-out clips with their own caption, with the motion
  phrase swapped for the opposite one, and without it. Equal errors: the motion words are not used;
- the clean-clip estimate at high noise, where the path is decided: which way the object drifts
  in it for "moving left / right / up / down" (``evaluate.motion_word_drift``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import publish, table  # noqa: E402
from motion_core.backbones import load_backbone  # noqa: E402
from motion_core.toy import evaluate, model, world  # noqa: E402
from motion_core.toy.train_model import HELD_OUT_SEEDS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIMESTEPS = (500, 800, 950)
DRIFT_TIMESTEPS = (700, 900)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["models/toy-t2v", "models/toy-animatediff"])
    parser.add_argument("--clips", type=int, default=24, help="held-out clips for the noise-prediction errors")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    signal_rows, error_rows, drift_rows = [], [], []
    for name in args.models:
        backbone = load_backbone(ROOT / name)
        clips = [world.make_clip(world.SHAPES[k % len(world.SHAPES)], list(world.COLOURS)[k % len(world.COLOURS)],
                                 world.MOTIONS[k % len(world.MOTIONS)], model.clip_frames(backbone.frame_multiple),
                                 model.WIDTH, model.HEIGHT, seed=HELD_OUT_SEEDS + 9000 + k) for k in range(args.clips)]
        for label, (text, features) in evaluate.word_signal(backbone).items():
            signal_rows.append([f"`{name}`", label, f"{text:.3f}", f"{features:.4f}"])
        for t in TIMESTEPS:
            right, swapped, dropped = evaluate.motion_phrase_errors(backbone, clips, t)
            error_rows.append([f"`{name}`", t, f"{right:.5f}", f"{swapped:.5f}", f"{dropped:.5f}"])
        for t in DRIFT_TIMESTEPS:
            drift = evaluate.motion_word_drift(backbone, t)
            drift_rows.append([f"`{name}`", t, *(f"{dx:+.2f}, {dy:+.2f}" for dx, dy in drift.values())])
    body = "\n\n".join([
        "**Words into the model** — relative difference `|a - b| / |a|` of the outputs for two captions "
        "that differ in one word: the text encoder's, and the layers' where the text enters the denoiser (mean "
        "over them: a UNet's spatial transformers, a DiT's cross-attentions) on the "
        "same 8 frames of noise at t = 800.",
        table(["model", "captions differ in", "text encoder", "where the text enters"], signal_rows),
        f"**Motion phrase in the denoiser** — noise-prediction MSE on {args.clips} held-out clips (every "
        "motion, shape and colour) with the clip's caption, with the opposite motion phrase, and without one.",
        table(["model", "t", "own caption", "opposite motion", "no motion phrase"], error_rows),
        "**Motion word in the clean-clip estimate** — drift (dx, dy) in pixels, first frame to last, of the "
        "red object in the decoded mean of the x0 estimates from 8 fresh noises at timestep t, for \"a red "
        "circle moving <word>\" (x right, y down; `evaluate.motion_word_drift`). A model that hears the word "
        "drifts the named way (left: dx < 0, up: dy < 0); the same drift for every word: it does not.",
        table(["model", "t", *(f"moving {word}" for word in evaluate.DRIFT_WORDS)], drift_rows),
    ])
    publish(body, args.write, "toy_motion_words", "Do the toy models hear motion words?")
    return 0


if __name__ == "__main__":
    torch.manual_seed(0)
    raise SystemExit(main())
