"""Edit-Your-Motion's skeleton offset: place the reference skeleton on the source subject.

One similarity for the whole clip (docs/METHODS.md §7, "Skeleton offset"): from one anchor frame,
the source's and the reference's centres ``c_S, c_R`` and sizes, ``s = size_S / size_R`` and
``d = c_S - s·c_R``; every reference frame's points map ``p -> s·p + d``. The reference's own
movement (where it walks, how it grows when it comes closer) is kept; only its place and scale on
the canvas change, to the source subject's.

Size measures (:data:`SIZE_MEASURES`):

- ``torso`` (default): the neck-to-mid-hip length, centred at its midpoint. Raised arms, bent legs
  or a turned head do not change it, so a reference that starts with its arms up is not shrunk.
- ``height``: the height of the bounding box of the points, centred at the box's centre; for
  subjects whose torso is not visible in the anchor frame.

Only points present in *both* anchor frames count (the hips present in both for ``torso``), so a
wrist missing on one side does not move the other side's centre.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..errors import InputError
from ..progress import Progress
from ..video import MAX_SIDE
from .draw import draw_pose_frames
from .pose import LEFT_HIP, NECK, POINT_NAMES, RIGHT_HIP, PoseClip, parse_pose_keypoint, to_pose_keypoint

SIZE_MEASURES = ("torso", "height")
"""How a skeleton's size and centre are measured; the first is the default."""


@dataclass(frozen=True)
class Similarity:
    """``p -> scale·p + offset`` on ``(x, y)`` pixel coordinates."""

    scale: float
    offset: tuple[float, float]

    def apply(self, points: torch.Tensor) -> torch.Tensor:
        """Map points ``(..., 2)`` (NaN stays NaN)."""
        return points * self.scale + torch.tensor(self.offset, dtype=points.dtype)


def skeleton_offset(source: PoseClip, reference: PoseClip, anchor: int = 0, size: str = "torso",
                    names: tuple[str, str, str] = ("source_pose", "reference_pose", "anchor_frame")) -> Similarity:
    """The similarity that puts the reference's anchor-frame skeleton on the source's.

    Args:
        source, reference: the two clips' poses (each in pixels of its own canvas).
        anchor: the frame (0-based) measured in both clips.
        size: one of :data:`SIZE_MEASURES`.
        names: the user-facing names of the source, reference and anchor inputs (for errors).

    Raises:
        InputError: the anchor is not a frame of both clips; a clip has no person in it; too few
            points are present in both to measure (naming what is missing and what to change).
    """
    source_name, reference_name, anchor_name = names
    if size not in SIZE_MEASURES:
        raise InputError("size_measure", f"{size!r} is not valid; use one of {', '.join(SIZE_MEASURES)}")
    frames = min(source.frames, reference.frames)
    if not 0 <= anchor < frames:
        raise InputError(anchor_name, f"{anchor} is not a frame of both clips (the source has {source.frames} "
                                      f"frames, the reference {reference.frames}); use 0 to {frames - 1}")
    for clip, name in ((source, source_name), (reference, reference_name)):
        if not bool(clip.valid[anchor].any()):
            raise InputError(name, f"frame {anchor} has no person; choose another {anchor_name} (one where both "
                                   "clips show the subject)")
    both = source.valid[anchor] & reference.valid[anchor]
    measure = _torso if size == "torso" else _height
    (centre_s, size_s), (centre_r, size_r) = (measure(clip.keypoints[anchor], both, anchor, anchor_name)
                                              for clip in (source, reference))
    for value, name in ((size_s, source_name), (size_r, reference_name)):
        if not value > 0:
            raise InputError(name, f"the skeleton in frame {anchor} has no extent to measure its {size} by (its "
                                   f"points coincide); choose another {anchor_name} or size measure")
    scale = size_s / size_r
    offset = centre_s - scale * centre_r
    return Similarity(scale, (float(offset[0]), float(offset[1])))


def align_reference(source: PoseClip, reference: PoseClip, anchor: int = 0, size: str = "torso",
                    names: tuple[str, str, str] = ("source_pose", "reference_pose", "anchor_frame")
                    ) -> tuple[PoseClip, Similarity]:
    """The reference's poses moved onto the source (:func:`skeleton_offset`), on the source's canvas.

    Returns the aligned clip (every reference frame; missing points stay missing; ``picked`` and
    ``people`` are the reference's) and the similarity used.
    """
    similarity = skeleton_offset(source, reference, anchor, size, names)
    return replace(reference, keypoints=similarity.apply(reference.keypoints), canvas=source.canvas), similarity


def _torso(points: torch.Tensor, both: torch.Tensor, anchor: int, anchor_name: str) -> tuple[torch.Tensor, float]:
    hips = [hip for hip in (RIGHT_HIP, LEFT_HIP) if both[hip]]
    if not both[NECK] or not hips:
        missing = [POINT_NAMES[i] for i in (NECK, RIGHT_HIP, LEFT_HIP) if not both[i]]
        raise InputError(anchor_name, f"frame {anchor} lacks the torso in one of the clips (missing in the source "
                                      f"or the reference: {', '.join(missing)}); choose a frame where both show the "
                                      "neck and a hip, or the size measure 'height'")
    mid_hip = points[hips].mean(0)
    return (points[NECK] + mid_hip) / 2, float(torch.linalg.vector_norm(points[NECK] - mid_hip))


def _height(points: torch.Tensor, both: torch.Tensor, anchor: int, anchor_name: str) -> tuple[torch.Tensor, float]:
    if int(both.sum()) < 2:
        raise InputError(anchor_name, f"frame {anchor}: fewer than 2 points are present in both clips; choose a "
                                      "frame where both show the subject")
    shown = points[both]
    low, high = shown.amin(0), shown.amax(0)
    return (low + high) / 2, float(high[1] - low[1])


@dataclass(frozen=True)
class AlignedPoses:
    """What the Align Pose node outputs (:func:`align_pose_keypoint`).

    Attributes:
        pose_keypoint: the aligned reference as ``POSE_KEYPOINT``, in pixels of the source canvas.
        images: its skeleton images, IMAGE ``(frames, height, width, 3)`` float32 in [0, 1].
        similarity: the skeleton offset applied.
        text: which people were read and what was applied, in words.
    """

    pose_keypoint: list
    images: torch.Tensor
    similarity: Similarity
    text: str


def align_pose_keypoint(source: object, reference: object, anchor: int = 0, width: int = 0, height: int = 0,
                        size: str = "torso", progress: Progress | None = None) -> AlignedPoses:
    """``POSE_KEYPOINT`` in, aligned ``POSE_KEYPOINT`` and pose images out: parse both clips
    (:func:`~motion_core.edit.pose.parse_pose_keypoint`), align the reference on the source
    (:func:`align_reference`), draw it (:func:`~motion_core.edit.draw.draw_pose_frames`; ``width``/
    ``height`` 0 = the source canvas; ``progress`` per frame drawn). Errors name the node's inputs."""
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIDE:
            raise InputError(name, f"{value!r} is not valid; use 0 (the source canvas) to {MAX_SIDE} pixels")
    source_clip = parse_pose_keypoint(source, "source_pose")
    reference_clip = parse_pose_keypoint(reference, "reference_pose")
    aligned, similarity = align_reference(source_clip, reference_clip, anchor, size)
    (dx, dy) = similarity.offset
    text = (f"source: {source_clip.describe()}\nreference: {reference_clip.describe()}\n"
            f"reference scaled ×{similarity.scale:.3f} and moved by ({dx:+.1f}, {dy:+.1f}) px "
            f"({size} measured in frame {anchor})")
    return AlignedPoses(to_pose_keypoint(aligned), draw_pose_frames(aligned, width, height, progress), similarity,
                        text)
