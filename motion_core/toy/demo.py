"""Transfer the motion of a toy clip to a new prompt with the toy model, and show how well it went.

    python -m motion_core.toy.demo                                  # red square -> blue circle, MotionDirector
    python -m motion_core.toy.demo --clip green_star_wander --target "a white triangle moving" --method vmc
    python -m motion_core.toy.demo --clip my_clip.mp4 --prompt "a ball moving"

Trains a motion adapter on the reference clip (a bundled example or any video file, loaded as
``model.FRAMES`` frames fitted to ``model.WIDTH`` x ``model.HEIGHT``), inverts it, generates the
target and writes into ``--out`` (numbered names: nothing is overwritten) the video as MP4, an 8x
enlarged GIF to look at, and a PNG comparing both clips with their tracked paths. Then prints what
the tracker measured: the motion fidelity (1 = the same motion) and whether the generated object
has the target's colour and shape, beside the fidelity of the same noise sampled without the
adapter (what the adapter itself adds). The defaults are what the toy transfer benchmark ranks
best (BENCHMARKS.md, 12 transfers per row): the toy AnimateDiff model, sampled from the inverted
noise of the base model, with MotionDirector (0.69, +0.41 [+0.29, +0.54] over no adapter), tied with
Motion Inversion (0.70, +0.42 [+0.22, +0.61]) and the steadier of the two. Exit codes: 0 done, 2 bad input
(the message names the option), 130 cancelled.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..errors import InputError
from . import model, tracker, world
from .examples import EXAMPLES, FPS, example_clip
from .methods import METHODS

REPOSITORY = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPOSITORY / "models" / "toy-animatediff"
FILE_PROMPT = "a shape moving"
"""The training prompt of a clip from a file, whose content the demo cannot know."""
GIF_SCALE = 8  # 32 px frames are too small to see; nearest neighbour keeps the pixels honest


def build_parser() -> argparse.ArgumentParser:
    from ..noise import STRATEGIES

    parser = argparse.ArgumentParser(prog="python -m motion_core.toy.demo", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="methods:\n" + "\n".join(f"  {m.name:17} {m.description}"
                                                                     for m in METHODS.values()))
    parser.add_argument("--clip", default=next(iter(EXAMPLES)),
                        help=f"a bundled example ({', '.join(EXAMPLES)}) or a video file (default: %(default)s)")
    parser.add_argument("--prompt", help="the reference's caption (default: a bundled clip's own caption, "
                                         f"{FILE_PROMPT!r} for a file)")
    parser.add_argument("--target", default="a blue circle moving", help="the new video (default: %(default)r)")
    parser.add_argument("--method", choices=list(METHODS), default="motiondirector", help="default: %(default)s")
    parser.add_argument("--noise", choices=sorted(STRATEGIES), default="direct",
                        help="initial noise strategy (default: %(default)s, the inverted clip: on the toy "
                             "AnimateDiff model the best for every method)")
    parser.add_argument("--steps", type=int, default=300, help="training steps (default: %(default)s)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the adapter kind's)")
    parser.add_argument("--seed", type=int, default=0, help="training and noise seed (default: %(default)s)")
    parser.add_argument("--inversion-steps", type=int, default=25)
    parser.add_argument("--sampling-steps", type=int, default=25)
    parser.add_argument("--cfg", type=float, default=7.5, help="guidance scale (default: %(default)s)")
    parser.add_argument("--model", default=str(DEFAULT_MODEL),
                        help="the toy model folder (default: models/toy-animatediff; models/toy-t2v is the UNet3D one)")
    parser.add_argument("--out", default="demo_output", help="folder for the results (default: %(default)s)")
    return parser


@dataclass(frozen=True)
class Reference:
    """The clip to learn from: frames ``(f, h, w, 3)`` float32 in [0, 1], its frame rate and caption."""

    frames: torch.Tensor
    fps: float
    caption: str


def load_reference(clip: str, prompt: str | None) -> Reference:
    """A bundled example by name, or the first ``model.FRAMES`` frames of a video file."""
    from ..video import FrameSelection, load_video

    if clip in EXAMPLES:
        made = example_clip(clip, "--clip")
        return Reference(world.to_image_tensor(made), FPS, made.caption if prompt is None else prompt)
    if not Path(clip).is_file():
        raise InputError("--clip", f"{clip!r} is neither a bundled example ({', '.join(EXAMPLES)}) nor a file")
    loaded = load_video(clip, FrameSelection(frame_load_cap=model.FRAMES), input_name="--clip")
    return Reference(loaded.frames, loaded.fps, FILE_PROMPT if prompt is None else prompt)


def target_words(prompt: str) -> tuple[str | None, str | None]:
    """The world colour and shape a prompt names, None where it names none.

    ``"a blue circle moving"`` -> ``("blue", "circle")``; ``"a tank"`` -> ``(None, None)``.
    """
    words = prompt.lower().replace(",", " ").split()
    colour = next((word for word in words if word in world.COLOURS), None)
    shape = next((word for word in words if word in world.SHAPES), None)
    return colour, shape


def enlarge(frames: torch.Tensor, factor: int) -> torch.Tensor:
    """Frames ``(f, h, w, 3)`` -> ``(f, h·factor, w·factor, 3)``, each pixel a ``factor`` x ``factor`` block."""
    return frames.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)


def fidelity_text(reference: tracker.Track, generated: tracker.Track) -> str:
    fidelity = tracker.motion_fidelity(reference, generated)
    return "n/a (no moving object tracked)" if math.isnan(fidelity) else f"{fidelity:+.3f}"


def summary(reference: tracker.Track, generated: tracker.Track, target: str,
            without_adapter: tracker.Track | None = None) -> str:
    """One line: motion fidelity (and that of the same noise sampled without the adapter: what the
    adapter itself adds), and the generated object's colour and shape against the target's words."""
    parts = [f"motion fidelity {fidelity_text(reference, generated)}" + (
        "" if without_adapter is None else
        f" (the same noise without the adapter: {fidelity_text(reference, without_adapter)})")]
    for what, wanted, got in zip(("colour", "shape"), target_words(target), (generated.colour, generated.shape)):
        verdict = "" if wanted is None else (" (as the target)" if got == wanted else f" (target: {wanted})")
        parts.append(f"{what} {got or 'none found'}{verdict}")
    return ", ".join(parts)


def check_steps(args: argparse.Namespace) -> None:
    """Refuse step counts below 1 by their flag, before minutes of loading and training."""
    for flag in ("steps", "inversion_steps", "sampling_steps"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag.replace('_', '-')}", f"{getattr(args, flag)} is not valid; use at least 1")


@dataclass
class DemoResult:
    files: list[Path]
    summary: str


def run(args: argparse.Namespace) -> DemoResult:
    """The demo for parsed arguments (see :func:`build_parser`)."""
    from ..backbones import load_backbone
    from ..backbones.base import ModelOptions
    from ..cli import Bars, slug
    from ..files import write_numbered_file
    from ..pipeline import TransferSettings, transfer
    from ..video import write_video
    from .report import side_by_side

    method = METHODS[args.method]
    check_steps(args)
    reference = load_reference(args.clip, args.prompt)  # a bad --clip is refused before the model loads
    if not Path(args.model).is_dir():
        raise InputError("--model", f"{args.model!r} is not a folder; train the toy model first with "
                                    f"python -m motion_core.toy.train_model --out {args.model}")
    backbone = load_backbone(args.model, ModelOptions(), input_name="--model")
    # The toy model only knows clips of its training size; any file is fitted to it (cover + crop).
    print(f"reference: {args.clip} ({len(reference.frames)} frames), prompt {reference.caption!r}; "
          f"target {args.target!r}; method {method.name}", file=sys.stderr)

    videos, bars = [], Bars()
    settings = TransferSettings(
        width=model.WIDTH, height=model.HEIGHT, objective=method.spec(), kind=method.kind, steps=args.steps,
        lr=args.lr, seed=args.seed, train_options=method.train_options(), inversion_steps=args.inversion_steps,
        noise=args.noise, noise_seeds=(args.seed,), sampling_steps=args.sampling_steps, cfg=args.cfg,
        invert_with_adapter=False)  # as the toy transfer benchmark, whose best settings these are
    result = transfer(backbone, reference.frames, reference.caption, [args.target], settings, stage=bars,
                      on_train_step=lambda step, steps, terms: bars.note(f"loss {terms['total']:.4f}"),
                      on_video=lambda target, seed, frames: videos.append(frames), input_name="--clip")
    # The same noise strategy and seed at adapter strength 0: what the noise alone does
    transfer(backbone, reference.frames, reference.caption, [args.target], replace(settings, strength=0.0),
             adapter=result.adapter, stage=bars, on_video=lambda target, seed, frames: videos.append(frames),
             input_name="--clip")
    fitted, frames = result.reference, videos[0]

    reference_track, generated_track = tracker.track(fitted.numpy()), tracker.track(frames.numpy())
    without_adapter = tracker.track(videos[1].numpy())
    picture = side_by_side(fitted.numpy(), frames.numpy(), reference_track, generated_track)
    name = slug(args.target)
    files = [
        write_numbered_file(args.out, name, ".mp4", lambda path: write_video(frames, path, reference.fps), "--out"),
        write_numbered_file(args.out, name, ".gif",
                            lambda path: write_video(enlarge(frames, GIF_SCALE), path, reference.fps), "--out"),
        # report.save_png writes to a fixed name; here the numbered writer supplies the name.
        write_numbered_file(args.out, f"{name}_comparison", ".png",
                            lambda path: picture.save(path, format="PNG"), "--out"),
    ]
    return DemoResult(files, summary(reference_track, generated_track, args.target, without_adapter))


def main(argv: list[str] | None = None) -> int:
    from ..cli import run_command

    args = build_parser().parse_args(argv)

    def work() -> list[str]:
        result = run(args)
        return [*(f"wrote {path}" for path in result.files), result.summary]

    return run_command(work)


if __name__ == "__main__":
    raise SystemExit(main())
