"""Edit-Your-Motion on the toy world: does the edited clip keep the source's look and follow the reference's
path, and what does each part of the method add?

    python benchmarks/toy_edit.py --pairs 4 --subject-steps 150 --full-steps 150 --write

Each pair: a held-out source clip (a shape of a colour on a background, moving one way) and a reference
clip (another shape, colour and motion). Both get their toy skeletons (:mod:`motion_core.toy.skeleton`);
the reference skeleton is aligned onto the source's at frame 0 (Align Pose's skeleton offset, torso
measure), so the *target* is the source's object on the source's background following the reference's
path from where the source's object starts, at its size — which the toy world can render exactly, so
every edit is scored against the ideal edit:

- colour / shape kept: the tracker sees the source's colour / shape;
- fidelity to the target path and to the source path (:func:`tracker.motion_fidelity`: 1 same motion,
  0 unrelated); a working edit is high on the first and low on the second;
- centre error: the tracked object's distance from the target's centre, pixels (frames 32 px wide);
- PSNR to the ideal edit (dB, whole frames: background kept counts).

Rows (the same pairs and seeds): the pose ControlNet alone, untrained (DDIM-inverted source, then
sampled under the target poses; RCA with the base model's projections, Motion Attention as the
identity); Edit-Your-Motion (two stages, masked subject in stage 1); the ablations: without RCA,
one stage instead of two (the same total steps, full frames), without the Motion Attention module;
and the two stages at another learning rate.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import mean_and_interval, publish, table  # noqa: E402
from benchmarks.toy_transfer import load_toy_model  # noqa: E402
from motion_core.edit import align_reference  # noqa: E402
from motion_core.edit.adapter import EditAdapter  # noqa: E402
from motion_core.edit.controlnet import load_controlnet  # noqa: E402
from motion_core.edit.pipeline import EditTraining, edit_video, subject_frames, train_edit  # noqa: E402
from motion_core.pipeline import VideoLatents, decode, encode_reference  # noqa: E402
from motion_core.toy import model, skeleton, tracker, world  # noqa: E402
from motion_core.toy.train_model import HELD_OUT_SEEDS  # noqa: E402

VARIANTS = {
    "pose ControlNet alone (untrained)": None,
    "Edit-Your-Motion (two stages)": {},
    "without RCA": {"rca": False},
    "one stage": {"one_stage": True},
    "without Motion Attention": {"motion_attention": False},
    "two stages at lr 1e-4": {"lr": 1e-4},
}
MOTIONS = ("left", "right", "up", "down", "circle", "bounce")
PROMPTS = {"caption": lambda clip: clip.caption, "motion only": lambda clip: world.MOTION_PHRASES[world.RANDOM],
           "empty": lambda clip: ""}
PROMPT_WORDS = {"caption": "the source's caption, e.g. \"a red star moving left\"", "motion only": "\"moving\"",
                "empty": "\"\""}
"""The prompt of training, inversion and sampling: the source's caption (names its colour and shape), the
bare "moving" or nothing — then only the clip itself (inversion, training) can keep its look."""
MARGIN = 1.0
"""Pixels the target object must keep from the frame's edge in every frame (pairs whose aligned path
would leave the frame are skipped: the ideal edit would not show the object)."""


def pairs(count: int) -> list[tuple[world.Clip, world.Clip]]:
    """``count`` (source, reference) pairs of held-out clips whose aligned path stays inside the frame."""
    found, k = [], 0
    while len(found) < count:
        rng = np.random.default_rng(HELD_OUT_SEEDS + 5000 + k)
        k += 1
        first, second = rng.choice(len(MOTIONS), 2, replace=False)
        shapes, colours = rng.choice(world.SHAPES, 2, replace=False), rng.choice(list(world.COLOURS), 2, replace=False)
        source = world.make_clip(shapes[0], colours[0], MOTIONS[first], model.FRAMES, model.WIDTH, model.HEIGHT,
                                 seed=int(rng.integers(2**31)))
        reference = world.make_clip(shapes[1], colours[1], MOTIONS[second], model.FRAMES, model.WIDTH, model.HEIGHT,
                                    seed=int(rng.integers(2**31)))
        centres, sizes = target_path(source, reference)
        half = sizes[:, None] / 2 + MARGIN
        if ((centres - half) >= 0).all() and ((centres + half) <= [model.WIDTH, model.HEIGHT]).all():
            found.append((source, reference))
    return found


def target_path(source: world.Clip, reference: world.Clip) -> tuple[np.ndarray, np.ndarray]:
    """The reference's centres ``(f, 2)`` and sizes ``(f,)`` moved onto the source by the skeleton offset."""
    _, similarity = align_reference(skeleton.clip_skeleton(source), skeleton.clip_skeleton(reference))
    centres = similarity.apply(torch.from_numpy(reference.centres).double()).numpy()
    return centres, reference.sizes * similarity.scale


def ideal_edit(source: world.Clip, reference: world.Clip) -> world.Clip:
    centres, sizes = target_path(source, reference)
    frames = world.render(source.shape, world.COLOURS[source.colour], source.background, centres, sizes,
                          model.WIDTH, model.HEIGHT)
    return world.Clip(frames, source.caption, source.shape, source.colour, reference.motion, centres, sizes,
                      source.background)


def subject_mask(clip: world.Clip) -> torch.Tensor:
    """MASK ``(f, h, w)``: 1 wherever the object covers any of a pixel."""
    return torch.from_numpy(np.stack([world.coverage(clip.shape, c, s, model.WIDTH, model.HEIGHT) > 0
                                      for c, s in zip(clip.centres, clip.sizes)]).astype(np.float32))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-10)))


def score(edited: np.ndarray, source: world.Clip, ideal: world.Clip) -> dict:
    seen, wanted, before = tracker.track(edited), tracker.track(ideal.frames), tracker.track(source.frames)
    found = seen.found
    error = np.linalg.norm(seen.centres[found] - ideal.centres[found], axis=1).mean() if found.any() else np.nan
    fidelity = tracker.motion_fidelity(wanted, seen)
    to_source = tracker.motion_fidelity(before, seen)
    return {"colour": seen.colour == source.colour, "shape": seen.shape == source.shape,
            "target": 0.0 if np.isnan(fidelity) else fidelity, "source": 0.0 if np.isnan(to_source) else to_source,
            "error": float(error), "psnr": psnr(edited, ideal.frames)}


def run(args: argparse.Namespace) -> tuple[dict, dict]:
    backbone = load_toy_model(args.model)
    controlnet = load_controlnet(Path(args.controlnet) / "toy_pose_controlnet.safetensors",
                                 unet_config=dict(backbone.denoiser_module.config))
    scores: dict[str, list[dict]] = defaultdict(list)
    seconds: dict[str, list[float]] = defaultdict(list)
    for index, (source, reference) in enumerate(pairs(args.pairs)):
        ideal = ideal_edit(source, reference)
        frames = world.to_image_tensor(source)
        latents = encode_reference(backbone, frames)[0]
        subject = VideoLatents(backbone.encode_video(subject_frames(frames, subject_mask(source))),
                               backbone.fingerprint)
        source_images, target_images = skeleton.pose_images(source), skeleton.pose_images(ideal)
        prompt = PROMPTS[args.prompt](source)
        for seed in range(args.seeds):
            for label, variant in VARIANTS.items():
                if label not in args.variants:
                    continue
                started = time.time()
                if variant is None:
                    adapter = EditAdapter.for_unet(backbone.denoiser_module, backbone.fingerprint, seed=seed,
                                                   controlnet=controlnet)
                else:
                    options = {k: v for k, v in variant.items() if k not in ("one_stage", "lr")}
                    steps = ((0, args.subject_steps + args.full_steps) if variant.get("one_stage") else
                             (args.subject_steps, args.full_steps))
                    settings = EditTraining(*steps, lr=variant.get("lr", args.lr), seed=seed)
                    adapter = train_edit(backbone, controlnet, latents, source_images, prompt, subject, settings,
                                         options).adapter
                edited = edit_video(backbone, adapter, controlnet, latents, source_images, target_images, prompt,
                                    steps=args.sampling_steps, cfg=args.cfg)
                seconds[label].append(time.time() - started)
                result = {**score(decode(backbone, edited).numpy(), source, ideal), "key": (index, seed)}
                scores[label].append(result)
                print(f"{label}: pair {index} ({source.caption} / {reference.motion}), seed {seed}: "
                      f"target {result['target']:+.2f}, source {result['source']:+.2f}, error {result['error']:.1f} "
                      f"px, colour {result['colour']}, shape {result['shape']}, psnr {result['psnr']:.1f} "
                      f"({seconds[label][-1]:.0f} s)", file=sys.stderr, flush=True)
    return scores, seconds


def summary(scores: dict, seconds: dict, args: argparse.Namespace) -> str:
    baseline_label = next(iter(VARIANTS))
    baseline = {r["key"]: r["psnr"] for r in scores.get(baseline_label, [])}
    rows = []
    for label, group in scores.items():
        paired = [r["psnr"] - baseline[r["key"]] for r in group if r["key"] in baseline]
        versus = "–" if label == baseline_label or not paired else mean_and_interval(paired, spread=False)
        rows.append([label, len(group), f"{100 * np.mean([r['colour'] for r in group]):.0f} %",
                     f"{100 * np.mean([r['shape'] for r in group]):.0f} %",
                     mean_and_interval([r["target"] for r in group]), mean_and_interval([r["source"] for r in group]),
                     f"{np.nanmean([r['error'] for r in group]):.1f}", f"{np.mean([r['psnr'] for r in group]):.1f}",
                     versus, f"{np.mean(seconds[label]):.0f}"])
    return (f"Model `{args.model}` with the toy pose ControlNet `{args.controlnet}`; {args.pairs} held-out "
            f"(source, reference) pairs × {args.seeds} seeds = {args.pairs * args.seeds} edits per row; training "
            f"{args.subject_steps} + {args.full_steps} steps at lr {args.lr} (one stage: "
            f"{args.subject_steps + args.full_steps} on full frames); DDIM inversion and sampling "
            f"{args.sampling_steps} steps, cfg {args.cfg}; prompt: {args.prompt} ({PROMPT_WORDS[args.prompt]}). Target = the source's object and "
            "background on the reference's path aligned by the skeleton offset (rendered exactly: the ideal edit). "
            "Fidelity cells: mean ± sd [95 % bootstrap interval of the mean]; \"PSNR − untrained\": the paired "
            "difference from the untrained row's edit of the same pair and seed, mean [95 % interval].\n\n"
            + table(["variant", "n", "colour kept", "shape kept", "fidelity to target path",
                     "fidelity to source path", "centre error (px)", "PSNR to ideal (dB)",
                     "PSNR − untrained (paired)", "s per edit"], rows)
            + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/toy-animatediff")
    parser.add_argument("--controlnet", default="models/toy-pose-controlnet")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--subject-steps", type=int, default=150)
    parser.add_argument("--full-steps", type=int, default=150)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--sampling-steps", type=int, default=25)
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--prompt", choices=list(PROMPTS), default="caption")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    scores, seconds = run(args)
    name = "toy_edit" if args.prompt == "empty" else f"toy_edit_{args.prompt.replace(' ', '_')}"
    publish(summary(scores, seconds, args), args.write, name, f"Edit-Your-Motion on the toy world ({args.prompt} prompt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
