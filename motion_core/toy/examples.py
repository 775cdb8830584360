"""The bundled reference clips of the toy world: a shape wandering on a random path.

    python -m motion_core.toy.examples assets/toy

(re)creates ``<name>.mp4`` and ``<name>.json`` (caption and ground truth) for every clip of
:data:`EXAMPLES`. The clips are drawn from seeds at or above ``train_model.HELD_OUT_SEEDS``, so the
toy model never saw them in training, and on random paths, whose caption ("a red square moving")
cannot describe the motion: only the clip itself can.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch

from ..errors import InputError
from ..files import write_new_file
from ..video import write_video
from . import model, world
from .train_model import HELD_OUT_SEEDS

EXAMPLES: dict[str, tuple[str, str, int]] = {
    "red_square_wander": ("square", "red", HELD_OUT_SEEDS + 1),
    "green_star_wander": ("star", "green", HELD_OUT_SEEDS + 2),
    "yellow_circle_wander": ("circle", "yellow", HELD_OUT_SEEDS + 3),
}
"""Name -> (shape, colour, seed) of each bundled clip; the first is the demo's default."""
TWINS: dict[str, tuple[str, str, str, str]] = {
    "blue_triangle_twin": ("red_square_wander", "triangle", "blue", "navy"),
}
"""Name -> (example, shape, colour, background): that example's motion in another look, for training one
motion on several clips (Add Training Clip)."""
LONGER: dict[str, tuple[str, int]] = {
    "red_square_nine": ("red_square_wander", 9),
}
"""Name -> (example, frames): that example's shape, colour and seed drawn with another frame count (its own
path), for models that take another clip length: the toy Wan model takes Wan's 1 + 4k frames."""
ALL_NAMES = [*EXAMPLES, *TWINS, *LONGER]
FPS = 8
FOLDER = Path(__file__).resolve().parents[2] / "assets" / "toy"
"""Where the repository keeps them."""


def example_clip(name: str, input_name: str = "clip") -> world.Clip:
    """The bundled clip ``name``: ``model.FRAMES`` frames (a :data:`LONGER` one: its own count) of
    ``model.WIDTH`` x ``model.HEIGHT``."""
    if name in LONGER:
        source, frames = LONGER[name]
        shape, colour, seed = EXAMPLES[source]
        return world.make_clip(shape, colour, world.RANDOM, frames, model.WIDTH, model.HEIGHT, seed)
    if name in TWINS:
        source, shape, colour, background = TWINS[name]
        return world.restyled(example_clip(source, input_name), shape, colour, background)
    if name not in EXAMPLES:
        raise InputError(input_name, f"{name!r} is not a bundled example; choose one of "
                                     f"{', '.join(ALL_NAMES)}")
    shape, colour, seed = EXAMPLES[name]
    return world.make_clip(shape, colour, world.RANDOM, model.FRAMES, model.WIDTH, model.HEIGHT, seed)


def ground_truth(name: str, clip: world.Clip) -> dict:
    """What the ``.json`` next to a clip holds: how it was made, its caption and its path per frame."""
    source = TWINS[name][0] if name in TWINS else LONGER[name][0] if name in LONGER else name
    made = {"twin_of": source} if name in TWINS else {"longer_of": source} if name in LONGER else {}
    frames, height, width, _ = clip.frames.shape
    return {"name": name, "caption": clip.caption, "shape": clip.shape, "colour": clip.colour, "motion": clip.motion,
            "seed": EXAMPLES[source][2], **made, "frames": frames, "width": width, "height": height, "fps": FPS,
            "centres": clip.centres.tolist(), "sizes": clip.sizes.tolist()}


def to_json(data: dict) -> str:
    """``data`` as indented JSON with each innermost list on one line (a centre per line, not a number)."""
    text = json.dumps(data, indent=1)
    return re.sub(r"\[\s+([^\[\]]*?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text) + "\n"


def example_files(folder: str | Path) -> list[Path]:
    """The files :func:`write_examples` writes into ``folder``."""
    return [Path(folder) / f"{name}{suffix}" for name in ALL_NAMES for suffix in (".mp4", ".json")]


def write_examples(folder: str | Path) -> list[Path]:
    """Write ``<name>.mp4`` (at :data:`FPS`) and ``<name>.json`` for every example into ``folder``.

    Refuses (InputError naming ``folder``) before writing anything if any of the files exists, so
    a folder never holds a mix of old and new examples.
    """
    existing = [path.name for path in example_files(folder) if path.exists()]
    if existing:
        raise InputError("folder", f"{', '.join(existing)} already exist in {str(folder)!r}; delete them first "
                                   "to recreate the examples (files are never overwritten)")
    written = []
    for name in ALL_NAMES:
        clip = example_clip(name)
        written.append(write_video(torch.from_numpy(clip.frames), Path(folder) / f"{name}.mp4", FPS, "folder"))
        text = to_json(ground_truth(name, clip))
        written.append(write_new_file(Path(folder) / f"{name}.json", lambda path: path.write_text(text), "folder"))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m motion_core.toy.examples", description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", default=str(FOLDER),
                        help="where to write the clips (default: the repository's assets/toy)")
    args = parser.parse_args(argv)
    try:
        written = write_examples(args.folder)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
