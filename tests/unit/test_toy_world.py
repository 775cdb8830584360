"""motion_core.toy: the toy world draws what its captions say, and the tracker measures it back.

World: a seed fixes a clip; every named motion moves the way its name says; the object never leaves
the frame; captions name colour, shape and (unless the path is random) motion. Tracker: recovers the
generator's centres and sizes, colour and shape on clean and noisy clips; motion fidelity is 1 for
the same motion, -1 for the opposite and about 0 for unrelated ones; motion words name every motion.
"""

import numpy as np
import pytest

from motion_core.errors import InputError
from motion_core.toy.tracker import Track, motion_fidelity, motion_word, track
from motion_core.toy.world import (ALL_MOTIONS, COLOURS, DIRECTIONS, MOTION_PHRASES, MOTIONS, RANDOM, SHAPES,
                                   make_clip, random_clip, to_image_tensor)

ALL_PAIRS = [(shape, colour) for shape in SHAPES for colour in COLOURS]


def with_noise(frames, std, seed=0):
    return np.clip(frames + np.random.default_rng(seed).normal(0, std, frames.shape), 0, 1).astype(np.float32)


def winding(centres, about):
    """Total signed angle swept around ``about``; positive is clockwise on screen (y down)."""
    angles = np.arctan2(centres[:, 1] - about[1], centres[:, 0] - about[0])
    return np.sum((np.diff(angles) + np.pi) % (2 * np.pi) - np.pi)


# --- world ---------------------------------------------------------------------------------------------


def test_same_seed_same_clip_other_seed_other_clip():
    first = random_clip(seed=11)
    again = random_clip(seed=11)
    assert np.array_equal(first.frames, again.frames) and first.caption == again.caption
    assert not np.array_equal(first.frames, random_clip(seed=12).frames)
    named = make_clip("star", "blue", "left", seed=3)
    assert np.array_equal(named.frames, make_clip("star", "blue", "left", seed=3).frames)
    assert not np.array_equal(named.frames, make_clip("star", "blue", "left", seed=4).frames)


@pytest.mark.parametrize("frames, width, height", [(16, 32, 32), (8, 48, 32)])
def test_frames_are_comfyui_images(frames, width, height):
    clip = make_clip("circle", "red", "right", frames=frames, width=width, height=height)
    assert clip.frames.shape == (frames, height, width, 3) and clip.frames.dtype == np.float32
    assert clip.frames.min() >= 0 and clip.frames.max() <= 1
    assert clip.centres.shape == (frames, 2) and clip.sizes.shape == (frames,)
    assert tuple(to_image_tensor(clip).shape) == (frames, height, width, 3)


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_straight_motions_move_the_way_their_name_says(name):
    step_x, step_y = DIRECTIONS[name]
    for seed in range(3):
        clip = make_clip("square", "green", name, seed=seed)
        dx, dy = np.diff(clip.centres, axis=0).T
        for step, delta in ((step_x, dx), (step_y, dy)):
            if step == 0:
                assert np.allclose(delta, 0)
            else:
                assert np.all(np.sign(delta) == step)  # monotone, the named way
        assert np.allclose(np.diff(clip.sizes), 0)


def test_circle_is_one_clockwise_turn_around_the_frame_centre():
    for seed in range(3):
        clip = make_clip("star", "white", "circle", seed=seed)
        centre = np.array([16.0, 16.0])
        radii = np.linalg.norm(clip.centres - centre, axis=1)
        assert np.allclose(radii, radii[0]) and radii[0] > 3
        turn = winding(clip.centres, centre)
        assert np.all(np.diff(np.unwrap(np.arctan2(*(clip.centres - centre).T[::-1]))) > 0)  # clockwise at every step
        assert turn == pytest.approx(2 * np.pi * 15 / 16)


@pytest.mark.parametrize("name, sign", [("zoom in", 1), ("zoom out", -1)])
def test_zooms_grow_or_shrink_in_place(name, sign):
    clip = make_clip("triangle", "yellow", name, seed=5)
    assert np.all(np.sign(np.diff(clip.sizes)) == sign)
    assert clip.sizes.max() / clip.sizes.min() == pytest.approx(2.0)
    assert np.allclose(clip.centres, clip.centres[0])


def test_bounce_rises_and_falls_twice_from_the_floor():
    clip = make_clip("circle", "red", "bounce", seed=2)
    x, y = clip.centres.T
    assert np.allclose(x, x[0])
    assert y[0] == y.max() == pytest.approx(y[-1])  # starts and ends on the floor (largest y)
    turns = np.count_nonzero(np.diff(np.sign(np.diff(y)[np.abs(np.diff(y)) > 1e-6])))
    assert turns >= 3 and np.ptp(y) > 5  # up, down, up, down


def test_random_paths_are_smooth_and_change_speed():
    clip = make_clip("circle", "blue", RANDOM, seed=9)
    speeds = np.linalg.norm(np.diff(clip.centres, axis=0), axis=1)
    assert speeds.max() > 2 * speeds.min()
    assert np.ptp(clip.centres, axis=0).max() > 4


@pytest.mark.parametrize("motion", ALL_MOTIONS)
def test_the_object_stays_inside_the_frame(motion):
    clips = [make_clip(shape, "white", motion, seed=seed) for shape in SHAPES for seed in range(3)]
    if motion == RANDOM:
        clips += [make_clip(SHAPES[seed % 4], "white", RANDOM, seed=100 + seed) for seed in range(50)]
    for clip in clips:
        frames = clip.frames
        border = np.concatenate([frames[:, 0], frames[:, -1], frames[:, :, 0], frames[:, :, -1]], axis=1)
        assert np.allclose(border, clip.background), clip.caption  # the outermost pixels are all background


def test_captions_name_colour_shape_and_motion():
    assert make_clip("circle", "red", "left").caption == "a red circle moving left"
    assert make_clip("square", "blue", "zoom in").caption == "a blue square zooming in"
    assert make_clip("star", "green", "circle").caption == "a green star moving in a circle"
    assert make_clip("triangle", "yellow", "bounce").caption == "a yellow triangle bouncing"
    assert make_clip("circle", "white", "up-left").caption == "a white circle moving up and left"
    for seed in range(20):
        clip = random_clip(seed)
        assert clip.caption == f"a {clip.colour} {clip.shape} {MOTION_PHRASES[clip.motion]}"


def test_random_paths_get_the_generic_caption():
    assert make_clip("circle", "red", RANDOM, seed=4).caption == "a red circle moving"
    assert {random_clip(seed, motions=[RANDOM]).caption.split()[-1] for seed in range(10)} == {"moving"}


def test_unknown_names_are_refused_with_the_valid_ones():
    with pytest.raises(InputError, match="hexagon.*circle"):
        make_clip("hexagon", "red", "left")
    with pytest.raises(InputError, match="sideways"):
        make_clip("circle", "red", "sideways")


# --- tracker -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, colour", ALL_PAIRS)
def test_tracker_recovers_centres_sizes_colour_and_shape_of_clean_clips(shape, colour):
    for motion in ("random", "zoom out"):  # zoom out reaches the smallest sizes (~5 px)
        clip = make_clip(shape, colour, motion, seed=SHAPES.index(shape) * 10 + len(colour))
        measured = track(clip.frames)
        assert measured.found.all()
        assert np.abs(measured.centres - clip.centres).max() < 1.0  # measured: < 0.14 px
        assert np.abs(measured.sizes / clip.sizes - 1).max() < 0.15  # measured: < 3 %
        assert (measured.colour, measured.shape) == (colour, shape)


def test_colour_and_shape_are_classified_perfectly_on_every_clean_combination():
    wrong = []
    for index, motion in enumerate(MOTIONS):
        for shape, colour in ALL_PAIRS:
            measured = track(make_clip(shape, colour, motion, frames=8, seed=index).frames)
            if (measured.colour, measured.shape) != (colour, shape):
                wrong.append((shape, colour, motion, measured.colour, measured.shape))
    assert wrong == []


@pytest.mark.parametrize("shape", SHAPES)
def test_tracker_works_under_gaussian_noise(shape):
    for seed, colour in enumerate(COLOURS):
        clip = make_clip(shape, colour, RANDOM, seed=seed)
        measured = track(with_noise(clip.frames, 0.1, seed))
        assert measured.found.all()
        assert np.abs(measured.centres - clip.centres).max() < 2.0  # measured: < 0.3 px
        assert np.abs(measured.sizes / clip.sizes - 1).max() < 0.2  # measured: < 11 %
        assert (measured.colour, measured.shape) == (colour, shape)  # measured: 100 % over all motions


def test_an_empty_frame_has_no_object():
    clip = make_clip("circle", "red", "right", frames=8)
    frames = clip.frames.copy()
    frames[3] = clip.background
    measured = track(with_noise(frames, 0.05))
    assert measured.found.tolist() == [True] * 3 + [False] + [True] * 4
    assert np.isnan(measured.centres[3]).all()
    assert not track(np.zeros((4, 32, 32, 3), np.float32)).found.any()


# --- motion fidelity and motion words ------------------------------------------------------------------


def test_motion_fidelity_is_one_for_the_same_motion_anywhere_and_at_any_scale():
    reference = track(make_clip("circle", "red", RANDOM, seed=1).frames)
    assert motion_fidelity(reference, reference) == pytest.approx(1.0)
    moved = Track(reference.centres * 0.5 + 3.0, reference.sizes, reference.found, "red", "circle", 32, 32)
    assert motion_fidelity(reference, moved) == pytest.approx(1.0)  # offset and amplitude do not count
    upscaled = Track(reference.centres * 2, reference.sizes * 2, reference.found, "red", "circle", 64, 64)
    assert motion_fidelity(reference, upscaled) == pytest.approx(1.0)  # nor does resolution


def test_motion_fidelity_is_minus_one_for_the_reversed_path():
    left = track(make_clip("square", "blue", "left", seed=2).frames)
    backwards = Track(left.centres[::-1], left.sizes[::-1], left.found[::-1], "blue", "square", 32, 32)
    assert motion_fidelity(left, backwards) == pytest.approx(-1.0, abs=0.01)  # played backwards
    assert motion_fidelity(left, track(make_clip("star", "red", "right", seed=5).frames)) == pytest.approx(-1, abs=0.01)
    path = track(make_clip("circle", "red", RANDOM, seed=3).frames)
    mirrored = Track(32 - path.centres, path.sizes, path.found, "red", "circle", 32, 32)
    assert motion_fidelity(path, mirrored) == pytest.approx(-1.0)  # every step the opposite way


def test_motion_fidelity_is_about_zero_for_unrelated_motions():
    scores = [motion_fidelity(track(make_clip("circle", "red", RANDOM, seed=2 * seed).frames),
                              track(make_clip("square", "green", RANDOM, seed=2 * seed + 1).frames))
              for seed in range(20)]
    assert abs(np.mean(scores)) < 0.15  # measured: -0.03 (std 0.26 over single pairs)
    up, left = (track(make_clip("circle", "red", name, seed=1).frames) for name in ("up", "left"))
    assert motion_fidelity(up, left) == pytest.approx(0.0, abs=0.02)  # perpendicular, not opposite


def test_motion_fidelity_sees_zooms_only_with_sizes():
    zoom_in, zoom_out = (track(make_clip("circle", "red", name, seed=1).frames) for name in ("zoom in", "zoom out"))
    assert motion_fidelity(zoom_in, zoom_in, include_size=True) == pytest.approx(1.0)
    assert motion_fidelity(zoom_in, zoom_out, include_size=True) < -0.9
    still = Track(np.zeros((16, 2)), np.ones(16), np.ones(16, bool), "red", "circle", 32, 32)
    assert np.isnan(motion_fidelity(still, zoom_in))  # no motion: no direction to compare


@pytest.mark.parametrize("motion", MOTIONS)
def test_motion_word_names_every_motion_of_clean_clips(motion):
    for seed, shape in enumerate(SHAPES):
        assert motion_word(track(make_clip(shape, "white", motion, seed=seed).frames)) == motion


@pytest.mark.parametrize("motion", ["left", "down-right", "circle", "zoom in", "bounce"])
def test_motion_word_survives_noise_and_fewer_frames(motion):
    clip = make_clip("star", "blue", motion, frames=8, seed=7)
    assert motion_word(track(with_noise(clip.frames, 0.1))) == motion


def test_motion_word_is_unclear_without_motion():
    clip = make_clip("circle", "red", "left", frames=8)
    still = np.repeat(clip.frames[:1], 8, axis=0)
    assert motion_word(track(still)) == "unclear"
