"""The toy skeleton: OpenPose's 18 points as a stick figure whose torso follows the toy object."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from motion_core.edit import POINT_NAMES, align_reference, parse_pose_keypoint, skeleton_offset
from motion_core.toy import skeleton, world
from motion_core.toy.examples import example_clip

ROOT = Path(__file__).resolve().parents[2]


def _clip(seed=3):
    return world.make_clip("star", "green", "random", frames=6, seed=seed)


def test_pose_keypoint_reads_back_exactly_in_pixels_of_the_clip():
    clip = _clip()
    data = skeleton.toy_pose_keypoint(clip)
    assert len(data) == 6 and (data[0]["canvas_width"], data[0]["canvas_height"]) == (32, 32)
    assert len(data[0]["people"]) == 1 and len(data[0]["people"][0]["pose_keypoints_2d"]) == 3 * len(POINT_NAMES)
    parsed = parse_pose_keypoint(json.loads(json.dumps(data)))
    assert parsed.canvas == (32, 32) and bool(parsed.valid.all())
    np.testing.assert_array_equal(parsed.keypoints.numpy(), skeleton.skeleton_points(clip.centres, clip.sizes))


def test_the_torso_is_centred_on_the_object_and_half_its_size_long():
    clip = _clip()
    points = skeleton.skeleton_points(clip.centres, clip.sizes)
    neck, mid_hip = points[:, 1], points[:, [8, 11]].mean(1)
    np.testing.assert_allclose((neck + mid_hip) / 2, clip.centres, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(neck - mid_hip, axis=1), skeleton.TORSO_RATIO * clip.sizes, rtol=1e-12)
    # upright and facing the camera: head above the neck, hips above the ankles, right side on the image's left
    assert (points[:, 0, 1] < neck[:, 1]).all() and (points[:, 10, 1] > points[:, 8, 1]).all()
    assert (points[:, 2, 0] < points[:, 5, 0]).all()


def test_a_scaled_shifted_clip_aligns_exactly_onto_the_original():
    source = _clip()
    scale, shift = 0.6, np.array([-4.0, 7.0])
    reference = skeleton.skeleton_clip(source.centres * scale + shift, source.sizes * scale, 48, 40)
    own = skeleton.clip_skeleton(source)
    similarity = skeleton_offset(own, reference)
    assert similarity.scale == pytest.approx(1 / scale, rel=1e-12)
    aligned, _ = align_reference(own, reference)
    torch.testing.assert_close(aligned.keypoints, own.keypoints, atol=1e-9, rtol=0)


def test_pose_images_are_the_skeleton_drawn_on_the_object():
    clip = _clip()
    images = skeleton.pose_images(clip)
    assert images.shape == (6, 32, 32, 3) and images.dtype == torch.float32
    drawn = images.amax(-1) > 0
    ys, xs = np.mgrid[0:32, 0:32] + 0.5
    for mask, centre, size in zip(drawn.numpy(), clip.centres, clip.sizes):
        centroid = np.array([xs[mask].mean(), ys[mask].mean()])
        assert np.linalg.norm(centroid - centre) < 0.25 * size  # the figure sits on the object
        assert 0.5 * size**2 < mask.sum() < 4 * size**2


def test_the_bundled_pose_files_are_the_skeletons_of_the_bundled_clips(tmp_path):
    for name in ("red_square_wander", "blue_triangle_twin"):
        shipped = json.loads((ROOT / "assets" / "toy" / f"{name}.pose.json").read_text())
        assert shipped == json.loads(json.dumps(skeleton.toy_pose_keypoint(example_clip(name))))
    (tmp_path / "a.mp4").touch()
    (tmp_path / "a.json").write_text(json.dumps({"centres": [[10, 12]], "sizes": [8], "width": 32, "height": 24}))
    assert skeleton.main(["--write-assets", "--folder", str(tmp_path)]) == 0
    parsed = parse_pose_keypoint(json.loads((tmp_path / "a.pose.json").read_text()))
    assert parsed.canvas == (32, 24) and parsed.keypoints[0, 1].tolist() == [10.0, 10.0]  # the neck: 0.5·4 above
