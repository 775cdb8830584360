"""Skeleton images in the OpenPose ControlNet convention, drawn with PIL.

The convention pose ControlNets for SD1.5 were trained on (docs/METHODS.md §7, "Pose images"):
a black canvas; 17 limbs, each a filled ellipse along the limb with half-width 4 px in its colour
× 0.6; then every joint as a filled circle of radius 4 px in its full colour. Limb ``k`` takes
colour ``k``, joint ``j`` colour ``j`` of :data:`COLOURS`. Limbs are drawn in :data:`LIMBS` order
(a later one covers an earlier one), joints over the limbs.

The pack draws these itself: comfyui_controlnet_aux's OpenPose code carries a non-commercial
licence and its import pulls in timm and torchvision. The limb polygons are the annotator's
(OpenCV ``ellipse2Poly``: 1° steps, rounded) and the joints its discs (the whole pixels within the
radius), so PIL's drawing equals OpenCV's but for a few edge pixels of a limb (tested).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..progress import Progress
from ..video import plan_resize
from .pose import PoseClip

LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
         (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
"""The 17 limbs as 0-based point pairs (OpenPose's 1-based 2-3, 2-6, 3-4, …, 16-18), in drawing order."""

COLOURS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
           (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
           (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))
"""The 18 colours (RGB), red -> orange -> yellow -> green -> cyan -> blue -> magenta."""

LIMB_HALF_WIDTH = 4
JOINT_RADIUS = 4
LIMB_SHADE = 0.6
DISC = tuple((dx, dy) for dx in range(-JOINT_RADIUS, JOINT_RADIUS + 1) for dy in range(-JOINT_RADIUS, JOINT_RADIUS + 1)
             if dx * dx + dy * dy <= JOINT_RADIUS * JOINT_RADIUS)
"""A joint's pixels around its centre: the whole pixels within the radius (49 at radius 4), as OpenCV fills a circle."""


def limb_colour(index: int) -> tuple[int, int, int]:
    """Limb ``index``'s fill: its colour × 0.6, truncated as the ControlNet annotator does (255 -> 153)."""
    return tuple(int(float(c) * LIMB_SHADE) for c in COLOURS[index])


def draw_pose_frames(clip: PoseClip, width: int = 0, height: int = 0, progress: Progress | None = None) -> torch.Tensor:
    """Draw every frame's skeleton: IMAGE frames ``(frames, height, width, 3)`` float32 in [0, 1].

    ``width``/``height`` 0 follow the canvas (one 0: the other side with the canvas's aspect ratio);
    another size maps the canvas as frames are resized for a model (scaled to cover, centre-cropped;
    :func:`motion_core.video.plan_resize`), so the skeletons stay on the subject of resized frames.
    Line widths and joint sizes are in output pixels.

    Each frame is drawn into the output as it is made, ``progress(done, frames)`` after each (raising
    from it cancels): at 8192 pixels a frame is 1 GB, and the clip's frames are held once, not thrice.
    """
    canvas_w, canvas_h = clip.canvas
    (scaled_w, scaled_h), (left, top, out_w, out_h) = plan_resize(canvas_w, canvas_h, width, height)
    # pixel centres map onto pixel centres, as an image resize maps them
    scale = torch.tensor([scaled_w / canvas_w, scaled_h / canvas_h], dtype=torch.float64)
    points = (clip.keypoints + 0.5) * scale - 0.5 - torch.tensor([left, top], dtype=torch.float64)
    images = torch.empty((len(points), out_h, out_w, 3))
    for index, (p, ok) in enumerate(zip(points.tolist(), clip.valid.tolist())):
        np.divide(draw_skeleton(p, ok, (out_w, out_h)), np.float32(255), out=images[index].numpy())
        if progress is not None:
            progress(index + 1, len(images))
    return images


def draw_skeleton(points, present, size: tuple[int, int]) -> np.ndarray:
    """One skeleton: ``points`` 18 ``(x, y)`` pixels, ``present`` 18 bools, ``size`` ``(width, height)``
    -> uint8 ``(height, width, 3)``."""
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for index, (a, b) in enumerate(LIMBS):
        if present[a] and present[b]:
            draw.polygon(_limb_outline(points[a], points[b]), fill=limb_colour(index))
    for (x, y), ok, colour in zip(points, present, COLOURS):
        if ok:
            x, y = int(x), int(y)
            draw.point([(x + dx, y + dy) for dx, dy in DISC], fill=colour)
    return np.asarray(image)


def _limb_outline(start, end) -> list[tuple[int, int]]:
    """The limb's ellipse as a polygon of 1° steps: centred between the joints (truncated to whole
    pixels), half-length = half the joint distance, half-width 4, tilted along the limb (whole
    degrees) — the annotator's ``ellipse2Poly`` parameters."""
    (x0, y0), (x1, y1) = start, end
    centre_x, centre_y = int((x0 + x1) / 2), int((y0 + y1) / 2)
    half_length = int(math.hypot(x1 - x0, y1 - y0) / 2)
    tilt = math.radians(int(math.degrees(math.atan2(y0 - y1, x0 - x1))))
    cos_tilt, sin_tilt = math.cos(tilt), math.sin(tilt)
    outline = []
    for degree in range(0, 360):
        along, across = half_length * math.cos(math.radians(degree)), LIMB_HALF_WIDTH * math.sin(math.radians(degree))
        point = (round(centre_x + along * cos_tilt - across * sin_tilt),
                 round(centre_y + along * sin_tilt + across * cos_tilt))
        if not outline or point != outline[-1]:
            outline.append(point)
    return outline
