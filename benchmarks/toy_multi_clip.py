"""Training on several clips of one motion (MotionDirector's multi-video mode) on the toy model: does an
adapter trained on two clips of the same path by different shapes and colours carry that path at least
as well as one trained on one clip, with less of either clip's look?

    python benchmarks/toy_multi_clip.py --model models/toy-animatediff --references 4 --seeds 2 --write

For each held-out random path (``toy_transfer.references``: clip A, "a <colour> <shape> moving"), clip
B shows the same centres and sizes with another shape, colour and background. Per seed, two adapters
of ``--method`` (its own objective, timesteps and lr, ``--steps`` steps each: the same budget) are
trained: on A alone, and on A and B (one clip per step, each with its own caption). Both sample a
target of a third shape and colour (e.g. "a blue circle moving") from fresh noise of the seed and from A's
inverted noise (``direct``). Scores: motion fidelity to the path; target colour and shape; leakage
(the tracker names A's colour or shape, or B's for the two-clip adapter); and the colour pull, a finer
measure of leakage: where the object's mean colour lies between the target's colour (0) and the
nearest training clip's colour (1), ``d(target) / (d(target) + d(clip))``. Every row is read against
the no-adapter row of the same noise.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import mean_and_interval, publish, table  # noqa: E402
from benchmarks.toy_transfer import load_toy_model, references, sampler  # noqa: E402
from motion_core.adapters import AdapterUse  # noqa: E402
from motion_core.pipeline import (VideoLatents, encode_reference, invert_reference, make_noise,  # noqa: E402
                                  train_adapter)
from motion_core.toy import evaluate, tracker, world  # noqa: E402
from motion_core.toy.methods import METHODS  # noqa: E402

NOISES = ("random", "direct")


def second_and_target(clip: world.Clip, index: int) -> tuple[world.Clip, tuple[str, str]]:
    """Clip B (a second shape and colour on another background) and the target (a third of each)."""
    shapes = [s for s in world.SHAPES if s != clip.shape]
    colours = [c for c in world.COLOURS if c != clip.colour]
    backgrounds = [name for name, tint in world.BACKGROUNDS.items() if not np.allclose(tint, clip.background)]
    second = world.restyled(clip, shapes[index % len(shapes)], colours[index % len(colours)],
                            backgrounds[index % len(backgrounds)])
    return second, (shapes[(index + 1) % len(shapes)], colours[(index + 2) % len(colours)])


def colour_pull(seen: tracker.Track, target: str, clips: list[world.Clip]) -> float:
    """0 when the object has the target's colour, 1 when it has a training clip's (the nearest)."""
    if seen.rgb is None:
        return float("nan")
    to_target = np.linalg.norm(seen.rgb - world.COLOURS[target])
    to_clip = min(np.linalg.norm(seen.rgb - world.COLOURS[c.colour]) for c in clips)
    return float(to_target / (to_target + to_clip))


def run(args: argparse.Namespace) -> tuple[dict, dict]:
    backbone = load_toy_model(args.model)
    method = METHODS[args.method]
    sample = sampler(backbone, args.sampling_steps, args.cfg)
    scores: dict[str, list[dict]] = defaultdict(list)
    seconds: dict[str, list[float]] = defaultdict(list)
    for index, first in enumerate(references(args.references)):
        second, (shape, colour) = second_and_target(first, index)
        target = world.caption(shape, colour, world.RANDOM)
        encoded = [encode_reference(backbone, world.to_image_tensor(c))[0] for c in (first, second)]
        inverted = invert_reference(backbone, encoded[0], args.inversion_steps)
        for seed in range(args.seeds):
            adapters = {"no adapter": ([], [first])}
            for label, clips in (("one clip (A)", [first]), ("two clips (A + B)", [first, second])):
                started = time.time()
                result = train_adapter(backbone, encoded[0], clips[0].caption, method.spec(), method.kind,
                                       steps=args.steps, seed=seed, options=method.train_options(),
                                       more_references=[(encoded[1], second.caption)] if len(clips) > 1 else ())
                seconds[label].append(time.time() - started)
                adapters[label] = ([AdapterUse(result.adapter)], clips)
            for noise_name in NOISES:
                noise = (make_noise(inverted, noise_name, seed) if noise_name == "direct" else
                         make_noise(VideoLatents(inverted.samples, backbone.fingerprint, noise=True), "random", seed))
                for label, (uses, clips) in adapters.items():
                    frames = sample(noise, target, uses)
                    scored = evaluate.score_transfer(first, frames, shape, colour)
                    seen = tracker.track(frames)
                    leaked = any(seen.colour == c.colour or seen.shape == c.shape for c in clips)
                    scores[f"{label} · {noise_name}"].append({
                        "fidelity": scored.fidelity, "colour": scored.target_colour, "shape": scored.target_shape,
                        "leaked": leaked, "pull": colour_pull(seen, colour, clips), "key": (index, seed)})
                    print(f"{label} · {noise_name}: reference {index}, seed {seed}: fidelity {scored.fidelity:+.2f}, "
                          f"pull {scores[f'{label} · {noise_name}'][-1]['pull']:.2f}", file=sys.stderr, flush=True)
    return scores, seconds


def summary(scores: dict, seconds: dict, args: argparse.Namespace) -> str:
    def difference(values) -> str:
        return mean_and_interval(values, spread=False)

    cell = mean_and_interval

    rows = []
    for label, group in scores.items():
        noise = label.split(" · ")[1]
        baseline = {r["key"]: r["fidelity"] for r in scores[f"no adapter · {noise}"]}
        versus = ("–" if label.startswith("no adapter") else
                  difference([r["fidelity"] - baseline[r["key"]] for r in group]))
        rows.append([label, len(group), cell([r["fidelity"] for r in group]), versus,
                     f"{100 * np.mean([r['colour'] for r in group]):.0f} %",
                     f"{100 * np.mean([r['shape'] for r in group]):.0f} %",
                     f"{100 * np.mean([r['leaked'] for r in group]):.0f} %", cell([r["pull"] for r in group])])
    pairs = []
    for noise in NOISES:
        one = {r["key"]: r for r in scores[f"one clip (A) · {noise}"]}
        two = {r["key"]: r for r in scores[f"two clips (A + B) · {noise}"]}
        fidelity = np.array([two[k]["fidelity"] - one[k]["fidelity"] for k in one])
        pull = [two[k]["pull"] - one[k]["pull"] for k in one]
        pairs.append(f"- {noise}: two clips minus one clip, paired by reference and seed: fidelity "
                     f"{difference(fidelity)} ({int((fidelity >= 0).sum())} of {len(fidelity)} at least as high), "
                     f"colour pull {difference(pull)}.")
    timing = ", ".join(f"{label} {np.mean(values):.0f}" for label, values in seconds.items())
    return (f"Model `{args.model}`; method {args.method} (its objective, timesteps and lr), {args.steps} training "
            f"steps per adapter; {args.references} held-out random paths × {args.seeds} seeds = "
            f"{args.references * args.seeds} transfers per row. Clip A: the reference (\"a <colour> <shape> moving\"); "
            "clip B: the same path by another shape and colour on another background. Target: a third shape and "
            f"colour; sampling {args.sampling_steps} steps at cfg {args.cfg} from fresh noise (`random`) or A's "
            f"inverted noise (`direct`, {args.inversion_steps} inversion steps). Cells: mean ± sd [95 % bootstrap "
            "interval of the mean]; \"− no adapter\": paired difference from the no-adapter clip of the same noise; "
            "leakage: the tracker names a training clip's colour or shape; colour pull: 0 = the target's colour, "
            "1 = a training clip's.\n\n"
            + table(["adapter · noise", "n", "motion fidelity", "− no adapter", "target colour", "target shape",
                     "leakage", "colour pull"], rows)
            + "\n\n" + "\n".join(pairs) + f"\n\nTraining time per adapter (s): {timing}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/toy-animatediff")
    parser.add_argument("--method", choices=list(METHODS), default="motion-inversion")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--references", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--inversion-steps", type=int, default=25)
    parser.add_argument("--sampling-steps", type=int, default=25)
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    scores, seconds = run(args)
    publish(summary(scores, seconds, args), args.write, "toy_multi_clip",
            f"Training on two clips of one motion ({Path(args.model).name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
