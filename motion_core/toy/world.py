"""Procedural toy clips: one filled shape of a named colour moving on a plain dark background.

A clip is a pure function of ``(shape, colour, motion, frames, width, height, seed)``; the seed
draws the background tint, the object's size and where its path lies, from
``numpy.random.default_rng(seed)``.

Coordinates: x to the right and y down, in pixels; pixel column ``j`` covers ``[j, j + 1)``, so its
centre is at ``j + 0.5`` and the frame centre is ``(width / 2, height / 2)``. An object's *centre*
is the centroid of its area and its *size* is the square root of its area: both can be measured
from pixels without knowing the shape, which is what ``tracker`` does. Shapes are rasterised with
4 x 4 supersampling, so pixels on an edge hold the covered fraction and sub-pixel motion shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError

SHAPES = ("circle", "square", "triangle", "star")
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.15, 0.15),
    "green": (0.15, 0.80, 0.20),
    "blue": (0.20, 0.35, 1.00),
    "yellow": (0.95, 0.90, 0.15),
    "white": (0.95, 0.95, 0.95),
}
BACKGROUNDS: dict[str, tuple[float, float, float]] = {  # dark, so every colour stands out from every tint
    "charcoal": (0.08, 0.08, 0.08),
    "navy": (0.04, 0.05, 0.14),
    "forest": (0.04, 0.11, 0.06),
    "umber": (0.13, 0.08, 0.04),
}
DIRECTIONS: dict[str, tuple[int, int]] = {  # unit steps (dx, dy) with y down
    "left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1),
    "up-left": (-1, -1), "up-right": (1, -1), "down-left": (-1, 1), "down-right": (1, 1),
}
MOTIONS = (*DIRECTIONS, "circle", "zoom in", "zoom out", "bounce")
RANDOM = "random"  # a random smooth path with speed changes; its caption cannot name it
ALL_MOTIONS = (*MOTIONS, RANDOM)
MOTION_PHRASES: dict[str, str] = {
    **{name: f"moving {name.replace('-', ' and ')}" for name in DIRECTIONS},  # "moving up and left"
    "circle": "moving in a circle", "zoom in": "zooming in", "zoom out": "zooming out",
    "bounce": "bouncing", RANDOM: "moving",
}
STAR_INNER_RATIO = 0.45  # inner / outer radius: fat enough that the points survive at 5 px
ZOOM_RANGE = (0.7, 1.4)  # first and last size of "zoom in", as multiples of the clip's base size
BOUNCES = 2
SUPERSAMPLE = 4


@dataclass(frozen=True, eq=False)
class Clip:
    """One toy clip and its ground truth.

    Attributes:
        frames: ``(f, h, w, 3)`` float32 in ``[0, 1]`` - ComfyUI's IMAGE layout (see ``to_image_tensor``).
        caption: e.g. ``"a red circle moving left"``; ``"a red circle moving"`` for a random path.
        shape, colour: names from ``SHAPES`` and ``COLOURS``.
        motion: a name from ``MOTIONS``, or ``"random"``.
        centres: ``(f, 2)`` float, the object's area centroid (x, y) in pixels.
        sizes: ``(f,)`` float, the square root of the object's area in pixels.
        background: the background's RGB in ``[0, 1]``.
    """

    frames: np.ndarray
    caption: str
    shape: str
    colour: str
    motion: str
    centres: np.ndarray
    sizes: np.ndarray
    background: tuple[float, float, float]


def _polygon(radii: Sequence[float], first_angle: float) -> np.ndarray:
    """Vertices ``(n, 2)`` at equal angular steps from ``first_angle`` (radians, y down, clockwise)."""
    angles = first_angle + 2 * np.pi * np.arange(len(radii)) / len(radii)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1) * np.asarray(radii, float)[:, None]


def _with_unit_area(vertices: np.ndarray) -> np.ndarray:
    x, y = vertices.T
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))  # shoelace
    return vertices / np.sqrt(area)


# Unit-area outlines centred on their centroid (regular polygons and stars are, by symmetry).
_OUTLINES = {
    "square": _with_unit_area(_polygon([1.0] * 4, np.pi / 4)),  # corners on the diagonals: axis-aligned
    "triangle": _with_unit_area(_polygon([1.0] * 3, -np.pi / 2)),  # apex up
    "star": _with_unit_area(_polygon([1.0, STAR_INNER_RATIO] * 5, -np.pi / 2)),  # five points, one up
}
_CIRCLE_RADIUS = 1 / np.sqrt(np.pi)


def shape_extent(shape: str) -> tuple[np.ndarray, np.ndarray]:
    """The unit-size shape's bounding box around its centre: ``(lowest (x, y), highest (x, y))``."""
    if shape == "circle":
        return np.full(2, -_CIRCLE_RADIUS), np.full(2, _CIRCLE_RADIUS)
    return _OUTLINES[shape].min(axis=0), _OUTLINES[shape].max(axis=0)


def _inside_polygon(x: np.ndarray, y: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd rule: a point is inside when a ray to its right crosses the outline an odd number of times."""
    inside = np.zeros(np.broadcast(x, y).shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(vertices, np.roll(vertices, -1, axis=0)):
        if y1 == y2:  # a horizontal edge never crosses a horizontal ray
            continue
        spans = (y1 > y) != (y2 > y)
        inside ^= spans & (x < x1 + (y - y1) * (x2 - x1) / (y2 - y1))
    return inside


def coverage(shape: str, centre: Sequence[float], size: float, width: int, height: int) -> np.ndarray:
    """Fraction of each pixel the shape covers: ``(height, width)`` float32 in ``[0, 1]``."""
    offsets = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    xs = ((np.arange(width)[:, None] + offsets).reshape(1, -1) - centre[0]) / size  # unit-shape coordinates
    ys = ((np.arange(height)[:, None] + offsets).reshape(-1, 1) - centre[1]) / size
    if shape == "circle":
        inside = xs**2 + ys**2 <= _CIRCLE_RADIUS**2
    else:
        inside = _inside_polygon(xs, ys, _OUTLINES[shape])
    return inside.reshape(height, SUPERSAMPLE, width, SUPERSAMPLE).mean(axis=(1, 3)).astype(np.float32)


def render(shape: str, colour: Sequence[float], background: Sequence[float], centres: np.ndarray,
           sizes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Frames ``(f, height, width, 3)`` float32 in ``[0, 1]`` of the shape at ``centres (f, 2)``, ``sizes (f,)``."""
    background, colour = np.asarray(background, np.float32), np.asarray(colour, np.float32)
    covered = np.stack([coverage(shape, c, s, width, height) for c, s in zip(centres, sizes)])[..., None]
    return background + covered * (colour - background)  # blend by coverage: edges are partial pixels


def _safe_box(shape: str, size: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest centre ``(x, y)`` that keep the shape inside the frame with a 1 px background gap."""
    lowest, highest = shape_extent(shape)
    lo, hi = 1 - lowest * size, np.array([width, height]) - highest * size - 1
    if np.any(hi - lo < 2):
        raise InputError("width/height", f"a {width}x{height} frame leaves no room for a {shape} to move")
    return lo, hi


def _catmull_rom(points: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The Catmull-Rom spline through ``points (n, 2)`` at parameters ``u (f,)`` in ``[0, n - 1]`` -> ``(f, 2)``."""
    padded = np.concatenate([points[:1], points, points[-1:]])  # repeat the ends so the curve starts/ends on them
    segment = np.minimum(np.floor(u).astype(int), len(points) - 2)
    s = (u - segment)[:, None]
    p0, p1, p2, p3 = (padded[segment + k] for k in range(4))
    return 0.5 * (2 * p1 + (p2 - p0) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s**2 + (3 * p1 - p0 - 3 * p2 + p3) * s**3)


def _random_path(frames: int, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth curve through 4-5 random points, walked at a randomly changing speed -> ``(f, 2)``."""
    points = rng.uniform(lo, hi, size=(int(rng.integers(4, 6)), 2))
    progress = np.concatenate([[0.0], np.cumsum(rng.uniform(0.2, 1.0, frames - 1))])  # random time warp
    centres = _catmull_rom(points, progress / progress[-1] * (len(points) - 1))
    return np.clip(centres, lo, hi)  # the spline can overshoot its points a little


def _path(shape: str, motion: str, frames: int, width: int, height: int, base_size: float,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(f, 2)`` and sizes ``(f,)`` of ``motion``, all inside the frame."""
    t = np.linspace(0.0, 1.0, frames)
    sizes = np.full(frames, base_size)
    if motion in ("zoom in", "zoom out"):
        sizes = base_size * np.geomspace(*ZOOM_RANGE, frames)
        sizes = sizes if motion == "zoom in" else sizes[::-1]
    lo, hi = _safe_box(shape, sizes.max(), width, height)
    span = hi - lo
    if motion in DIRECTIONS:  # constant velocity over 60-90 % of the room along the moving axes
        step = np.array(DIRECTIONS[motion], float)
        travel = rng.uniform(0.6, 0.9) * span[step != 0].min()
        start = rng.uniform(lo + np.where(step < 0, travel, 0), hi - np.where(step > 0, travel, 0))
        return start + np.outer(t, step * travel), sizes
    if motion == "circle":  # one clockwise turn on screen (angle grows with y down) around the frame centre
        centre = np.array([width, height]) / 2
        radius = rng.uniform(0.6, 0.9) * np.min(np.minimum(centre - lo, hi - centre))
        angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(frames) / frames
        return centre + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1), sizes
    if motion in ("zoom in", "zoom out"):
        return np.tile(rng.uniform(lo, hi), (frames, 1)), sizes
    if motion == "bounce":  # |sin| arcs off the floor, x fixed
        x, lift = rng.uniform(lo[0], hi[0]), rng.uniform(0.6, 0.9) * span[1]
        y = hi[1] - lift * np.abs(np.sin(np.pi * BOUNCES * t))
        return np.stack([np.full(frames, x), y], axis=1), sizes
    return _random_path(frames, lo, hi, rng), sizes


def restyled(clip: Clip, shape: str, colour: str, background: str | None = None) -> Clip:
    """``clip``'s motion (the same centres and sizes per frame) shown by another ``shape`` and ``colour``,
    on another ``background`` (a name of ``BACKGROUNDS``; None keeps the clip's): one motion by
    several looks, as multi-clip training wants it."""
    _check_name("shape", shape, SHAPES)
    _check_name("colour", colour, list(COLOURS))
    if background is not None:
        _check_name("background", background, list(BACKGROUNDS))
    tint = tuple(clip.background if background is None else BACKGROUNDS[background])
    frames = render(shape, COLOURS[colour], tint, clip.centres, clip.sizes, clip.frames.shape[2], clip.frames.shape[1])
    return replace(clip, frames=frames, caption=caption(shape, colour, clip.motion), shape=shape, colour=colour,
                   background=tint)


def caption(shape: str, colour: str, motion: str) -> str:
    """``"a red circle moving left"``, ``"a blue square zooming in"``; ``"a red circle moving"`` for a random path."""
    return f"a {colour} {shape} {MOTION_PHRASES[motion]}"


def _check_name(input_name: str, value: str, valid: Sequence[str]) -> None:
    if value not in valid:
        raise InputError(input_name, f"{value!r} is not one of {', '.join(map(repr, valid))}")


def make_clip(shape: str, colour: str, motion: str, frames: int = 16, width: int = 32, height: int = 32,
              seed: int = 0) -> Clip:
    """A ``colour`` ``shape`` doing ``motion`` (a name from ``ALL_MOTIONS``), ``frames`` x ``height`` x ``width``.

    The seed draws the background tint, the base size (22-28 % of the shorter side) and the path's
    placement; the same arguments always give the same clip.
    """
    _check_name("shape", shape, SHAPES)
    _check_name("colour", colour, list(COLOURS))
    _check_name("motion", motion, ALL_MOTIONS)
    if frames < 2 or min(width, height) < 16:
        raise InputError("frames/width/height", f"need at least 2 frames of 16x16, got {frames} of {width}x{height}")
    rng = np.random.default_rng(seed)
    background = list(BACKGROUNDS.values())[int(rng.integers(len(BACKGROUNDS)))]
    base_size = rng.uniform(0.22, 0.28) * min(width, height)
    centres, sizes = _path(shape, motion, frames, width, height, base_size, rng)
    rendered = render(shape, COLOURS[colour], background, centres, sizes, width, height)
    return Clip(rendered, caption(shape, colour, motion), shape, colour, motion, centres, sizes, background)


def random_clip(seed: int, frames: int = 16, width: int = 32, height: int = 32,
                motions: Sequence[str] = ALL_MOTIONS) -> Clip:
    """A clip of a shape, colour and motion (from ``motions``) all drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    shape, colour = SHAPES[int(rng.integers(len(SHAPES)))], list(COLOURS)[int(rng.integers(len(COLOURS)))]
    motion = motions[int(rng.integers(len(motions)))]
    # A fresh seed for the clip itself, so its background and size are not tied to the draws above.
    return make_clip(shape, colour, motion, frames, width, height, seed=int(rng.integers(2**31)))


def to_image_tensor(clip: Clip):
    """The clip's frames as a ComfyUI IMAGE: a float32 ``torch.Tensor`` ``(f, h, w, 3)`` in ``[0, 1]``."""
    import torch  # only here, so the toy world itself needs numpy alone

    return torch.from_numpy(clip.frames.copy())
