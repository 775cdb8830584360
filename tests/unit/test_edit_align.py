"""The skeleton offset: one similarity puts the reference skeleton on the source subject (docs/METHODS.md §7)."""

import numpy as np
import pytest
import torch

from motion_core.edit import SIZE_MEASURES, align_reference, parse_pose_keypoint, skeleton_offset
from support.poses import ARMS_UP, STANDING, dwpose_frame, openpose_frame, walking


def clip(frames, width=400, height=400, missing=(), frame=dwpose_frame):
    return parse_pose_keypoint([frame([(points, missing)], width, height) for points in frames])


def test_measures_are_torso_then_height():
    assert SIZE_MEASURES == ("torso", "height")


@pytest.mark.parametrize("size", SIZE_MEASURES)
def test_a_scaled_shifted_copy_of_the_source_comes_back_exactly(size):
    source_frames = walking(5, step=(6, 1), start=(40, 60))
    # the reference: the same motion at 0.4 times the size elsewhere on another (OpenPose) canvas
    reference_frames = [p * 0.4 + (300, 20) for p in source_frames]
    source = clip(source_frames, 512, 512)
    reference = clip(reference_frames, 683, 512, frame=openpose_frame)
    aligned, similarity = align_reference(source, reference, anchor=2, size=size)
    assert similarity.scale == pytest.approx(2.5, rel=1e-12)
    assert similarity.offset == pytest.approx((-750.0, -50.0), abs=1e-9)
    assert aligned.canvas == (512, 512) and aligned.frames == 5
    assert torch.allclose(aligned.keypoints, source.keypoints, atol=1e-9, rtol=0)


def test_the_reference_keeps_its_own_movement():
    source = clip([STANDING + (50, 20)] * 4)
    reference = clip(walking(4, step=(10, -2), points=STANDING * 2))  # twice the size, walking
    aligned, similarity = align_reference(source, reference)
    assert similarity.scale == pytest.approx(0.5)
    assert torch.allclose(aligned.keypoints[0], source.keypoints[0])  # on the subject at the anchor
    steps = aligned.keypoints[1:] - aligned.keypoints[:-1]
    assert torch.allclose(steps, torch.tensor([5.0, -1.0], dtype=torch.float64).expand_as(steps))


def test_torso_ignores_raised_arms_where_the_box_height_does_not():
    source = clip([STANDING])
    reference = clip([ARMS_UP])  # the same person, arms up: the box is 250 px tall instead of 215
    assert skeleton_offset(source, reference, size="torso").scale == pytest.approx(1.0)
    assert skeleton_offset(source, reference, size="height").scale == pytest.approx(215 / 250)


def test_only_points_present_in_both_anchor_frames_count():
    # the source lacks its right wrist and ankle; the reference's are present but far off (a long
    # reach): by the box of all its points the reference would look taller and be shrunk
    reference_points = STANDING.copy()
    reference_points[[4, 10]] = [(72, 400), (86, 420)]
    source = clip([STANDING * 1.5], missing=(4, 10))
    reference = clip([reference_points])
    for size in SIZE_MEASURES:
        similarity = skeleton_offset(source, reference, size=size)
        assert similarity.scale == pytest.approx(1.5), size
        assert similarity.offset == pytest.approx((0.0, 0.0), abs=1e-9), size


def test_missing_reference_points_stay_missing():
    source = clip([STANDING])
    reference = clip(walking(3), missing=(7,))
    aligned, _ = align_reference(source, reference)
    assert torch.equal(aligned.valid, reference.valid) and bool(aligned.keypoints[:, 7].isnan().all())
    assert not bool(aligned.keypoints[:, :7].isnan().any())


def test_one_hip_present_in_both_is_enough_for_the_torso():
    source = clip([STANDING + (10, 0)], missing=(8,))
    reference = clip([STANDING * 2], missing=(11,))
    # neither clip's hips are both present in both: no mid-hip to measure
    with pytest.raises(ValueError, match=r"^anchor_frame: frame 0 lacks the torso .*right_hip, left_hip.*'height'"):
        skeleton_offset(source, reference)
    reference = clip([STANDING * 2], missing=(8,))
    similarity = skeleton_offset(source, reference)
    # torso: neck (100, 70) to left hip (112, 150) in the source, twice that in the reference
    assert similarity.scale == pytest.approx(0.5)
    assert similarity.offset == pytest.approx((10.0, 0.0))


def test_anchor_outside_either_clip_is_refused():
    source, reference = clip(walking(4)), clip(walking(6))
    with pytest.raises(ValueError, match=r"^anchor_frame: 4 is not a frame of both clips \(the source has 4 frames, "
                                         r"the reference 6\); use 0 to 3"):
        skeleton_offset(source, reference, anchor=4)
    aligned, _ = align_reference(source, reference, anchor=3)
    assert aligned.frames == 6  # every reference frame is aligned


def test_no_person_in_the_anchor_frame_names_the_clip():
    source = parse_pose_keypoint([{"people": [], "canvas_width": 64, "canvas_height": 64},
                                  dwpose_frame([(STANDING, ())], 64, 64)])
    reference = clip(walking(2))
    with pytest.raises(ValueError, match=r"^source_pose: frame 0 has no person; choose another anchor_frame"):
        skeleton_offset(source, reference)
    assert skeleton_offset(source, reference, anchor=1).scale == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"^reference_pose: frame 0 has no person"):
        skeleton_offset(reference, source)


def test_a_skeleton_without_extent_and_a_bad_measure_are_refused():
    flat = clip([np.tile([(50.0, 60.0)], (18, 1))])
    with pytest.raises(ValueError, match=r"^source_pose: the skeleton in frame 0 has no extent"):
        skeleton_offset(flat, clip([STANDING]))
    with pytest.raises(ValueError, match=r"^size_measure: 'width' is not valid; use one of torso, height"):
        skeleton_offset(clip([STANDING]), clip([STANDING]), size="width")


def test_align_pose_keypoint_checks_the_image_size():
    from motion_core.edit import align_pose_keypoint

    frames = [dwpose_frame([(STANDING, ())], 200, 300)]
    result = align_pose_keypoint(frames, frames)
    assert result.images.shape == (1, 300, 200, 3) and result.similarity.scale == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"^width: -8 is not valid; use 0 \(the source canvas\) to 8192 pixels"):
        align_pose_keypoint(frames, frames, width=-8)
