"""Motion fidelity (docs/METHODS.md §10) on clips whose motion is known: a texture panned or zoomed, a
textured patch moved along a path. The expected scores follow from the directions of the steps."""

import math

import numpy as np
import pytest
import torch

from motion_core.errors import InputError
from motion_core.fidelity import motion_fidelity, track_similarity
from motion_core.video import load_video, write_video
from support.motion_clips import circle, pan, patch_along, zoom

SIZE = 128


def right(seed=0, **kw):
    return pan((3, 0), size=SIZE, seed=seed, **kw)


@pytest.mark.parametrize("make", [
    pytest.param(lambda: right(), id="pan"),
    pytest.param(lambda: zoom(1.04, size=SIZE), id="zoom"),
    pytest.param(lambda: patch_along(circle(16, 12), size=SIZE, background_seed=100), id="patch-on-texture"),
])
@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_a_clip_scores_1_against_itself_and_at_least_095_against_a_reencoded_copy(tmp_path, make, suffix):
    clip = make()
    assert motion_fidelity(clip, clip).score == pytest.approx(1.0, abs=1e-6)
    copy = load_video(write_video(clip, tmp_path / f"copy{suffix}", fps=8)).frames
    result = motion_fidelity(clip, copy)
    assert result.score >= 0.95 and result.symmetric >= 0.95, result


def test_the_same_motion_on_other_content_scores_1():
    assert motion_fidelity(right(), right(seed=5)).score > 0.99
    assert motion_fidelity(zoom(1.04, size=SIZE), zoom(1.04, size=SIZE, seed=4)).score > 0.99
    path = circle(16, 12)
    assert motion_fidelity(patch_along(path, size=SIZE), patch_along(path, size=SIZE, seed=7)).score > 0.99


@pytest.mark.parametrize("step, expected", [
    ((3 * math.cos(math.pi / 3), 3 * math.sin(math.pi / 3)), 0.5),  # cos 60°
    ((2, 2), math.sqrt(0.5)),  # cos 45°
    ((0, 3), 0.0),  # at a right angle
    ((-3, 0), -1.0),  # the opposite way
])
def test_pans_score_the_cosine_of_the_angle_between_them(step, expected):
    result = motion_fidelity(right(), pan(step, size=SIZE, seed=5))
    assert result.score == pytest.approx(expected, abs=0.03)
    assert result.reverse == pytest.approx(expected, abs=0.03)


def test_a_patch_on_a_path_against_shifted_and_mirrored_paths():
    reference = patch_along(circle(16, 12), size=SIZE)
    quarter_later = patch_along(circle(16, 12, phase=0.25), size=SIZE, seed=7)  # every step turned by 90°
    mirrored = patch_along(circle(16, 12, mirrored=True), size=SIZE, seed=7)  # every step reversed
    assert motion_fidelity(reference, quarter_later).score == pytest.approx(0.0, abs=0.05)
    assert motion_fidelity(reference, mirrored).score == pytest.approx(-1.0, abs=0.05)


def test_opposite_motion_scores_low_over_a_cluttered_background():
    """Occlusion edges make a few short erratic tracks: opposite motion then scores about 0, not -1
    (each step's best match is a track that barely moves)."""
    reference = patch_along(circle(16, 12), size=SIZE, background_seed=100)
    mirrored = patch_along(circle(16, 12, mirrored=True), size=SIZE, seed=7, background_seed=101)
    assert motion_fidelity(reference, mirrored).score < 0.2


def test_clips_of_other_lengths_are_compared_at_evenly_spaced_frames():
    slow, fast = pan((2, 0), frames=16, size=SIZE), pan((4, 0), frames=8, size=SIZE, seed=3)
    result = motion_fidelity(slow, fast)
    assert result.frames == 8 and result.score > 0.99


def test_only_the_symmetric_score_sees_motion_left_out():
    """Each pan track finds a zoom track stepping its way; most zoom tracks find no pan track."""
    result = motion_fidelity(zoom(1.04, size=SIZE), right(seed=4))
    assert result.score > 0.95
    assert result.reverse == pytest.approx(0.0, abs=0.2) and result.symmetric < 0.65


def test_a_frozen_generated_clip_scores_0():
    reference = right()
    result = motion_fidelity(reference, reference[:1].repeat(12, 1, 1, 1))
    assert result.score == 0.0 and result.generated_tracks == 0
    assert "nothing moves in the generated clip" in result.text()


def test_sizes_and_aspect_ratios_may_differ():
    reference = right()
    wide = torch.nn.functional.interpolate(reference.permute(0, 3, 1, 2), size=(160, 240), mode="bilinear")
    assert motion_fidelity(reference, wide.permute(0, 2, 3, 1).clamp(0, 1)).score > 0.98


def test_the_similarity_is_the_mean_per_step_cosine():
    steps = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    other = np.array([[2.0, 0.0], [2.0, 0.0], [-1.0, 0.0]])
    tracks = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])[None]
    others = np.concatenate([np.zeros((1, 2)), np.cumsum(other, axis=0)])[None]
    # cosines 1, 0, 1 (up to the 0.1 px still component)
    assert track_similarity(tracks, others)[0, 0] == pytest.approx(2 / 3, abs=0.01)
    still = np.zeros((1, 4, 2))
    assert track_similarity(still, still)[0, 0] == pytest.approx(1.0), "standing still agrees with standing still"
    assert abs(track_similarity(still, tracks)[0, 0]) < 0.1, "and not with moving"


@pytest.mark.parametrize("generated, message", [
    (torch.rand(1, 64, 64, 3), "generated_frames: 1 frame(s): motion needs at least 2"),
    (torch.rand(4, 64, 64), "generated_frames: expected IMAGE frames (frames, height, width, 3), got (4, 64, 64)"),
    (torch.full((6, 64, 64, 3), 0.5), "generated_frames: no trackable features (corners) in the first frame"),
    (torch.rand(6, 64, 64, 3, generator=torch.Generator().manual_seed(0)),
     "generated_frames: no point could be followed through all 6 frames"),
])
def test_unusable_frames_are_refused_naming_the_input(generated, message):
    with pytest.raises(InputError) as err:
        motion_fidelity(right(frames=6), generated)
    assert str(err.value).startswith(message)


def test_a_reference_in_which_nothing_moves_is_refused():
    with pytest.raises(InputError, match="reference_frames: nothing moves in the reference"):
        motion_fidelity(pan((0, 0), size=SIZE), right())
