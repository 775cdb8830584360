"""The toy demo: its method table, the bundled reference clips, and one run end to end on a tiny model."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from motion_core.adapters import ADAPTER_KINDS
from motion_core.errors import InputError
from motion_core.noise import STRATEGIES
from motion_core.objectives import ObjectiveSpec
from motion_core.sampling import TimestepDistribution
from motion_core.toy import demo, examples, model, tracker, train_model, world
from motion_core.toy.methods import METHODS
from motion_core.train import TrainOptions
from motion_core.video import load_video


# --- methods ---------------------------------------------------------------------------------------


def test_every_method_trains_a_known_kind_with_a_valid_objective_and_noise():
    assert list(METHODS) == ["vmc", "vmc+sma", "motiondirector", "motion-inversion"]
    for name, method in METHODS.items():
        assert method.name == name
        assert method.kind in ADAPTER_KINDS
        assert isinstance(method.spec(), ObjectiveSpec)
        assert method.noise in STRATEGIES


def test_the_methods_are_the_published_combinations():
    kinds = {name: method.kind for name, method in METHODS.items()}
    assert kinds == {"vmc": "temporal_attention", "vmc+sma": "temporal_attention", "motiondirector": "lora",
                     "motion-inversion": "motion_embeddings"}
    assert METHODS["vmc+sma"].spec() == ObjectiveSpec()
    vmc = METHODS["vmc"].spec()
    assert (vmc.base_loss, vmc.sma_global_weight, vmc.sma_local_weight) == ("vmc", 0, 0)
    for name in ("motiondirector", "motion-inversion"):
        spec = METHODS[name].spec()
        assert (spec.base_loss, spec.sma_global_weight, spec.sma_local_weight) == ("motion_director", 0, 0)


def test_only_motion_inversion_trains_at_high_noise_as_the_toy_measurements_chose():
    """The papers draw t uniformly; on the toy model only Motion Inversion's embeddings gained from t >= 0.6
    (BENCHMARKS.md, "Memorisation and transfer from fresh noise"), so only its default differs."""
    timesteps = {name: method.train_options().timesteps for name, method in METHODS.items()}
    assert timesteps.pop("motion-inversion") == TimestepDistribution(0.6, 1.0)
    assert all(distribution.uniform for distribution in timesteps.values())
    assert TrainOptions().timesteps.uniform, "the library's default stays the released code's uniform draw"


# --- bundled clips ---------------------------------------------------------------------------------


def test_the_examples_are_held_out_random_paths_of_the_model_size():
    for name, (shape, colour, seed) in examples.EXAMPLES.items():
        clip = examples.example_clip(name)
        assert seed >= train_model.HELD_OUT_SEEDS, "no bundled clip may have been seen in training"
        assert (clip.shape, clip.colour, clip.motion) == (shape, colour, world.RANDOM)
        assert clip.frames.shape == (model.FRAMES, model.HEIGHT, model.WIDTH, 3)
        assert clip.caption == f"a {colour} {shape} moving"
    seeds = [seed for *_, seed in examples.EXAMPLES.values()]
    assert len(set(seeds)) == len(seeds)


def test_a_twin_shows_its_examples_motion_in_another_look():
    for name, (source, shape, colour, background) in examples.TWINS.items():
        twin, original = examples.example_clip(name), examples.example_clip(source)
        assert np.array_equal(twin.centres, original.centres) and np.array_equal(twin.sizes, original.sizes)
        assert (twin.shape, twin.colour, twin.background) == (shape, colour, world.BACKGROUNDS[background])
        assert twin.caption == f"a {colour} {shape} moving" and not np.allclose(twin.frames, original.frames)
        seen = tracker.track(twin.frames)
        assert (seen.shape, seen.colour) == (shape, colour)
        assert tracker.motion_fidelity(tracker.track(original.frames), seen) > 0.95


def test_a_longer_example_is_its_examples_look_at_the_toy_wan_models_clip_length():
    for name, (source, frames) in examples.LONGER.items():
        longer, original = examples.example_clip(name), examples.example_clip(source)
        assert longer.frames.shape == (frames, model.HEIGHT, model.WIDTH, 3)
        assert (longer.shape, longer.colour, longer.caption) == (original.shape, original.colour, original.caption)
        assert longer.background == original.background and np.array_equal(longer.sizes[:1], original.sizes[:1])
    assert examples.LONGER["red_square_nine"][1] == 9, "Wan's 1 + 4k frames, the toy Wan model's clip length"


def test_an_example_is_the_same_clip_every_time():
    name = next(iter(examples.EXAMPLES))
    first, second = examples.example_clip(name), examples.example_clip(name)
    assert np.array_equal(first.frames, second.frames) and np.array_equal(first.centres, second.centres)


def test_an_unknown_example_is_refused_by_name():
    with pytest.raises(InputError, match="clip: 'purple_blob' is not a bundled example"):
        examples.example_clip("purple_blob")


def test_written_examples_hold_the_clips_and_their_ground_truth(tmp_path):
    written = examples.write_examples(tmp_path)
    assert sorted(written) == sorted(examples.example_files(tmp_path))
    for name in examples.EXAMPLES:
        clip = examples.example_clip(name)
        truth = json.loads((tmp_path / f"{name}.json").read_text())
        assert truth["caption"] == clip.caption
        assert np.array_equal(np.array(truth["centres"]), clip.centres), "JSON floats round-trip exactly"
        video = load_video(tmp_path / f"{name}.mp4")
        assert video.frames.shape == clip.frames.shape and video.fps == examples.FPS
        assert np.abs(video.frames.numpy() - clip.frames).mean() < 0.02, "H.264 at crf 16 keeps the pictures"


def test_writing_the_examples_again_refuses_and_leaves_the_files_alone(tmp_path):
    examples.write_examples(tmp_path)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    (tmp_path / "red_square_wander.json").unlink()  # even a partly present set is not mixed with new files
    with pytest.raises(InputError, match="already exist.*never overwritten"):
        examples.write_examples(tmp_path)
    assert not (tmp_path / "red_square_wander.json").exists()
    assert all(path.read_bytes() == before[path.name] for path in tmp_path.iterdir())
    assert examples.main([str(tmp_path)]) == 2


def test_the_repository_ships_the_examples():
    for path in examples.example_files(examples.FOLDER):
        assert path.is_file(), f"{path} is missing: run python -m motion_core.toy.examples"
    for name in examples.EXAMPLES:
        truth = json.loads((examples.FOLDER / f"{name}.json").read_text())
        assert np.array_equal(np.array(truth["centres"]), examples.example_clip(name).centres)


# --- the demo --------------------------------------------------------------------------------------


def test_target_words_finds_the_world_colour_and_shape():
    assert demo.target_words("A blue circle moving") == ("blue", "circle")
    assert demo.target_words("a tank in the desert") == (None, None)


def test_enlarge_repeats_each_pixel_in_a_block():
    frames = torch.arange(2 * 2 * 3 * 3, dtype=torch.float32).reshape(2, 2, 3, 3)
    big = demo.enlarge(frames, 4)
    assert big.shape == (2, 8, 12, 3)
    assert torch.equal(big[:, ::4, ::4], frames) and torch.equal(big[:, 3::4, 3::4], frames)


def quick(model_folder, out, *more):
    return ["--model", str(model_folder), "--steps", "2", "--inversion-steps", "2", "--sampling-steps", "2",
            "--out", str(out), *more]


def test_the_demo_writes_video_gif_and_comparison_and_never_overwrites(trained_briefly, tmp_path, capsys):
    assert demo.main(quick(trained_briefly, tmp_path)) == 0
    printed = capsys.readouterr().out
    names = ["a_blue_circle_moving_00001.mp4", "a_blue_circle_moving_00001.gif",
             "a_blue_circle_moving_comparison_00001.png"]
    for name in names:
        assert f"wrote {tmp_path / name}" in printed
    assert "motion fidelity" in printed and "colour" in printed and "shape" in printed
    assert "(the same noise without the adapter: " in printed, "what the adapter itself adds"

    video = load_video(tmp_path / names[0])
    assert video.frames.shape == (model.FRAMES, model.HEIGHT, model.WIDTH, 3) and video.fps == examples.FPS
    gif = load_video(tmp_path / names[1])
    assert gif.frames.shape == (model.FRAMES, model.HEIGHT * demo.GIF_SCALE, model.WIDTH * demo.GIF_SCALE, 3)
    picture = Image.open(tmp_path / names[2])
    rows = 2 * model.HEIGHT * 3 + 4  # report.side_by_side: two rows of frames at 3x, 4 px apart, square panel
    assert picture.size == (model.FRAMES * (model.WIDTH * 3 + 4) - 4 + 4 + rows, rows)

    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert demo.main(quick(trained_briefly, tmp_path, "--method", "motiondirector")) == 0
    after = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert set(after) - set(before) == {name.replace("00001", "00002") for name in names}
    assert all(after[name] == content for name, content in before.items())


@pytest.mark.parametrize("method", ["vmc", "motion-inversion"])
def test_every_method_runs(trained_briefly, tmp_path, method, capsys):
    """Each method trains its own kind and writes a whole clip of the model's size with its summary."""
    clip = list(examples.EXAMPLES)[1]
    more = ("--method", method, "--clip", clip, "--target", "a white star")
    assert demo.main(quick(trained_briefly, tmp_path, *more)) == 0
    printed = capsys.readouterr()
    assert f"method {METHODS[method].name}" in printed.err and "motion fidelity" in printed.out
    video = load_video(tmp_path / "a_white_star_00001.mp4")
    assert video.frames.shape == (model.FRAMES, model.HEIGHT, model.WIDTH, 3)


def test_a_video_file_is_a_reference_too(trained_briefly, tmp_path, capsys):
    examples.write_examples(tmp_path / "clips")
    clip = tmp_path / "clips" / "yellow_circle_wander.mp4"
    assert demo.main(quick(trained_briefly, tmp_path / "out", "--clip", str(clip))) == 0
    assert "'a shape moving'" in capsys.readouterr().err, "a file's default prompt names no colour or shape"


def test_a_missing_clip_exits_2_naming_clip(trained_briefly, tmp_path, capsys):
    assert demo.main(quick(trained_briefly, tmp_path, "--clip", str(tmp_path / "missing.mp4"))) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --clip:") and "missing.mp4" in error
    assert not any(tmp_path.iterdir()), "nothing is written for bad input"


def test_a_missing_model_exits_2_saying_how_to_train_one(tmp_path, capsys):
    assert demo.main(quick(tmp_path / "no_model", tmp_path)) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --model:") and "python -m motion_core.toy.train_model" in error


def test_a_step_count_below_1_exits_2_naming_its_flag(tmp_path, capsys):
    assert demo.main(quick(tmp_path / "no_model", tmp_path, "--sampling-steps", "0")) == 2
    assert capsys.readouterr().err.startswith("error: --sampling-steps: 0 is not valid")
