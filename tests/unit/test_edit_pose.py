"""POSE_KEYPOINT as the DWPose and OpenPose nodes write it, read into canvas pixels (docs/METHODS.md §7)."""

import math

import numpy as np
import pytest
import torch

from motion_core.edit import POINT_NAMES, parse_pose_keypoint, to_pose_keypoint
from support.poses import STANDING, dwpose_frame, openpose_frame, person, walking


def test_the_18_points_are_openpose_coco_order():
    assert len(POINT_NAMES) == 18
    assert POINT_NAMES[:2] == ("nose", "neck") and POINT_NAMES[8] == "right_hip" and POINT_NAMES[11] == "left_hip"
    assert POINT_NAMES[14:] == ("right_eye", "left_eye", "right_ear", "left_ear")


def test_dwpose_pixels_are_read_as_they_are():
    clip = parse_pose_keypoint([dwpose_frame([(p, ())], 320, 480) for p in walking(3)], "source_pose")
    assert clip.canvas == (320, 480) and clip.frames == 3
    assert clip.keypoints.shape == (3, 18, 2) and clip.keypoints.dtype == torch.float64
    assert torch.equal(clip.keypoints[2], torch.from_numpy(STANDING + (8, 0)))
    assert bool(clip.valid.all()) and clip.picked == (0, 0, 0) and clip.people == (1, 1, 1)


def test_openpose_values_are_unpadded_by_hand():
    # A 720x1280 frame at resolution 512: canvas 512x910, padded to 512x960 before normalising.
    # The neck written as (0.5, 0.25) is at (0.5·512, 0.25·960) = (256, 240) on the canvas
    # (0.25·910 = 227.5 would be the padding ignored).
    flat = [0.0] * 54
    flat[3:6] = [0.5, 0.25, 1.0]
    flat[24:27] = [0.375, 0.5, 1.0]  # right hip
    clip = parse_pose_keypoint([{"people": [{"pose_keypoints_2d": flat}], "canvas_width": 512,
                                 "canvas_height": 910}])
    assert clip.canvas == (512, 910)
    assert clip.keypoints[0, 1].tolist() == [256.0, 240.0]
    assert clip.keypoints[0, 8].tolist() == [192.0, 480.0]
    assert clip.valid[0].nonzero().flatten().tolist() == [1, 8]


@pytest.mark.parametrize("size", [(512, 910), (683, 512), (512, 512), (100, 70)])
def test_openpose_and_dwpose_of_the_same_pose_agree(size):
    width, height = size
    points = STANDING * min(width / 220, height / 270)
    from_openpose = parse_pose_keypoint([openpose_frame([(points, (4,))], width, height)])
    from_dwpose = parse_pose_keypoint([dwpose_frame([(points, (4,))], width, height)])
    assert torch.allclose(from_openpose.keypoints, from_dwpose.keypoints, atol=1e-9, equal_nan=True)
    assert torch.equal(from_openpose.valid, from_dwpose.valid)


def test_missing_points_are_nan_and_masked():
    clip = parse_pose_keypoint([dwpose_frame([(STANDING, (4, 7, 16))], 200, 300)])
    assert clip.valid[0].tolist() == [i not in (4, 7, 16) for i in range(18)]
    assert bool(clip.keypoints[0, [4, 7, 16]].isnan().all())
    assert not bool(clip.keypoints[0, clip.valid[0]].isnan().any())


def test_a_missing_point_does_not_make_pixels_look_normalised():
    # Only valid points decide the convention: the zeros of missing points are not counted.
    clip = parse_pose_keypoint([dwpose_frame([(STANDING, (0, 2))], 200, 300)])
    assert clip.keypoints[0, 1].tolist() == [100.0, 70.0]


def test_empty_people_and_people_without_points_give_empty_frames():
    frames = [dwpose_frame([(STANDING, ())], 200, 300), {"people": [], "canvas_width": 200, "canvas_height": 300},
              {"people": [person(STANDING, missing=range(18))], "canvas_width": 200, "canvas_height": 300},
              {"people": [{"pose_keypoints_2d": None}], "canvas_width": 200, "canvas_height": 300}]
    clip = parse_pose_keypoint(frames)
    assert clip.picked == (0, -1, -1, -1) and clip.people == (1, 0, 1, 1)
    assert not bool(clip.valid[1:].any()) and bool(clip.keypoints[1:].isnan().all())
    assert "no person in 3 frame(s)" in clip.describe()


def test_the_largest_person_is_picked_and_reported():
    small = STANDING * 0.5 + (200, 0)
    large = STANDING * 1.2 + (0, 10)
    frames = [dwpose_frame([(small, ()), (large, ())], 400, 400), dwpose_frame([(large, ()), (small, ())], 400, 400),
              dwpose_frame([(small, ()), (large, tuple(range(2, 18)))], 400, 400)]  # large: only nose and neck left
    clip = parse_pose_keypoint(frames)
    assert clip.picked == (1, 0, 0) and clip.people == (2, 2, 2)
    assert torch.allclose(clip.keypoints[0], torch.from_numpy(large)) and torch.allclose(clip.keypoints[1],
                                                                                      torch.from_numpy(large))
    assert torch.allclose(clip.keypoints[2], torch.from_numpy(small))
    assert clip.describe() == "person 1 of 2 (the largest) in 2 frame(s); person 2 of 2 (the largest) in 1 frame(s)"


def test_round_trip_through_pose_keypoint_in_pixels():
    frames = [dwpose_frame([(p, (5,))], 320, 240) for p in walking(2)]
    frames.append({"people": [], "canvas_width": 320, "canvas_height": 240})
    clip = parse_pose_keypoint(frames)
    written = to_pose_keypoint(clip)
    assert [f["canvas_width"] for f in written] == [320] * 3 and [len(f["people"]) for f in written] == [1, 1, 0]
    assert written[0]["people"][0]["pose_keypoints_2d"][15:18] == [0.0, 0.0, 0.0]
    assert written[0]["people"][0]["pose_keypoints_2d"][3:6] == [100.0, 70.0, 1.0]
    again = parse_pose_keypoint(written)
    assert torch.equal(again.valid, clip.valid)
    assert torch.allclose(again.keypoints, clip.keypoints, equal_nan=True)


@pytest.mark.parametrize("data, message", [
    (None, r"^pose: expected POSE_KEYPOINT: a non-empty list with one dict per frame .*got NoneType"),
    ([], r"^pose: expected POSE_KEYPOINT.*got an empty list"),
    (["frame"], r"^pose: frame 0 is a str, not a dict"),
    ([{"people": []}], r"^pose: frame 0: canvas_width is None; expected a whole number of pixels >= 1"),
    ([{"people": [], "canvas_width": 64, "canvas_height": 0}], r"^pose: frame 0: canvas_height is 0"),
    ([{"canvas_width": 64, "canvas_height": 64}], r"^pose: frame 0 has no 'people' list$"),
    ([{"animals": [], "canvas_width": 64, "canvas_height": 64}], r"animal pose, AP10K; a body pose is needed"),
    ([{"people": "x", "canvas_width": 64, "canvas_height": 64}], r"^pose: frame 0: 'people' is a str, not a list"),
    ([{"people": [{"pose_keypoints_2d": [0.0] * 75}], "canvas_width": 64, "canvas_height": 64}],
     r"^pose: frame 0, person 0: pose_keypoints_2d has 75 values; expected 54 .*BODY_25"),
    ([{"people": [{"pose_keypoints_2d": [math.nan] * 54}], "canvas_width": 64, "canvas_height": 64}],
     r"^pose: frame 0, person 0: pose_keypoints_2d holds values that are not finite numbers"),
    ([dwpose_frame([], 64, 64), dwpose_frame([], 64, 32)],
     r"^pose: frame 1 has a 64x32 canvas but frame 0 64x64; all frames of a clip share one canvas"),
])
def test_malformed_input_is_refused_naming_it(data, message):
    with pytest.raises(ValueError, match=message):
        parse_pose_keypoint(data, "pose")


def test_a_frame_is_read_on_its_own_convention():
    # the convention is decided per frame: frames from two producers in one list both come out right
    points = STANDING * 2
    clip = parse_pose_keypoint([dwpose_frame([(points, ())], 512, 640), openpose_frame([(points, ())], 512, 640)])
    assert torch.allclose(clip.keypoints[0], clip.keypoints[1], atol=1e-9)
    assert np.allclose(clip.keypoints[1].numpy(), points)
