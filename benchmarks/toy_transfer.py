"""Motion transfer on the toy model: does training an adapter carry the reference's path over?

    python benchmarks/toy_transfer.py --write

References are held-out toy clips on random smooth paths with speed changes (seeds the model never
trained on, captions that cannot name the path: "a red square moving"). Each is transferred to a
prompt with a *different* shape and colour (``evaluate.target_for``, e.g. "a blue circle moving") and
the generated clip is scored by the tracker (``motion_core.toy.evaluate.score_transfer``):

- motion fidelity: cosine of the reference's and the generated clip's per-frame displacements
  (``tracker.motion_fidelity``; 1 = the same steps, 0 = unrelated, lost objects count 0);
- appearance: the target's colour / shape seen; leakage: the reference's colour or shape seen.

Rows: no training with each initial-noise strategy (``random`` is the no-reference baseline); each
method of ``motion_core.toy.methods`` from fresh random noise (what the adapter alone carries, without
the inverted noise's help), from the blend of inverted and fresh noise (p 0.5) and from the inverted
noise itself (``direct``); the training-free ``flowmotion`` (no adapter: fresh noise, its latent guided
toward the reference in the first sampling steps, ``motion_core.motion_guidance``; one row per
``--guidance`` variant, e.g. ``--guidance "" lr=0.01``); each read against the no-training row of the
same noise, reference and seed (the paired difference, with its 95 % bootstrap interval).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import mean_and_interval, table, write_section  # noqa: E402
from motion_core.motion_guidance import GUIDANCE_DEFAULTS, MotionGuidance  # noqa: E402
from motion_core.backbones.base import ModelOptions, VideoBackbone  # noqa: E402
from motion_core.backbones import load_backbone  # noqa: E402
from motion_core.pipeline import (VideoLatents, decode, encode_reference, generate, invert_reference,  # noqa: E402
                                  make_noise, train_adapter)
from motion_core.toy import evaluate, model, world  # noqa: E402
from motion_core.toy.methods import METHODS, Method  # noqa: E402
from motion_core.toy.train_model import HELD_OUT_SEEDS  # noqa: E402
from motion_core.adapters import ADAPTER_KINDS  # noqa: E402
from motion_core.objectives import ObjectiveSpec  # noqa: E402
from motion_core.sampling import TimestepDistribution  # noqa: E402
from motion_core.train import TrainOptions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NO_TRAINING_NOISE = ("random", "direct", "blend", "low_frequency", "blend_low_frequency", "freeinit")
METHOD_NOISE = ("random", "blend", "direct")
"""The noises every method samples from: fresh, half inverted (p 0.5), inverted."""
TRAINING_FREE = ("flowmotion",)
"""Training-free methods: FlowMotion's latent guidance, from fresh noise as in its paper."""


def guidance_settings(variant: str) -> dict:
    """A ``--guidance`` variant ``name=value,name=value`` (empty: the defaults) as :class:`MotionGuidance`
    fields, typed as their defaults."""
    defaults, settings = GUIDANCE_DEFAULTS, {}
    for pair in filter(None, variant.split(",")):
        name, _, value = pair.partition("=")
        if name not in defaults:
            raise SystemExit(f"--guidance: {name!r} is not a setting; use {', '.join(defaults)}")
        settings[name] = type(defaults[name])(value)
    return settings


def references(count: int, frames: int = model.FRAMES) -> list[world.Clip]:
    """``count`` held-out random-path clips of ``frames`` frames, cycling through shapes and colours."""
    colours = list(world.COLOURS)
    return [world.make_clip(world.SHAPES[k % len(world.SHAPES)], colours[(k * 3) % len(colours)], world.RANDOM,
                            frames, model.WIDTH, model.HEIGHT, seed=HELD_OUT_SEEDS + 1000 + k)
            for k in range(count)]


@dataclass(frozen=True)
class Case:
    """One held-out reference and its transfer target: ``index`` in :func:`references`, the clip, its
    clean latents, and the target's shape, colour and prompt (e.g. "a blue circle moving")."""

    index: int
    clip: world.Clip
    reference: VideoLatents
    shape: str
    colour: str

    @property
    def target(self) -> str:
        return f"a {self.colour} {self.shape} moving"


def cases(backbone: VideoBackbone, count: int) -> Iterator[Case]:
    """The first ``count`` held-out references, encoded by ``backbone``, each with its target."""
    for index, clip in enumerate(references(count, model.clip_frames(backbone.frame_multiple))):
        shape, colour = evaluate.target_for(clip, index)
        yield Case(index, clip, encode_reference(backbone, world.to_image_tensor(clip))[0], shape, colour)


def load_toy_model(path: str) -> VideoBackbone:
    """The model at ``path`` (relative to the repository unless absolute)."""
    return load_backbone(ROOT / path if not Path(path).is_absolute() else path, ModelOptions())


def sampler(backbone: VideoBackbone, steps: int, cfg: float) -> Callable[..., np.ndarray]:
    """``sample(noise, prompt, adapters=())``: decoded frames ``(f, h, w, 3)`` in [0, 1], as numpy."""
    def sample(noise: VideoLatents, prompt: str, adapters=(), guidance: MotionGuidance | None = None) -> np.ndarray:
        return decode(backbone, generate(backbone, noise, prompt, steps=steps, cfg=cfg, adapters=adapters,
                                         guidance=guidance)).numpy()

    return sample


Scores = dict[str, dict[tuple[int, int], evaluate.Transfer]]
"""Row label -> (reference index, seed) -> the scored transfer."""


TRAINING_FIELDS = ("lr", "steps", "timestep_low")
"""``--variants`` fields that change how the adapter is trained, not its objective."""


def parse_fields(text: str) -> dict:
    """``field=value,...`` as a dict, numbers as numbers (also ``toy_memorisation``'s ``--objective-fields``)."""
    return {field: _number_or_text(value) for field, _, value in (item.partition("=") for item in text.split(","))}


def objective_variant(text: str) -> tuple[str, dict, dict]:
    """A ``--variants`` entry ``method:field=value,...`` as (method name, ObjectiveSpec overrides, training
    overrides: any of :data:`TRAINING_FIELDS`)."""
    name, _, settings = text.partition(":")
    if name not in METHODS or not settings:
        raise SystemExit(f"--variants: {text!r} is not METHOD:FIELD=VALUE,...; methods: {', '.join(METHODS)}")
    fields = parse_fields(settings)
    training = {field: fields.pop(field) for field in TRAINING_FIELDS if field in fields}
    return name, fields, training


@dataclass(frozen=True)
class Trained:
    """One row's training: the method, its label, objective, lr, steps and timesteps."""

    method: Method
    label: str
    spec: ObjectiveSpec
    lr: float
    steps: int
    options: TrainOptions


def trained_row(name: str, label: str, steps: int, objective: dict | None = None,
                training: dict | None = None) -> Trained:
    """Method ``name`` at its defaults (the kind's lr, the method's timesteps, ``steps``) with ``objective``
    and ``training`` (:data:`TRAINING_FIELDS`) changes."""
    method, training = METHODS[name], training or {}
    options = method.train_options()
    if "timestep_low" in training:
        options = dataclasses.replace(options, timesteps=TimestepDistribution(training["timestep_low"], 1.0))
    return Trained(method, label, dataclasses.replace(method.spec(), **(objective or {})).validate(),
                   training.get("lr", ADAPTER_KINDS[method.kind].default_lr), training.get("steps", steps),
                   options.validate())


def trained_rows(args: argparse.Namespace) -> list[Trained]:
    """Each ``--methods`` entry at its defaults, then each ``--variants`` entry with its changes."""
    rows = [trained_row(name, name, args.steps) for name in args.methods]
    for variant in args.variants:
        name, objective, training = objective_variant(variant)
        rows.append(trained_row(name, f"{name} ({variant.partition(':')[2]})", args.steps, objective, training))
    return rows


def _number_or_text(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def run(args: argparse.Namespace) -> tuple[Scores, dict[str, float], int]:
    """The scores, mean training seconds per label, and the clip length the model took."""
    backbone = load_toy_model(args.model)
    scores: Scores = defaultdict(dict)
    train_seconds: dict[str, list[float]] = defaultdict(list)
    rows = trained_rows(args)
    generated = sampler(backbone, args.sampling_steps, args.cfg)

    for case in cases(backbone, args.references):
        index, clip, reference, shape, colour, target = (case.index, case.clip, case.reference, case.shape,
                                                         case.colour, case.target)
        inverted = invert_reference(backbone, reference, args.inversion_steps)
        for seed in range(args.seeds):
            for strategy in args.no_training_noise:
                frames = generated(make_noise(inverted, strategy, seed), target)
                scores[f"no training · {strategy}"][index, seed] = evaluate.score_transfer(clip, frames, shape, colour)
            for row in rows:
                started = time.time()
                adapter = train_adapter(backbone, reference, clip.caption, row.spec, row.method.kind,
                                        steps=row.steps, lr=row.lr, seed=seed, options=row.options).adapter
                train_seconds[row.label].append(time.time() - started)
                for strategy in dict.fromkeys((row.method.noise, *METHOD_NOISE)):
                    frames = generated(make_noise(inverted, strategy, seed), target, [(adapter, 1.0)])
                    scores[f"{row.label} · {strategy}"][index, seed] = evaluate.score_transfer(clip, frames, shape,
                                                                                                colour)
            for name in args.training_free:  # FlowMotion: fresh noise, the latent guided toward the reference
                for variant in args.guidance:
                    label = f"{name} ({variant})" if variant else name
                    started = time.time()
                    guidance = MotionGuidance(reference, **{"seed": seed, **guidance_settings(variant)})
                    frames = generated(make_noise(inverted, "random", seed), target, guidance=guidance)
                    train_seconds[label].append(time.time() - started)
                    scores[f"{label} · random"][index, seed] = evaluate.score_transfer(clip, frames, shape, colour)
            print(f"reference {index + 1}/{args.references}, seed {seed + 1}/{args.seeds} done", file=sys.stderr,
                  flush=True)
    return (scores, {name: float(np.mean(seconds)) for name, seconds in train_seconds.items()},
            model.clip_frames(backbone.frame_multiple))


def summarise(scores: Scores) -> list[list]:
    """One row per label: n, fidelity (mean ± sd [95 % interval]), the paired difference from the
    no-training row of the same noise, appearance, leakage, object found."""
    rows = []
    for name, results in scores.items():
        fidelity = np.array([r.fidelity for r in results.values()])
        baseline = scores.get(f"no training · {name.split(' · ')[1]}", {})
        paired = [r.fidelity - baseline[key].fidelity for key, r in results.items() if key in baseline]
        versus = "–" if name.startswith("no training") or not paired else mean_and_interval(paired, spread=False)
        percent = lambda flags: f"{100 * np.mean(flags):.0f} %"  # noqa: E731
        rows.append([name, len(results), mean_and_interval(fidelity), versus, f"{np.median(fidelity):+.2f}",
                     percent([r.target_colour for r in results.values()]),
                     percent([r.target_shape for r in results.values()]),
                     percent([r.leaked for r in results.values()]), percent([r.found for r in results.values()])])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/toy-t2v")
    parser.add_argument("--references", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--variants", nargs="*", default=[], metavar="METHOD:FIELD=VALUE,...",
                        help="a method again with ObjectiveSpec fields or its training (lr, steps, "
                             "timestep_low) changed, one row each, e.g. vmc+sma:x0_estimate=released "
                             "vmc:lr=0.003,steps=600,timestep_low=0.6")
    parser.add_argument("--section", help="with --write: the BENCHMARKS.md section's name (default: by model)")
    parser.add_argument("--training-free", nargs="*", default=list(TRAINING_FREE), choices=list(TRAINING_FREE))
    parser.add_argument("--guidance", nargs="+", default=[""], metavar="NAME=VALUE,...",
                        help="FlowMotion variants, one row each: settings other than the defaults (MotionGuidance "
                             "fields: fraction, adam_steps, lr, latent_weight, difference_weight, regulariser, "
                             "estimate), e.g. \"\" lr=0.01 lr=0.01,estimate=clean; \"\" = the defaults")
    parser.add_argument("--no-training-noise", nargs="*", default=list(NO_TRAINING_NOISE),
                        choices=list(NO_TRAINING_NOISE), help="the no-training rows to make (random: the "
                                                              "baseline of the methods' and flowmotion's rows)")
    parser.add_argument("--steps", type=int, default=300, help="adapter training steps")
    parser.add_argument("--inversion-steps", type=int, default=25)
    parser.add_argument("--sampling-steps", type=int, default=25)
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--write", action="store_true", help="write the table to BENCHMARKS.md")
    args = parser.parse_args(argv)
    scores, seconds, frames = run(args)
    rows = summarise(scores)
    header = ["method · initial noise", "n", "motion fidelity (mean ± sd [95 % interval])",
              "− no training, same noise", "median", "target colour", "target shape", "leakage", "object found"]
    body = (f"{args.references} held-out random-path references × {args.seeds} seeds = "
            f"{args.references * args.seeds} transfers per row; target prompt of another shape and colour "
            "(\"a <colour> <shape> moving\", both unlike the reference's: `evaluate.target_for`); "
            f"model `{args.model}`, {frames} frames × {model.WIDTH}×{model.HEIGHT}; "
            f"adapters trained {args.steps} steps at each kind's default lr and each method's training timesteps "
            "unless the row says otherwise; "
            f"inversion {args.inversion_steps} steps, sampling "
            f"{args.sampling_steps} steps, cfg {args.cfg}; flowmotion: MotionGuidance defaults unless its row "
            "says otherwise. Fidelity: cosine of per-frame displacements "
            "(`tracker.motion_fidelity`; lost or static objects count 0); intervals: percentile bootstrap of the "
            "mean; \"− no training\": the paired difference from the no-training clip of the same noise, "
            "reference and seed.\n\n" + table(header, rows)
            + "\n\nTraining time per adapter (s; flowmotion: its guided sampling, one video): "
            + ", ".join(f"{name} {value:.0f}" for name, value in seconds.items()) + "\n")
    print(body)
    if args.write:
        name = Path(args.model).name
        suffix = "" if name == "toy-t2v" else f"_{name}"
        section = f"toy_transfer{suffix}" + (f"_{args.section}" if args.section else "")
        title = f"Motion transfer on the toy model ({name})" + (f": {args.section}" if args.section else "")
        write_section(section, title, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
