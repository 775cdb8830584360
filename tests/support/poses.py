"""Body poses as comfyui_controlnet_aux writes them (``POSE_KEYPOINT``), for the Edit-Your-Motion tests.

Skeletons are ``(18, 2)`` pixel arrays in OpenPose's COCO order; :func:`dwpose_frame` writes one as
DWPose does (pixels of the frame), :func:`openpose_frame` as the OpenPose node does (divided by the
canvas padded to multiples of 64, ``canvas_*`` unpadded).
"""

import math

import numpy as np

STANDING = np.array([
    (100, 40),                          # nose
    (100, 70),                          # neck
    (80, 70), (75, 105), (72, 140),     # right shoulder, elbow, wrist
    (120, 70), (125, 105), (128, 140),  # left shoulder, elbow, wrist
    (88, 150), (87, 200), (86, 250),    # right hip, knee, ankle
    (112, 150), (113, 200), (114, 250),  # left hip, knee, ankle
    (95, 35), (105, 35), (90, 38), (110, 38),  # right/left eye, right/left ear
], dtype=np.float64)
"""A person standing, facing the camera, about 215 px tall; neck (100, 70), mid-hip (100, 150)."""

ARMS_UP = STANDING.copy()
ARMS_UP[[3, 4, 6, 7]] = [(75, 35), (72, 0), (125, 35), (128, 0)]
""":data:`STANDING` with both arms raised above the head (the wrists at y = 0)."""


def person(points, missing=()) -> dict:
    """One entry of ``people``: ``pose_keypoints_2d`` with confidence 1, ``0, 0, 0`` at ``missing``."""
    flat = []
    for index, (x, y) in enumerate(points):
        flat += [0.0, 0.0, 0.0] if index in missing else [float(x), float(y), 1.0]
    return {"pose_keypoints_2d": flat, "face_keypoints_2d": None, "hand_left_keypoints_2d": None,
            "hand_right_keypoints_2d": None}


def dwpose_frame(people, width: int, height: int) -> dict:
    """A DWPose frame: ``people`` is a list of ``(points, missing)`` in pixels of a ``width x height`` frame."""
    return {"people": [person(points, missing) for points, missing in people], "canvas_width": width,
            "canvas_height": height}


def openpose_frame(people, width: int, height: int) -> dict:
    """An OpenPose-node frame on a ``width x height`` canvas: pixels divided by the padded size."""
    padded = np.array([64 * math.ceil(width / 64), 64 * math.ceil(height / 64)], dtype=np.float64)
    return {"people": [person(np.asarray(points) / padded, missing) for points, missing in people],
            "canvas_width": width, "canvas_height": height}


def walking(frames: int, step=(4.0, 0.0), start=(0.0, 0.0), points=STANDING) -> list[np.ndarray]:
    """``points`` moved by ``step`` pixels a frame from ``start``."""
    return [points + np.asarray(start) + i * np.asarray(step) for i in range(frames)]
