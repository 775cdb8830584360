"""Measure a toy clip, reference or generated: where the object is, how big, what colour and shape,
which way it moves, and how closely two clips' motions agree.

Generated clips are blurry and noisy, so every step is robust rather than exact: the background is
the median colour of the border pixels, the object is the largest connected region that stands out
from it by more than half the frame's peak contrast, and its centre and size are moments of a soft
weight (the fraction of the object's contrast each pixel shows), which on clean clips is exactly the
world's anti-aliased coverage. Same coordinates as ``world``: x right, y down, pixel ``j`` centred
at ``j + 0.5``; size is the square root of the area.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import world

MIN_CONTRAST = 0.2  # peak colour distance above the noise floor below which a frame holds no object
MIN_AREA = 3.0  # pixels


@dataclass(frozen=True, eq=False)
class Track:
    """What ``track`` measured.

    Attributes:
        centres: ``(f, 2)`` float, the object's (x, y) in pixels; NaN where not ``found``.
        sizes: ``(f,)`` float, square root of the object's area in pixels; NaN where not ``found``.
        found: ``(f,)`` bool, whether a frame held an object.
        colour: the nearest name in ``world.COLOURS`` to the object's mean colour ("" if never found).
        shape: the name in ``world.SHAPES`` whose outline fits the object best ("" if never found).
        width, height: the frame size in pixels, to compare tracks of different resolutions.
        rgb: the object's mean colour ``(3,)`` in ``[0, 1]`` (None if never found), for distances
            finer than the nearest name.
    """

    centres: np.ndarray
    sizes: np.ndarray
    found: np.ndarray
    colour: str
    shape: str
    width: int
    height: int
    rgb: np.ndarray | None = None


def _neighbourhood(image: np.ndarray, reduce, fill) -> np.ndarray:
    """``reduce`` (np.minimum / np.maximum / np.add) over each pixel's 3 x 3 neighbourhood, ``(h, w)``."""
    padded = np.pad(image, 1, constant_values=fill)
    h, w = image.shape
    out = padded[1:h + 1, 1:w + 1].copy()
    for dy in range(3):
        for dx in range(3):
            out = reduce(out, padded[dy:dy + h, dx:dx + w]) if (dy, dx) != (1, 1) else out
    return out


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected region of a ``(h, w)`` bool mask (all False if the mask is empty)."""
    if not mask.any():
        return mask
    unlabelled = mask.size + 1
    labels = np.where(mask, np.arange(mask.size).reshape(mask.shape), unlabelled)
    while True:  # spread each region's smallest index over it; a few passes for toy-sized objects
        spread = np.where(mask, _neighbourhood(labels, np.minimum, unlabelled), unlabelled)
        if np.array_equal(spread, labels):
            break
        labels = spread
    names, counts = np.unique(labels[mask], return_counts=True)
    return labels == names[np.argmax(counts)]


def _object_weight(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Soft weight ``(h, w)`` in ``[0, 1]`` of the object in one frame ``(h, w, 3)``, and its core (bool), or None."""
    border = np.concatenate([frame[0], frame[-1], frame[1:-1, 0], frame[1:-1, -1]])
    distance = np.linalg.norm(frame - np.median(border, axis=0), axis=-1)
    floor = np.median(np.concatenate([distance[0], distance[-1], distance[1:-1, 0], distance[1:-1, -1]]))
    peak = (_neighbourhood(distance, np.add, 0.0) / 9).max()  # a 3x3 mean, so one noisy pixel is no peak
    if peak - floor < MIN_CONTRAST:
        return None
    region = largest_component(distance > floor + 0.5 * (peak - floor))
    core = _neighbourhood(region, np.minimum, False)  # eroded: pixels the object covers fully
    contrast = np.median(distance[core if core.any() else region])
    if contrast <= floor:
        return None
    support = _neighbourhood(region, np.maximum, False)  # dilated: keep the partly covered edge pixels
    weight = np.clip((distance - floor) / (contrast - floor), 0.0, 1.0) * support
    return (weight, core if core.any() else region) if weight.sum() >= MIN_AREA else None


def _shape_fit(weight: np.ndarray, centre: np.ndarray, size: float) -> np.ndarray:
    """Soft intersection-over-union ``(len(SHAPES),)`` of the weight with each world shape at its centre and size."""
    h, w = weight.shape
    fits = []
    for shape in world.SHAPES:
        template = world.coverage(shape, centre, size, w, h)
        fits.append(np.minimum(weight, template).sum() / np.maximum(weight, template).sum())
    return np.array(fits)


def _nearest_colour(rgb: np.ndarray) -> str:
    names = list(world.COLOURS)
    return names[int(np.argmin([np.linalg.norm(rgb - world.COLOURS[name]) for name in names]))]


def track(frames: np.ndarray, shape_frames: int = 8) -> Track:
    """Measure the object in ``frames (f, h, w, 3)`` in ``[0, 1]`` (numpy, or a CPU tensor such as ComfyUI's IMAGE).

    The shape is the world shape whose outline, placed at the measured centre and size, best
    overlaps the object's weight, averaged over up to ``shape_frames`` evenly spaced found frames.
    Comparing against the world's own outlines rather than a hand-tuned descriptor matters at 32 px:
    the bounding-box fill of a star (~0.43) and of a triangle (0.5) are too close to tell apart.
    """
    frames = np.asarray(frames, dtype=np.float32)
    f, h, w, _ = frames.shape
    centres, sizes, found = np.full((f, 2), np.nan), np.full(f, np.nan), np.zeros(f, bool)
    weights, rgb_sum, rgb_count = {}, np.zeros(3), 0
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    for i, frame in enumerate(frames):
        measured = _object_weight(frame)
        if measured is None:
            continue
        weight, core = measured
        area = weight.sum()
        centres[i] = (weight * xs).sum() / area, (weight * ys).sum() / area
        sizes[i], found[i], weights[i] = np.sqrt(area), True, weight
        rgb_sum, rgb_count = rgb_sum + frame[core].sum(axis=0), rgb_count + core.sum()
    if not found.any():
        return Track(centres, sizes, found, "", "", w, h)
    indices = np.flatnonzero(found)
    chosen = indices[np.unique(np.linspace(0, len(indices) - 1, min(shape_frames, len(indices))).round().astype(int))]
    fits = np.mean([_shape_fit(weights[i], centres[i], sizes[i]) for i in chosen], axis=0)
    rgb = rgb_sum / rgb_count
    return Track(centres, sizes, found, _nearest_colour(rgb), world.SHAPES[int(np.argmax(fits))], w, h, rgb)


def _displacements(track: Track, include_size: bool) -> np.ndarray:
    """Frame-to-frame steps ``(f - 1, 2 or 3)`` as fractions of the frame.

    Columns: dx / width, dy / height and, with ``include_size``, dsize / sqrt(width * height).
    """
    steps = np.diff(track.centres, axis=0) / np.array([track.width, track.height])
    if include_size:
        steps = np.concatenate([steps, np.diff(track.sizes)[:, None] / np.sqrt(track.width * track.height)], axis=1)
    return steps


def motion_fidelity(reference: Track, generated: Track, include_size: bool = False) -> float:
    """How alike two tracks' motions are, in ``[-1, 1]``: 1 same, 0 unrelated, -1 opposite; NaN if undefined.

    The cosine similarity (the Pearson correlation taken about zero rather than about the mean) of
    the concatenated frame-to-frame displacements ``[dx_1 .. dx_{f-1}, dy_1 .. dy_{f-1}]``, each
    divided by the frame's width or height; with ``include_size`` the size steps (divided by
    ``sqrt(width * height)``) are appended, which is the only way zoom motions register at all, since
    a zoom does not move the centroid. Steps where either track lost the object are dropped; the
    tracks must have the same frame count. NaN when either track does not move (a zero vector).

    Invariant to: where the path lies (only steps count), a positive scaling of the whole motion
    (amplitude), and frame resolution (steps are fractions of the frame). Not invariant to: timing
    (a delayed or faster copy scores lower), direction (a mirrored or rotated path scores lower, a
    time-reversed constant-velocity path -1), or a different scaling of x and y.

    Why not the mean-centred Pearson correlation: centring the concatenated vector subtracts the
    average of all dx and dy together, so a constant "up" ``[0.., -v..]`` and a constant "left"
    ``[-v.., 0..]`` would correlate at -1 and "up" with "right" at +1; about zero they score 0.
    """
    if len(reference.found) != len(generated.found):
        raise ValueError(f"tracks of {len(reference.found)} and {len(generated.found)} frames cannot be compared")
    both = reference.found & generated.found
    usable = both[1:] & both[:-1]
    a = _displacements(reference, include_size)[usable].ravel(order="F")  # all dx, then all dy (then ds)
    b = _displacements(generated, include_size)[usable].ravel(order="F")
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return float(np.dot(a, b) / norms) if norms > 0 else float("nan")


def _winding(points: np.ndarray) -> float:
    """Signed angle (radians) the points ``(n, 2)`` sweep around their mean; positive is clockwise on screen."""
    angles = np.arctan2(*(points - points.mean(axis=0)).T[::-1])
    return float(np.sum((np.diff(angles) + np.pi) % (2 * np.pi) - np.pi))


def motion_word(track: Track) -> str:
    """The name of the track's dominant motion: one of ``world.MOTIONS``, or ``"unclear"``.

    Decided in order, on the found frames, with lengths as fractions of the shorter frame side:
    "zoom in"/"zoom out" when the size changes by over 25 % while the centre moves less than the size
    does; a direction of ``world.DIRECTIONS`` (nearest of 8 to the net displacement) when the path is
    straight (net / path length > 0.8) and covers over 10 % of the frame; "circle" when the path
    winds at least 3/4 of a turn around its mean, is not flat and keeps a steady radius (within 25 %);
    "bounce" when it moves mostly vertically and changes vertical direction at least twice. Random
    paths mostly come out "unclear" (53 of 60 seeds; 5 "bounce", 2 "circle").
    """
    centres, sizes = track.centres[track.found], track.sizes[track.found]
    if len(centres) < 3:
        return "unclear"
    scale = min(track.width, track.height)
    steps = np.diff(centres, axis=0)
    net, length = centres[-1] - centres[0], np.linalg.norm(steps, axis=1).sum()
    growth = np.log(sizes[-1] / sizes[0])
    if abs(growth) > np.log(1.25) and np.linalg.norm(net) < abs(sizes[-1] - sizes[0]):
        return "zoom in" if growth > 0 else "zoom out"
    if np.linalg.norm(net) > 0.1 * scale and np.linalg.norm(net) > 0.8 * length:
        directions = {name: np.array(step) / np.linalg.norm(step) for name, step in world.DIRECTIONS.items()}
        return max(directions, key=lambda name: np.dot(directions[name], net))
    spread = np.linalg.eigvalsh(np.cov(centres.T))  # ascending variances along the principal axes
    radii = np.linalg.norm(centres - centres.mean(axis=0), axis=1)
    round_enough = spread[0] > 0.2 * spread[1] and radii.std() < 0.25 * radii.mean()
    if abs(_winding(centres)) > 1.5 * np.pi and round_enough:
        return "circle"
    vertical = steps[:, 1][np.abs(steps[:, 1]) > 0.01 * scale]  # ignore steps too small to have a direction
    turns = np.count_nonzero(np.diff(np.sign(vertical)))
    if np.ptp(centres[:, 1]) > 2 * np.ptp(centres[:, 0]) and np.ptp(centres[:, 1]) > 0.1 * scale and turns >= 2:
        return "bounce"
    return "unclear"
