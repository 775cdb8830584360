"""Skeleton images in the OpenPose ControlNet convention (docs/METHODS.md §7, "Pose images")."""

import math

import cv2
import numpy as np
import pytest
import torch

from motion_core.edit import COLOURS, LIMBS, draw_pose_frames, draw_skeleton, parse_pose_keypoint
from motion_core.edit.draw import limb_colour
from support.poses import STANDING, dwpose_frame


def only(points: dict, width=64, height=64):
    """A one-frame clip with just the points given as ``{index: (x, y)}``."""
    full = np.zeros((18, 2))
    for index, point in points.items():
        full[index] = point
    missing = tuple(i for i in range(18) if i not in points)
    return parse_pose_keypoint([dwpose_frame([(full, missing)], width, height)])


def rgb(image, x, y):
    """The 0..255 colour of pixel (x, y) of a ``(1, h, w, 3)`` IMAGE in [0, 1]."""
    return tuple(round(float(v) * 255) for v in image[0, y, x])


def test_the_convention_tables():
    assert LIMBS[0] == (1, 2) and LIMBS[12] == (1, 0) and LIMBS[16] == (15, 17) and len(LIMBS) == 17
    assert COLOURS[0] == (255, 0, 0) and COLOURS[9] == (0, 255, 255) and COLOURS[17] == (255, 0, 85)
    assert len(set(COLOURS)) == 18
    assert limb_colour(0) == (153, 0, 0) and limb_colour(1) == (153, 51, 0) and limb_colour(2) == (153, 102, 0)


def test_a_hand_checked_limb():
    # neck (20, 32) to right shoulder (44, 32): limb 0, a red ellipse × 0.6 = (153, 0, 0) from x 20 to 44,
    # 4 px either side of y = 32; the neck in orange (255, 85, 0), the shoulder in (255, 170, 0), radius 4
    image = draw_pose_frames(only({1: (20, 32), 2: (44, 32)}))
    assert image.shape == (1, 64, 64, 3) and image.dtype == torch.float32
    limb, neck, shoulder, black = (153, 0, 0), (255, 85, 0), (255, 170, 0), (0, 0, 0)
    for (x, y), colour in {(32, 32): limb, (32, 29): limb, (32, 35): limb, (27, 32): limb, (39, 34): limb,
                           (32, 38): black, (32, 26): black, (20, 32): neck, (17, 32): neck, (20, 35): neck,
                           (44, 32): shoulder, (47, 32): shoulder, (44, 29): shoulder, (50, 32): black,
                           (12, 32): black, (0, 0): black}.items():
        assert rgb(image, x, y) == colour, (x, y)
    assert rgb(image, 32, 32)[0] / 255 == pytest.approx(0.6)


def test_a_limb_is_drawn_only_between_two_present_points():
    image = draw_pose_frames(only({1: (20, 32), 5: (44, 32)}))  # neck and left shoulder: limb 1
    assert rgb(image, 32, 32) == limb_colour(1)
    lone = draw_pose_frames(only({1: (20, 32)}))  # a lone joint: its circle only
    assert rgb(lone, 20, 32) == COLOURS[1] and rgb(lone, 32, 32) == (0, 0, 0)
    assert int((lone[0].sum(-1) > 0).sum()) < 81  # a disc of radius 4 inside its 9x9 box


def test_frames_without_a_person_are_black():
    clip = parse_pose_keypoint([dwpose_frame([(STANDING, ())], 200, 260), {"people": [], "canvas_width": 200,
                                                                              "canvas_height": 260}])
    images = draw_pose_frames(clip)
    assert images.shape == (2, 260, 200, 3)
    assert float(images[0].max()) == 1.0 and float(images[1].abs().max()) == 0.0


def test_another_size_follows_the_frames_resize_cover_and_centre_crop():
    # 100x50 canvas -> 50x50: no scaling needed to cover, 25 px cropped on the left
    cropped = draw_pose_frames(only({1: (60, 25)}, 100, 50), 50, 50)
    assert cropped.shape == (1, 50, 50, 3) and rgb(cropped, 35, 25) == COLOURS[1]
    # 64x64 -> 128x128: pixel centres map onto pixel centres, (20, 32) -> (40.5, 64.5), drawn at (40, 64)
    doubled = draw_pose_frames(only({1: (20, 32)}), 128, 128)
    assert rgb(doubled, 40, 64) == COLOURS[1] and rgb(doubled, 20, 32) == (0, 0, 0)
    # one side given: the other follows the aspect ratio
    assert draw_pose_frames(only({1: (20, 32)}, 100, 50), 200, 0).shape == (1, 100, 200, 3)


def test_frames_are_drawn_one_by_one_with_progress_and_can_be_cancelled():
    """Found by the fuzz tier: Align Pose at width 8192 held 18 GB and ran 46 s after a cancel."""
    clip = parse_pose_keypoint([dwpose_frame([(STANDING + (3 * i, 0), ())], 200, 260) for i in range(3)])
    reports = []
    images = draw_pose_frames(clip, 0, 0, lambda done, total: reports.append((done, total)))
    assert reports == [(1, 3), (2, 3), (3, 3)]
    shifted = [draw_skeleton(points, present, (200, 260)) for points, present in
               zip(clip.keypoints.tolist(), clip.valid.tolist())]
    assert torch.equal(images, torch.from_numpy(np.stack(shifted)).float() / 255.0)

    def cancel(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        draw_pose_frames(clip, 0, 0, cancel)


def opencv_skeleton(points, present, size):
    """The annotator's drawing with OpenCV, written from the convention, to compare PIL's with."""
    canvas = np.zeros((size[1], size[0], 3), np.uint8)
    for index, (a, b) in enumerate(LIMBS):
        if present[a] and present[b]:
            (x0, y0), (x1, y1) = points[a], points[b]
            length = math.hypot(x0 - x1, y0 - y1)
            angle = math.degrees(math.atan2(y0 - y1, x0 - x1))
            polygon = cv2.ellipse2Poly((int((x0 + x1) / 2), int((y0 + y1) / 2)), (int(length / 2), 4), int(angle), 0,
                                       360, 1)
            cv2.fillConvexPoly(canvas, polygon, limb_colour(index))
    for (x, y), ok, colour in zip(points, present, COLOURS):
        if ok:
            cv2.circle(canvas, (int(x), int(y)), 4, colour, thickness=-1)
    return canvas


def test_the_whole_skeleton_matches_opencvs_drawing():
    rng = np.random.default_rng(0)
    for _ in range(5):
        points = STANDING * rng.uniform(0.8, 1.6) + rng.uniform(0, 40, 2) + rng.normal(0, 6, STANDING.shape)
        present = rng.random(18) > 0.1
        ours = draw_skeleton(points.tolist(), present.tolist(), (320, 448))
        theirs = opencv_skeleton(points.tolist(), present.tolist(), (320, 448))
        drawn_ours, drawn_theirs = ours.any(-1), theirs.any(-1)
        iou = (drawn_ours & drawn_theirs).sum() / (drawn_ours | drawn_theirs).sum()
        same_colour = (ours == theirs).all(-1)[drawn_ours | drawn_theirs].mean()
        assert iou > 0.995 and same_colour > 0.995, (iou, same_colour)  # measured: 0.9993 at worst
