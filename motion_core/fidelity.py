"""Motion fidelity of a generated clip against its reference, on real footage.

The score is the motion-fidelity score of the DiT-era motion transfer papers, introduced by DMT
(Yatim et al., "Space-Time Diffusion Features for Zero-Shot Text-Driven Motion Transfer", CVPR 2024)
and computed by its released ``motion_fidelity_score.py``: point tracks on both clips; for each
generated track, the best match among the reference tracks of the mean per-step cosine similarity
of their displacement vectors; those best matches averaged (docs/METHODS.md, §10).

Where the pack differs from the released code, and why:

- Tracks come from OpenCV's pyramidal Lucas-Kanade on corners (``goodFeaturesToTrack``), kept only
  if a forward-backward check passes at every step, instead of CoTracker on a 55 x 55 grid (CoTracker
  needs downloaded weights under a non-commercial licence).
- Only tracks that move are scored: a track whose points all stay within :data:`MOVING_PX` of its
  start is dropped, in each clip. A still background then neither dilutes the score nor lets a frozen
  clip match a still background perfectly (DMT offers a foreground mask for the same reason).
- A displacement ``(dx, dy)`` is compared as ``(dx, dy, STILL_PX)``: a step where both tracks stand
  still agrees (1), one standing while the other moves scores about 0. The released code divides by
  the displacement's length (0/0 for a point that does not move).
- The released code subtracts the identity from the similarity matrix (its two grids are the same
  points); our tracks start on each clip's own corners, so there is nothing to subtract.

Both clips are brought to one working size (the reference's aspect ratio, long side
:data:`WORKING_SIDE`; the generated clip scaled to cover it and centre-cropped, as the loader's
``custom_width/height`` do) and to one frame count: the longer clip is resampled to the shorter one's
count at evenly spaced frames, which assumes both clips span the same motion from start to end.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from .errors import InputError
from .video import check_image_frames, plan_resize, to_pixels

WORKING_SIDE = 384
"""Long side, in pixels, of the size both clips are tracked at (so thresholds mean the same for any clip)."""

MAX_TRACKS = 500
"""At most this many corners are tracked per clip (the strongest, at least ``MIN_DISTANCE`` apart)."""

MIN_DISTANCE = 6.0
CORNER_QUALITY = 0.01
"""``goodFeaturesToTrack``'s quality level: corners at least this fraction of the strongest one's score."""

LK_WINDOW = (21, 21)
LK_LEVELS = 4
FORWARD_BACKWARD_PX = 1.0
"""A point tracked one frame forward and back must land within this many pixels of where it started."""

MOVING_PX = WORKING_SIDE / 100
"""A track whose points all stay within this many pixels (1 % of the long side) of its start is still, and
not scored: flicker and compression move a still point's track by up to a few pixels at this size."""

STILL_PX = 0.1
"""Third component of every displacement: steps much shorter than this count as standing still."""

MIN_FRAMES = 2


def _cv2():
    """OpenCV, imported on first use: the rest of the pack loads without it."""
    try:
        import cv2
    except ImportError as err:
        raise ImportError("motion fidelity needs OpenCV: pip install opencv-python-headless "
                          "(listed in the pack's requirements.txt)") from err
    return cv2


@dataclass(frozen=True)
class MotionFidelity:
    """The scores of one comparison, each in [-1, 1] (1: every step in the same direction)."""

    score: float
    """Generated -> reference: for each moving generated track, its best reference track, averaged
    (DMT's released score). 0 when the generated clip has no moving track."""
    reverse: float
    """Reference -> generated: for each moving reference track, its best generated track, averaged."""
    generated_tracks: int
    reference_tracks: int
    """Moving tracks scored in each clip."""
    frames: int
    """Frames compared (the shorter clip's count)."""

    @property
    def symmetric(self) -> float:
        """The mean of both directions: also low when the generated clip leaves part of the reference's
        motion out (which the one-way score cannot see)."""
        return (self.score + self.reverse) / 2

    def text(self) -> str:
        """One line for a node or a terminal."""
        if not self.generated_tracks:
            return f"motion fidelity 0 (nothing moves in the generated clip; {self.frames} frames compared)"
        return (f"motion fidelity {self.score:.3f} (symmetric {self.symmetric:.3f}; moving tracks: generated "
                f"{self.generated_tracks}, reference {self.reference_tracks}; {self.frames} frames)")


def motion_fidelity(reference: torch.Tensor, generated: torch.Tensor, *, reference_name: str = "reference_frames",
                    generated_name: str = "generated_frames") -> MotionFidelity:
    """Score how closely the generated clip's motion follows the reference's (module docstring).

    Args:
        reference, generated: IMAGE frames ``(frames, height, width, 3)`` in [0, 1], at least
            :data:`MIN_FRAMES` each; sizes and frame counts may differ.
        reference_name, generated_name: the input names errors report.

    Raises:
        InputError: naming the input, for frames that are not IMAGE frames, fewer than two frames,
            a first frame with no corner to track, no point followed through every frame, or a
            reference in which nothing moves.
    """
    _check_frames(reference, reference_name)
    _check_frames(generated, generated_name)
    count = min(reference.shape[0], generated.shape[0])
    _, height, width, _ = reference.shape
    scale = WORKING_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    reference_tracks = _moving(track_points(_grey_clip(reference, count, size), reference_name))
    if not len(reference_tracks):
        raise InputError(reference_name, "nothing moves in the reference (no tracked point gets further than 1 % "
                                         "of the picture from where it starts): there is no motion to compare")
    generated_tracks = _moving(track_points(_grey_clip(generated, count, size), generated_name))
    if not len(generated_tracks):
        return MotionFidelity(0.0, 0.0, 0, len(reference_tracks), count)
    similarity = track_similarity(generated_tracks, reference_tracks)
    return MotionFidelity(float(similarity.max(axis=1).mean()), float(similarity.max(axis=0).mean()),
                          len(generated_tracks), len(reference_tracks), count)


def _check_frames(frames: object, name: str) -> None:
    check_image_frames(frames, name)
    if frames.shape[0] < MIN_FRAMES:
        raise InputError(name, f"{frames.shape[0]} frame(s): motion needs at least {MIN_FRAMES}; connect a clip, "
                               "not a single image")


def _grey_clip(frames: torch.Tensor, count: int, size: tuple[int, int]) -> np.ndarray:
    """``count`` evenly spaced frames as uint8 grey ``(count, height, width)`` at ``size`` = (width, height),
    scaled to cover it and centre-cropped."""
    cv2 = _cv2()
    indices = np.rint(np.linspace(0, frames.shape[0] - 1, count)).astype(int)
    (scaled_w, scaled_h), (left, top, width, height) = plan_resize(frames.shape[2], frames.shape[1], *size)
    shrinking = scaled_w < frames.shape[2]
    out = np.empty((count, height, width), dtype=np.uint8)
    for slot, index in enumerate(indices):
        rgb = to_pixels(frames[index])
        grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (scaled_w, scaled_h),
                          interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        out[slot] = grey[top : top + height, left : left + width]
    return out


def track_points(grey: np.ndarray, input_name: str = "frames") -> np.ndarray:
    """Corners of the first frame followed through every frame by pyramidal Lucas-Kanade.

    Args:
        grey: uint8 frames ``(frames, height, width)``.

    Returns:
        ``(tracks, frames, 2)`` float32 ``(x, y)`` pixel positions of the points that passed the
        forward-backward check at every step and never left the picture.

    Raises:
        InputError: naming ``input_name`` when the first frame has no corner or no point survives.
    """
    cv2 = _cv2()
    corners = cv2.goodFeaturesToTrack(grey[0], maxCorners=MAX_TRACKS, qualityLevel=CORNER_QUALITY,
                                      minDistance=MIN_DISTANCE, blockSize=7)
    if corners is None:
        raise InputError(input_name, "no trackable features (corners) in the first frame: it is flat or blank, "
                                     "and motion can only be measured on visible detail")
    points = corners.reshape(-1, 1, 2).astype(np.float32)
    alive = np.ones(len(points), dtype=bool)
    path = [points]
    lk = {"winSize": LK_WINDOW, "maxLevel": LK_LEVELS,
          "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)}
    height, width = grey.shape[1:]
    for before, after in itertools.pairwise(grey):
        ahead, found, _ = cv2.calcOpticalFlowPyrLK(before, after, points, None, **lk)
        back, found_back, _ = cv2.calcOpticalFlowPyrLK(after, before, ahead, None, **lk)
        inside = ((ahead[:, 0, 0] >= 0) & (ahead[:, 0, 0] <= width - 1)
                  & (ahead[:, 0, 1] >= 0) & (ahead[:, 0, 1] <= height - 1))
        alive &= (found[:, 0] == 1) & (found_back[:, 0] == 1) & inside
        alive &= np.linalg.norm((back - points)[:, 0], axis=-1) < FORWARD_BACKWARD_PX
        path.append(ahead)
        points = ahead
    if not alive.any():
        raise InputError(input_name, f"no point could be followed through all {len(grey)} frames (of "
                                     f"{len(corners)} corners): the frames may not be one continuous shot")
    return np.concatenate(path, axis=1)[alive]


def _moving(tracks: np.ndarray) -> np.ndarray:
    """The tracks that get further than :data:`MOVING_PX` from where they start."""
    reach = np.linalg.norm(tracks - tracks[:, :1], axis=-1).max(axis=1)
    return tracks[reach > MOVING_PX]


def track_similarity(tracks: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``(n, m)``: the mean over steps of the cosine between the displacements of each pair of tracks.

    Args:
        tracks, others: ``(n, frames, 2)`` and ``(m, frames, 2)`` positions over the same frames.
    """
    first, second = _unit_steps(tracks), _unit_steps(others)
    steps = first.shape[1]
    # sum over steps and coordinates at once: one matrix product, no (n, m, steps) intermediate
    return first.reshape(len(first), -1) @ second.reshape(len(second), -1).T / steps


def _unit_steps(tracks: np.ndarray) -> np.ndarray:
    steps = np.diff(tracks.astype(np.float64), axis=1)
    steps = np.concatenate([steps, np.full((*steps.shape[:2], 1), STILL_PX)], axis=-1)
    return steps / np.linalg.norm(steps, axis=-1, keepdims=True)
