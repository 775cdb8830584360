"""A toy skeleton for a toy clip: OpenPose's 18 body points as a stick figure on the object.

    python -m motion_core.toy.skeleton --write-assets

The toy world has no people, but Edit-Your-Motion steers a video model with body poses; to train and
measure a pose ControlNet on the toy models, each toy clip gets a *toy skeleton*: a small, upright,
front-facing stick figure (:data:`UNIT_FIGURE`) placed on the object in every frame, its torso
(neck to mid-hip, the measure of :func:`motion_core.edit.skeleton_offset`) centred on the object's
centre and :data:`TORSO_RATIO` times its size long. Toy shapes do not rotate and have no limbs, so
the skeleton carries position and size only: its pose never changes.

Exact relation, per frame: ``points = centre + TORSO_RATIO · size · UNIT_FIGURE``, so the torso's
midpoint is the object's centre and the torso's length ``TORSO_RATIO · size``. Points are affine in
(centre, size), so the skeleton of a scaled and shifted clip is the scaled and shifted skeleton:
aligning one onto the other (:func:`motion_core.edit.align_reference`) is exact.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ..edit import PoseClip, draw_pose_frames, to_pose_keypoint
from . import world
from .examples import FOLDER, to_json

TORSO_RATIO = 0.5
"""Torso length / object size. The whole figure is then about the object's size tall (2 torsos, head
to ankles), so the drawn skeleton covers roughly where the object is."""

UNIT_FIGURE = np.array([
    (0.0, -0.85),                                 # nose
    (0.0, -0.5),                                  # neck
    (-0.35, -0.45), (-0.5, -0.1), (-0.55, 0.3),   # right shoulder, elbow, wrist (image left: facing us)
    (0.35, -0.45), (0.5, -0.1), (0.55, 0.3),      # left shoulder, elbow, wrist
    (-0.2, 0.5), (-0.22, 0.8), (-0.25, 1.05),     # right hip, knee, ankle
    (0.2, 0.5), (0.22, 0.8), (0.25, 1.05),        # left hip, knee, ankle
    (-0.08, -0.92), (0.08, -0.92),                # right, left eye
    (-0.16, -0.88), (0.16, -0.88),                # right, left ear
])
"""The figure ``(18, 2)`` in torso lengths around the torso's midpoint (x right, y down), OpenPose's
COCO order: neck at ``(0, -0.5)``, mid-hip at ``(0, 0.5)``. Short legs keep it about as tall above
the centre (0.92) as below (1.05)."""


def skeleton_points(centres: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The toy skeleton of an object at ``centres (f, 2)`` pixels with ``sizes (f,)`` pixels (square
    root of its area) -> points ``(f, 18, 2)`` float64 pixels, ``centre + TORSO_RATIO·size·UNIT_FIGURE``."""
    centres, sizes = np.asarray(centres, np.float64), np.asarray(sizes, np.float64)
    return centres[:, None, :] + (TORSO_RATIO * sizes)[:, None, None] * UNIT_FIGURE


def skeleton_clip(centres: np.ndarray, sizes: np.ndarray, width: int, height: int) -> PoseClip:
    """:func:`skeleton_points` as a :class:`~motion_core.edit.PoseClip` on a ``width x height`` canvas,
    one person with every point present in every frame."""
    points = torch.from_numpy(skeleton_points(centres, sizes))
    frames = points.shape[0]
    return PoseClip(points, torch.ones(points.shape[:2], dtype=torch.bool), (width, height), (0,) * frames,
                    (1,) * frames)


def clip_skeleton(clip: world.Clip) -> PoseClip:
    """The toy skeleton of ``clip``'s object, on the clip's canvas."""
    _, height, width, _ = clip.frames.shape
    return skeleton_clip(clip.centres, clip.sizes, width, height)


def toy_pose_keypoint(clip: world.Clip) -> list[dict]:
    """The clip's toy skeleton as ComfyUI ``POSE_KEYPOINT`` in pixels (DWPose's convention), one
    person per frame; :func:`motion_core.edit.parse_pose_keypoint` reads it back exactly."""
    return to_pose_keypoint(clip_skeleton(clip))


def pose_images(clip: world.Clip) -> torch.Tensor:
    """The clip's toy skeleton drawn as OpenPose ControlNet images at the clip's size: IMAGE
    ``(f, h, w, 3)`` float32 in [0, 1]. At 32 × 32 the annotator's 4 px joints and limbs make the
    figure a coloured patch about the object's size, which is all a toy skeleton has to say."""
    _, height, width, _ = clip.frames.shape
    return draw_pose_frames(clip_skeleton(clip), width, height)


def write_pose_assets(folder: str | Path = FOLDER) -> list[Path]:
    """Write ``<name>.pose.json`` (``POSE_KEYPOINT``) next to each ``<name>.mp4`` in ``folder``, from the
    centres and sizes its ``<name>.json`` sidecar records; returns the files written (replaced if present:
    they are a pure function of the sidecars)."""
    written = []
    for video in sorted(Path(folder).glob("*.mp4")):
        sidecar = json.loads(video.with_suffix(".json").read_text())
        pose = skeleton_clip(np.array(sidecar["centres"]), np.array(sidecar["sizes"]), sidecar["width"],
                             sidecar["height"])
        path = video.with_suffix(".pose.json")
        path.write_text(to_json(to_pose_keypoint(pose)))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m motion_core.toy.skeleton", description=__doc__.split("\n")[0])
    parser.add_argument("--write-assets", action="store_true",
                        help="write <name>.pose.json next to every toy clip in --folder")
    parser.add_argument("--folder", default=str(FOLDER), help="the toy clips' folder (default: assets/toy)")
    args = parser.parse_args(argv)
    if not args.write_assets:
        parser.error("nothing to do; pass --write-assets")
    for path in write_pose_assets(args.folder):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
