"""Where does a toy model lose the shape a caption names? VAE, denoiser, or sampling, per model.

    python benchmarks/toy_shapes.py --models models/toy-t2v models/toy-animatediff models/toy-wan --write

``toy_model.py`` says whether captions' shapes come out; this says where they are lost, on held-out
clips of every shape:

- the VAE: the shape the tracker sees after encode → decode;
- the denoiser: the shape in the decoded clean-clip estimate from the clip noised to timestep t, with
  its caption (one denoiser call; a model that cannot keep a shape it is shown loses it here);
- attention: how many tokens each self-attention call of the denoiser attends to in effect (a DiT's
  only way to mix tokens; a UNet also has convolutions);
- sampling: the shapes of clips sampled from fresh noise with the empty prompt and no guidance (a
  model that can draw the world's shapes draws each about a quarter of the time), and with captions
  (the share right, as ``toy_model.py`` measures it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import publish, table  # noqa: E402
from motion_core.backbones import load_backbone  # noqa: E402
from motion_core.toy import evaluate, model, world  # noqa: E402
from motion_core.toy.train_model import HELD_OUT_SEEDS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIMESTEPS = (200, 500, 800)
"""Where the clean-clip estimate is taken, on each family's 0–1000 scale (a flow model's σ × 1000)."""


def percent(flags) -> str:
    return f"{100 * np.mean(flags):.0f} %"


def attention_spread(calls: list[evaluate.AttentionSpread]) -> str:
    """``"576 tokens: 377 (65 %) × 4 calls; …"``: the mean attended per token count, largest count first."""
    groups: dict[int, list[float]] = {}
    for call in calls:
        groups.setdefault(call.tokens, []).append(call.attended)
    return "; ".join(f"{tokens} tokens: {np.mean(a):.0f} ({100 * np.mean(a) / tokens:.0f} %) × {len(a)} calls"
                     for tokens, a in sorted(groups.items(), reverse=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["models/toy-t2v", "models/toy-animatediff", "models/toy-wan"])
    parser.add_argument("--clips", type=int, default=48, help="held-out clips for the VAE and denoiser rows")
    parser.add_argument("--samples", type=int, default=20, help="clips sampled with the empty prompt")
    parser.add_argument("--motions", default="left,up", help="motions of the captions sampled (× every shape, colour)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    motions = [m.strip() for m in args.motions.split(",") if m.strip()]
    if not set(motions) <= set(world.MOTIONS):
        parser.error(f"--motions: {', '.join(sorted(set(motions) - set(world.MOTIONS)))} not in {world.MOTIONS}")
    kept_rows, sampled_rows, spread_rows = [], [], []
    for name in args.models:
        backbone = load_backbone(ROOT / name if not Path(name).is_absolute() else name)
        frames = model.clip_frames(backbone.frame_multiple)
        clips = [world.random_clip(HELD_OUT_SEEDS + 500 + k, frames, model.WIDTH, model.HEIGHT)
                 for k in range(args.clips)]
        kept = [evaluate.shapes_kept(backbone, clips)] + [evaluate.shapes_kept(backbone, clips, t) for t in TIMESTEPS]
        kept_rows.append([f"`{name}`", *(percent(flags) for flags in kept)])
        spread_rows.append([f"`{name}`", attention_spread(evaluate.self_attention_spread(backbone, clips[:8], 500))])
        counts = evaluate.unconditional_shapes(backbone, range(args.samples))
        captioned = evaluate.caption_following(backbone, motions=motions)
        sampled_rows.append([f"`{name}`", ", ".join(f"{shape or 'none'} {n}" for shape, n in counts.items() if n),
                             *(percent([r.shape_right for r in captioned if r.shape == shape])
                               for shape in world.SHAPES)])
        print(f"{name}: {kept_rows[-1][1:]} {spread_rows[-1][1:]} {sampled_rows[-1][1:]}", file=sys.stderr)
    body = "\n\n".join([
        f"**Shape kept** — share of {args.clips} held-out random clips (every shape, colour and motion) whose "
        "shape the tracker still sees after the VAE's round trip, and in the decoded clean-clip estimate the "
        "denoiser makes with the clip's caption from the clip noised to timestep t (one call; t on the "
        "0–1000 scale, a flow model's σ × 1000; `evaluate.shapes_kept`).",
        table(["model", "VAE round trip", *(f"denoiser, t = {t}" for t in TIMESTEPS)], kept_rows),
        "**Self-attention spread** — per self-attention call of the denoiser on 8 of those clips noised to "
        "t = 500 with their captions: tokens attended in effect (exp of the attention weights' entropy, after "
        "q/k norms and rotary embeddings, mean over queries and heads; `evaluate.self_attention_spread`) of "
        "the tokens there are, grouped by token count (the UNets' 8-token calls are temporal attention).",
        table(["model", "tokens attended of tokens there are (share)"], spread_rows),
        f"**Shapes sampled** — the shapes the tracker sees in {args.samples} clips sampled from fresh noise with "
        "the empty prompt at cfg 1 (`evaluate.unconditional_shapes`; a model that draws the world's shapes draws "
        f"each about a quarter of the time), and the share right per shape over the captions of the motions "
        f"{', '.join(motions)} × every colour (25 steps, cfg 7.5, as `toy_model.py`).",
        table(["model", "empty prompt", *(f"caption: {shape}" for shape in world.SHAPES)], sampled_rows),
    ])
    publish(body, args.write, "toy_shapes", "Where do the toy models lose shapes?")
    return 0


if __name__ == "__main__":
    torch.manual_seed(0)
    raise SystemExit(main())
