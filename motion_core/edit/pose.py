"""Body poses from ComfyUI's ``POSE_KEYPOINT`` (comfyui_controlnet_aux's DWPose and OpenPose nodes).

``POSE_KEYPOINT`` is a list with one dict per frame (docs/METHODS.md §7, "Poses")::

    {"people": [{"pose_keypoints_2d": [x0, y0, c0, ..., x17, y17, c17], "face_keypoints_2d": ...,
                 "hand_left_keypoints_2d": ..., "hand_right_keypoints_2d": ...}, ...],
     "canvas_width": W, "canvas_height": H}

Points follow OpenPose's 18-point COCO order (:data:`POINT_NAMES`); a missing point is written
``0, 0, 0``. The two producers write coordinates differently:

- **DWPose**: pixels of its input frame, which is also the canvas (``canvas_*`` = the frame's size).
- **OpenPose node**: the frame is resized so its short side is the node's resolution (the canvas,
  ``W x H``), then padded at the right and bottom to multiples of 64 (``W_pad = 64·ceil(W/64)``,
  ``H_pad`` likewise); points are divided by the *padded* size, while ``canvas_*`` is the
  *unpadded* ``W x H``. The padding adds no offset, so the pixel on the canvas is
  ``x·W_pad, y·H_pad``.

As their renderer does, a frame whose valid points all have ``|x|, |y| <= 1`` is read as normalised
(the OpenPose node), any other as pixels (DWPose). Assumption: normalised values come from the
OpenPose node's padded canvas; for a canvas whose sides are multiples of 64 (512×512, 512×768)
padded and unpadded readings agree. A DWPose skeleton lying entirely within one pixel of the
top-left corner would be misread, as the renderer misreads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import InputError

POINT_NAMES = ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
               "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
               "right_eye", "left_eye", "right_ear", "left_ear")
"""OpenPose's 18 body points (COCO order), as ``pose_keypoints_2d`` lists them."""

NECK, RIGHT_HIP, LEFT_HIP = 1, 8, 11
PAD_MULTIPLE = 64
"""The OpenPose node pads its resized frame to multiples of this before normalising (see module doc)."""


@dataclass(frozen=True)
class PoseClip:
    """One person's 18 body points per frame, in pixels of the canvas.

    Attributes:
        keypoints: ``(frames, 18, 2)`` float64, ``(x, y)`` in canvas pixels (x right, y down); NaN
            where a point is missing.
        valid: ``(frames, 18)`` bool, True where a point is present.
        canvas: ``(width, height)`` of the canvas in pixels.
        picked: per frame, the index in ``people`` of the person kept (the largest), -1 where the
            frame has no person with a valid point.
        people: per frame, how many people the frame listed.
    """

    keypoints: torch.Tensor
    valid: torch.Tensor
    canvas: tuple[int, int]
    picked: tuple[int, ...]
    people: tuple[int, ...]

    @property
    def frames(self) -> int:
        return self.keypoints.shape[0]

    def describe(self) -> str:
        """Which person was kept, in words (e.g. ``"person 2 of 3 (the largest) in 5 frames"``)."""
        parts, runs = [], {}
        for index, count in zip(self.picked, self.people):
            key = (index, count) if index >= 0 else (-1, 0)
            runs[key] = runs.get(key, 0) + 1
        for (index, count), frames in sorted(runs.items(), key=lambda item: -item[1]):
            if index < 0:
                parts.append(f"no person in {frames} frame(s)")
            elif count == 1:
                parts.append(f"the only person in {frames} frame(s)")
            else:
                parts.append(f"person {index + 1} of {count} (the largest) in {frames} frame(s)")
        return "; ".join(parts)


def parse_pose_keypoint(data: object, input_name: str = "pose") -> PoseClip:
    """Read a ``POSE_KEYPOINT`` list into a :class:`PoseClip` (the largest person of each frame).

    The largest person is the one whose valid points span the largest bounding box (area in
    pixels; then the most valid points; then the first listed), chosen in each frame on its own
    (no tracking across frames). A point is valid when its confidence ``c > 0``.

    Raises:
        InputError: naming ``input_name`` for anything that is not a body-pose ``POSE_KEYPOINT``
            (not a list of frame dicts, a missing or non-positive canvas size, frames of different
            canvas sizes, ``people`` not a list, a person without 18 ``x, y, c`` triples, numbers
            that are not finite).
    """
    if not isinstance(data, (list, tuple)) or not data:
        raise InputError(input_name, f"expected POSE_KEYPOINT: a non-empty list with one dict per frame (from a "
                                     f"DWPose or OpenPose node), got {_kind(data)}")
    canvas, rows = None, []
    for index, frame in enumerate(data):
        size = _canvas(frame, index, input_name)
        if canvas is not None and size != canvas:
            raise InputError(input_name, f"frame {index} has a {size[0]}x{size[1]} canvas but frame 0 "
                                         f"{canvas[0]}x{canvas[1]}; all frames of a clip share one canvas")
        canvas = size
        rows.append(_frame_people(frame, index, input_name))
    keypoints = torch.full((len(rows), len(POINT_NAMES), 2), math.nan, dtype=torch.float64)
    valid = torch.zeros(len(rows), len(POINT_NAMES), dtype=torch.bool)
    picked = []
    for index, people in enumerate(rows):
        if people:
            people = _to_pixels(people, canvas)
        choice = _largest(people)
        picked.append(choice)
        if choice >= 0:
            points, present = people[choice]
            keypoints[index] = torch.where(present[:, None], points, math.nan)
            valid[index] = present
    return PoseClip(keypoints, valid, canvas, tuple(picked), tuple(len(people) for people in rows))


def read_pose_file(path, input_name: str = "pose_file") -> object:
    """The JSON in a pose file (``POSE_KEYPOINT`` as comfyui_controlnet_aux's Save Pose Keypoints writes
    it; :func:`parse_pose_keypoint` checks it); :class:`InputError` naming ``input_name`` for a file that
    cannot be read as JSON."""
    import json
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(input_name, f"{Path(path).name!r} is not a readable JSON file ({err})") from None
    return data


def to_pose_keypoint(clip: PoseClip) -> list[dict]:
    """A :class:`PoseClip` as ``POSE_KEYPOINT`` in pixels of its canvas (DWPose's convention).

    Each frame lists its one person (none where it has no valid point); missing points are
    ``0, 0, 0``, present ones ``x, y, 1.0``; face and hand points are not carried (None).
    """
    width, height = clip.canvas
    frames = []
    for points, present in zip(clip.keypoints.tolist(), clip.valid.tolist()):
        people = []
        if any(present):
            flat = [value for (x, y), ok in zip(points, present) for value in ((x, y, 1.0) if ok else (0.0, 0.0, 0.0))]
            people.append({"pose_keypoints_2d": flat, "face_keypoints_2d": None, "hand_left_keypoints_2d": None,
                           "hand_right_keypoints_2d": None})
        frames.append({"people": people, "canvas_width": width, "canvas_height": height})
    return frames


# --- reading ----------------------------------------------------------------------------------------

def _kind(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return f"an empty {type(value).__name__}" if not value else f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


def _canvas(frame: object, index: int, input_name: str) -> tuple[int, int]:
    if not isinstance(frame, dict):
        raise InputError(input_name, f"frame {index} is a {type(frame).__name__}, not a dict with 'people', "
                                     "'canvas_width' and 'canvas_height'")
    size = []
    for key in ("canvas_width", "canvas_height"):
        value = frame.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
            raise InputError(input_name, f"frame {index}: {key} is {value!r}; expected a whole number of pixels >= 1")
        size.append(int(value))
    return size[0], size[1]


def _frame_people(frame: dict, index: int, input_name: str) -> list[list[float]]:
    """Each listed person's flat ``pose_keypoints_2d`` (an empty list for a person without one)."""
    people = frame.get("people")
    if people is None:
        hint = " (this is an animal pose, AP10K; a body pose is needed)" if "animals" in frame else ""
        raise InputError(input_name, f"frame {index} has no 'people' list{hint}")
    if not isinstance(people, (list, tuple)):
        raise InputError(input_name, f"frame {index}: 'people' is a {type(people).__name__}, not a list")
    flat_people = []
    for number, person in enumerate(people):
        if not isinstance(person, dict):
            raise InputError(input_name, f"frame {index}, person {number}: a {type(person).__name__}, not a dict "
                                         "with 'pose_keypoints_2d'")
        expected = 3 * len(POINT_NAMES)
        flat = person.get("pose_keypoints_2d") or [0.0] * expected  # None: the producer found no body point
        if not isinstance(flat, (list, tuple)) or len(flat) != expected:
            length = len(flat) if isinstance(flat, (list, tuple)) else type(flat).__name__
            hint = " (OpenPose BODY_25 has 25 points; a COCO 18-point pose is needed)" if length == 75 else ""
            raise InputError(input_name, f"frame {index}, person {number}: pose_keypoints_2d has {length} values; "
                                         f"expected {expected} (18 points as x, y, confidence){hint}")
        if not all(not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) for v in flat):
            raise InputError(input_name, f"frame {index}, person {number}: pose_keypoints_2d holds values that are "
                                         "not finite numbers")
        flat_people.append([float(v) for v in flat])
    return flat_people


def _to_pixels(people: list[list[float]], canvas: tuple[int, int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(points (18, 2) in canvas pixels, present (18,))`` per person; the convention is decided
    per frame, over every valid point of every person (see the module doc)."""
    triples = [torch.tensor(flat, dtype=torch.float64).view(-1, 3) for flat in people]
    present = [t[:, 2] > 0 for t in triples]
    coordinates = torch.cat([t[ok, :2] for t, ok in zip(triples, present)])
    if coordinates.numel() and bool((coordinates.abs() <= 1).all()):
        width, height = canvas
        padded = torch.tensor([_padded(width), _padded(height)], dtype=torch.float64)
        return [(t[:, :2] * padded, ok) for t, ok in zip(triples, present)]
    return [(t[:, :2], ok) for t, ok in zip(triples, present)]


def _padded(side: int) -> int:
    return PAD_MULTIPLE * math.ceil(side / PAD_MULTIPLE)


def _largest(people: list[tuple[torch.Tensor, torch.Tensor]]) -> int:
    """Index of the person with the largest bounding box of valid points (-1 if none has one)."""
    best, best_key = -1, None
    for index, (points, present) in enumerate(people):
        if not bool(present.any()):
            continue
        span = points[present].amax(0) - points[present].amin(0)
        key = (float(span[0] * span[1]), int(present.sum()))
        if best_key is None or key > best_key:
            best, best_key = index, key
    return best
