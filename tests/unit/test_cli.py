"""``python -m motion_core transfer`` as a user runs it: a real process, real files."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from motion_core.adapters import load_adapter
from motion_core.testing import write_tiny_text_to_video_folder
from motion_core.video import load_video
from support.clips import write_index_clip

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICK = ["--steps", "2", "--inversion-steps", "3", "--sampling-steps", "3", "--frames", "8"]


def moving_square(index: int) -> np.ndarray:
    picture = np.full((24, 32, 3), 30, np.uint8)
    picture[8:16, 2 + 3 * index : 10 + 3 * index] = (220, 40, 40)
    return picture


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model = write_tiny_text_to_video_folder(root / "tiny-t2v")
    clip = write_index_clip(root / "square.mp4", 10, fps=8, size=(32, 24), picture=moving_square)
    return model, clip


def command(model, clip, out, *extra):
    return [sys.executable, "-m", "motion_core", "transfer", "--model", str(model), "--video", str(clip),
            "--out", str(out), "--prompt", "a square is moving", *extra]


def run(args, **kwargs):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def two_targets_two_seeds(inputs, tmp_path_factory):
    """One transfer to two targets with two seeds each: its command, its result and its output folder,
    which the first test reads and writes to again; the adapter it saved is reused by another test."""
    model, clip = inputs
    out = tmp_path_factory.mktemp("two_targets_two_seeds")
    args = command(model, clip, out, "--target", "a blue circle", "--target", "a green star",
                   "--seeds", "0", "1", *QUICK)
    return args, run(args), out


def test_writes_a_video_per_target_and_seed_and_the_adapter_never_overwriting(two_targets_two_seeds):
    args, first, out = two_targets_two_seeds
    assert first.returncode == 0, first.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a_blue_circle_seed0_00001.mp4", "a_blue_circle_seed1_00001.mp4",
                     "a_green_star_seed0_00001.mp4", "a_green_star_seed1_00001.mp4", "adapter_00001.safetensors"]
    video = load_video(out / names[0])
    assert video.frames.shape == (8, 24, 32, 3) and video.fps == pytest.approx(8.0)
    adapter = load_adapter(out / "adapter_00001.safetensors")
    assert adapter.metadata["prompt"] == "a square is moving" and adapter.metadata["steps"] == "2"
    assert "train" in first.stderr and "loss" in first.stderr, "a progress bar with the loss"

    before = (out / names[0]).read_bytes()
    again = run(args)
    assert again.returncode == 0, again.stderr
    assert (out / "a_blue_circle_seed0_00002.mp4").is_file() and (out / names[0]).read_bytes() == before


def test_a_saved_adapter_is_used_instead_of_training(inputs, two_targets_two_seeds, tmp_path):
    model, clip = inputs
    _, trained, out = two_targets_two_seeds
    assert trained.returncode == 0, trained.stderr
    reused = run(command(model, clip, tmp_path, "--target", "x", "--adapter", str(out / "adapter_00001.safetensors"),
                         *QUICK))
    assert reused.returncode == 0, reused.stderr
    assert "train" not in reused.stderr.split("invert")[0].lower().replace("training", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_seed0_00001.mp4"]


def test_repeated_videos_train_one_adapter_on_every_clip_each_with_its_prompt(inputs, tmp_path):
    import json

    model, clip = inputs
    other = write_index_clip(tmp_path / "other.mp4", 10, fps=8, size=(32, 24), picture=lambda i: moving_square(9 - i))
    args = [sys.executable, "-m", "motion_core", "transfer", "--model", str(model), "--video", str(clip), "--video",
            str(other), "--prompt", "a square moves right", "--prompt", "a square moves left", "--target", "x",
            "--out", str(tmp_path / "out"), *QUICK]
    result = run(args)
    assert result.returncode == 0, result.stderr
    metadata = load_adapter(tmp_path / "out" / "adapter_00001.safetensors").metadata
    assert [r["prompt"] for r in json.loads(metadata["references"])] == ["a square moves right", "a square moves left"]
    assert (tmp_path / "out" / "x_seed0_00001.mp4").is_file()


def test_a_prompt_count_that_matches_neither_one_nor_every_video_exits_2_before_loading(inputs, tmp_path):
    model, clip = inputs
    result = run(command(model, clip, tmp_path / "out", "--video", str(clip), "--prompt", "b", "--prompt", "c",
                         "--target", "x", *QUICK))
    assert result.returncode == 2
    assert "error: --prompt: 3 prompts for 2 videos; give one --prompt for all of them or one per --video" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind, flags, options", [
    ("lora", ["--lora-rank", "4", "--spatial-lora"], {"rank": 4, "spatial": True}),
    ("motion_embeddings", ["--frame-slots", "16", "--debias", "camera"], {"frame_slots": 16}),
])
def test_each_parameterisation_trains_with_its_options_and_its_published_learning_rate(inputs, tmp_path, kind, flags,
                                                                                       options):
    model, clip = inputs
    result = run(command(model, clip, tmp_path, "--target", "x", "--parameterisation", kind, *flags, *QUICK))
    assert result.returncode == 0, result.stderr
    adapter = load_adapter(tmp_path / "adapter_00001.safetensors")
    assert adapter.kind == kind and adapter.options.items() >= options.items()
    assert float(adapter.metadata["lr"]) == type(adapter).default_lr
    assert (tmp_path / "x_seed0_00001.mp4").is_file()


def test_timestep_and_loss_weighting_flags_are_used_and_recorded(inputs, tmp_path):
    import json

    model, clip = inputs
    result = run(command(model, clip, tmp_path, "--target", "x", "--timestep-range", "0.6", "1", "--timestep-shift",
                         "2", "--loss-weighting", "min_snr", "--min-snr-gamma", "3", *QUICK))
    assert result.returncode == 0, result.stderr
    metadata = load_adapter(tmp_path / "adapter_00001.safetensors").metadata
    assert json.loads(metadata["timesteps"]) == {"low": 0.6, "high": 1.0, "shift": 2.0}
    assert json.loads(metadata["loss_weighting"]) == {"kind": "min_snr", "gamma": 3.0}


def test_options_of_another_parameterisation_exit_2_naming_the_flag(inputs, tmp_path):
    model, clip = inputs
    result = run(command(model, clip, tmp_path / "out", "--target", "x", "--lora-rank", "4", *QUICK))
    assert result.returncode == 2
    assert "error: --lora-rank: is an option of --parameterisation lora, not of temporal_attention" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, message", [
    (["--video", "missing.mp4"], "error: --video: 'missing.mp4' does not exist"),
    (["--adapter", "notes.txt"], "error: --adapter: 'notes.txt' is not a .safetensors file"),
    (["--objective", "nothing"], "error: --objective: 'nothing' is neither a preset"),
    (["--frames", "1"], "error: --video: 1 frame given; motion needs at least 2"),
    (["--timestep-shift", "0"], "error: --timestep-shift: 0.0 is not valid; use a number > 0"),
    (["--min-snr-gamma", "0"], "error: --min-snr-gamma: 0.0 is not valid; use a number > 0"),
    (["--loss-weighting", "snr"], "error: argument --loss-weighting: invalid choice: 'snr'"),
    (["--motion-module", "mm.safetensors"], "error: --motion-module: a ModelScope/ZeroScope-family text-to-video "
                                            "diffusers folder (model_index.json"),
])
def test_bad_input_exits_2_naming_the_option(inputs, tmp_path, change, message):
    model, clip = inputs
    options = {"--video": str(clip), "--target": "x"} | dict([change])
    args = command(model, clip, tmp_path / "out", *QUICK)[:4] + [item for pair in options.items() for item in pair]
    args += ["--model", str(model), "--out", str(tmp_path / "out"), *QUICK[:-2], "--frames", options.get("--frames", "8")]
    result = run(args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_animatediff_model_transfers_and_a_checkpoint_without_motion_module_is_refused(inputs, tmp_path):
    from motion_core.testing import tiny_clip_parts, tiny_unet2d, write_tiny_animatediff_folder
    from support.original_files import write_sd15_checkpoint

    _, clip = inputs
    model = write_tiny_animatediff_folder(tmp_path / "tiny-animatediff")
    result = run(command(model, clip, tmp_path / "out", "--target", "a blue circle", *QUICK))
    assert result.returncode == 0, result.stderr
    assert sorted(path.suffix for path in (tmp_path / "out").iterdir()) == [".mp4", ".safetensors"]
    assert load_adapter(next((tmp_path / "out").glob("*.safetensors"))).backbone.startswith("animatediff:")
    _, text_encoder, vae = tiny_clip_parts(tmp_path / "parts")
    checkpoint = write_sd15_checkpoint(tmp_path / "sd15.safetensors", tiny_unet2d(), vae, text_encoder)
    result = run(command(checkpoint, clip, tmp_path / "refused", "--target", "x", *QUICK))
    assert result.returncode == 2
    assert "error: --motion-module: 'sd15.safetensors' is a Stable Diffusion 1.5 checkpoint: choose a motion module" \
        in result.stderr


def test_a_wan_file_names_the_flags_of_the_files_it_needs(inputs, tmp_path):
    from support.wan_files import write_header_only_transformer, write_wan_files

    _, clip = inputs
    model = write_header_only_transformer(tmp_path / "wan2.1_t2v_1.3B_fp16.safetensors", 1536, 30)
    result = run(command(model, clip, tmp_path / "out", "--target", "x", *QUICK))
    assert result.returncode == 2
    assert "error: --vae: 'wan2.1_t2v_1.3B_fp16.safetensors' is a Wan transformer file: choose the Wan 2.1 VAE" \
        in result.stderr
    files = write_wan_files(tmp_path / "models")["files"]
    result = run(command(model, clip, tmp_path / "out", "--target", "x", "--vae", str(files["vae"]),
                         "--text-encoder", str(files["model"]), *QUICK))
    assert result.returncode == 2
    assert "error: --text-encoder: 'tiny-wan.safetensors' is not a UMT5 text encoder in ComfyUI's layout" \
        in result.stderr
    low = write_header_only_transformer(tmp_path / "wan2.2_t2v_low_noise_14B_fp16.safetensors", 5120, 40)
    result = run(command(model, clip, tmp_path / "out", "--target", "x", "--vae", str(files["vae"]),
                         "--text-encoder", str(files["text_encoder"]), "--low-noise-model", str(low), *QUICK))
    assert result.returncode == 2
    assert "error: --low-noise-model: 'wan2.2_t2v_low_noise_14B_fp16.safetensors' is Wan 2.1 T2V 14B (or a Wan 2.2 " \
           "T2V A14B expert) but the model 'wan2.1_t2v_1.3B_fp16.safetensors' is Wan 2.1 T2V 1.3B" in result.stderr
    assert not (tmp_path / "out").exists()


def test_ctrl_c_during_training_exits_130_and_leaves_no_file(inputs, tmp_path):
    model, clip = inputs
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    # a shell running in the background (CI, nohup) starts children with SIGINT ignored; a terminal's
    # Ctrl-C needs it handled, as in an interactive session
    process = subprocess.Popen(command(model, clip, tmp_path, "--target", "x", "--steps", "100000", "--frames", "8"),
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = bytearray()

    def read_stderr():
        while chunk := process.stderr.read1(256):
            seen.extend(chunk)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while b"loss" not in seen and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert b"loss" in seen, seen.decode(errors="replace")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 130
    finally:
        process.kill()
    reader.join(timeout=10)
    assert b"cancelled" in seen
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


# --- python -m motion_core edit ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def edit_inputs(tmp_path_factory):
    """A tiny AnimateDiff folder, a pose ControlNet file for it (diffusers keys, pose images at the tiny
    VAE's 2x), a clip of 8 frames and two clips' poses as Save Pose Keypoints writes them."""
    import json

    from diffusers import ControlNetModel
    from safetensors.torch import save_file

    from motion_core.testing import tiny_unet2d, write_tiny_animatediff_folder
    from support.poses import STANDING, dwpose_frame

    root = tmp_path_factory.mktemp("edit")
    model = write_tiny_animatediff_folder(root / "tiny-animatediff")
    controlnet = ControlNetModel.from_unet(tiny_unet2d(), conditioning_embedding_out_channels=(4, 8))
    save_file({k: v.contiguous() for k, v in controlnet.state_dict().items()}, root / "pose.safetensors")
    clip = write_index_clip(root / "square.mp4", 8, fps=8, size=(32, 24), picture=moving_square)
    small = STANDING * 0.08
    for name, step in (("source", 0.0), ("reference", 1.5)):
        frames = [dwpose_frame([(small + (4 + step * i, 2), ())], 32, 24) for i in range(8)]
        (root / f"{name}.pose.json").write_text(json.dumps(frames))
    return model, root / "pose.safetensors", clip, root / "source.pose.json", root / "reference.pose.json"


def edit_command(inputs, out, *extra):
    model, controlnet, clip, source, reference = inputs
    return [sys.executable, "-m", "motion_core", "edit", "--model", str(model), "--controlnet", str(controlnet),
            "--video", str(clip), "--pose", str(source), "--reference-pose", str(reference), "--prompt", "a square",
            "--out", str(out), "--frames", "8", "--subject-steps", "1", "--full-steps", "1", "--sampling-steps", "2",
            *extra]


def test_edit_writes_the_edited_clip_never_overwriting(edit_inputs, tmp_path):
    for expected in ("edit_a_square_00001.mp4", "edit_a_square_00002.mp4"):
        result = run(edit_command(edit_inputs, tmp_path))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"wrote {tmp_path / expected}"
    edited = load_video(str(tmp_path / "edit_a_square_00001.mp4"))
    assert edited.frames.shape == (8, 24, 32, 3)


def test_edit_bad_input_exits_2_naming_the_option(edit_inputs, tmp_path):
    import json

    short = tmp_path / "short.pose.json"
    short.write_text(json.dumps(json.loads(edit_inputs[3].read_text())[:3]))
    result = run(edit_command(edit_inputs, tmp_path, "--pose", str(short)))
    assert result.returncode == 2 and "error: --pose: has 3 frames but the clip has 8" in result.stderr
    result = run(edit_command(edit_inputs, tmp_path, "--reference-pose", str(tmp_path / "missing.json")))
    assert result.returncode == 2 and "error: --reference-pose: " in result.stderr
    assert not list(tmp_path.glob("*.mp4"))
