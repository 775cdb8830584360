"""Load Reference Video in a real ComfyUI server, driven through the HTTP API."""

import shutil

import av
import numpy as np
import pytest
from PIL import Image

from support.clips import CONTAINERS, frame_index, write_index_clip
from support.comfy_host import PromptRejected


@pytest.fixture(scope="module")
def uploaded(comfy, tmp_path_factory):
    """Index clips (30 frames, 8 fps, 64x48) written into the host's input folder."""
    folder = tmp_path_factory.mktemp("upload")
    names = {}
    for kind in CONTAINERS:
        path = write_index_clip(folder / f"ref_{kind}", 30, fps=8, kind=kind)
        shutil.copy(path, comfy.input_dir / path.name)
        names[kind] = path.name
    return names


def load_and_save(video: str, prefix: str, **options) -> dict:
    settings = dict(frame_load_cap=0, skip_first_frames=0, select_every_nth=1, force_rate=0.0,
                    custom_width=0, custom_height=0) | options
    return {
        "1": {"class_type": "MTX_LoadReferenceVideo", "inputs": {"video": video, **settings}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }


def saved_frames(comfy, run, node="2") -> list[np.ndarray]:
    images = run.outputs(node)["images"]
    return [np.asarray(Image.open(comfy.output_dir / item["subfolder"] / item["filename"]).convert("RGB"))
            for item in images]


@pytest.mark.parametrize("kind", sorted(CONTAINERS))
def test_clip_runs_to_a_core_save_node(comfy, uploaded, kind):
    run = comfy.run(load_and_save(uploaded[kind], f"load_{kind}", frame_load_cap=6, skip_first_frames=1,
                                  select_every_nth=2, custom_width=32, custom_height=32))
    assert run.status == "success", run.error
    frames = saved_frames(comfy, run)
    assert len(frames) == 6
    assert all(frame.shape == (32, 32, 3) for frame in frames)
    assert [frame_index(frame) for frame in frames] == [1, 3, 5, 7, 9, 11]


def test_force_rate_and_fps_reach_downstream_nodes(comfy, uploaded):
    """fps feeds core CreateVideo/SaveVideo: the saved file plays at the loaded rate."""
    prompt = {
        "1": {"class_type": "MTX_LoadReferenceVideo",
              "inputs": {"video": uploaded["mp4"], "frame_load_cap": 8, "skip_first_frames": 0,
                         "select_every_nth": 2, "force_rate": 16.0, "custom_width": 0, "custom_height": 0}},
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": ["1", 2]}},
        "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "rate/clip",
                                                      "format": "mp4", "codec": "h264"}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "rate/frames"}},
    }
    run = comfy.run(prompt)
    assert run.status == "success", run.error
    # 16 fps resampling of an 8 fps clip repeats each frame twice; every 2nd keeps 0, 1, 2, ...
    assert [frame_index(f) for f in saved_frames(comfy, run, "4")] == list(range(8))
    saved = run.outputs("3")["images"][0]
    with av.open(str(comfy.output_dir / saved["subfolder"] / saved["filename"])) as container:
        assert float(container.streams.video[0].average_rate) == pytest.approx(8.0)


def rejection_text(comfy, prompt) -> str:
    with pytest.raises(PromptRejected) as caught:
        comfy.queue(prompt)
    return caught.value.messages()


@pytest.mark.parametrize("name, reason", [
    ("../comfyui.log", "outside"),
    ("/etc/passwd", "absolute path"),
    ("missing_clip.mp4", "not found"),
])
def test_bad_file_names_are_refused_before_running(comfy, name, reason):
    before = sorted(comfy.output_dir.rglob("*"))
    text = rejection_text(comfy, load_and_save(name, "refused"))
    assert "video:" in text and reason in text
    assert sorted(comfy.output_dir.rglob("*")) == before


def test_absurd_size_is_refused_before_running(comfy, uploaded):
    text = rejection_text(comfy, load_and_save(uploaded["mp4"], "huge", custom_width=100_000))
    assert "custom_width" in text and "8192" in text


@pytest.mark.parametrize("content, expected", [
    (b"not a video at all\n" * 50, "could not be opened as a video"),
    (b"", "is empty (0 bytes)"),
])
def test_unreadable_files_fail_with_a_clear_error(comfy, content, expected):
    name = f"broken_{len(content)}.mp4"
    (comfy.input_dir / name).write_bytes(content)
    before = sorted(comfy.output_dir.rglob("*"))
    run = comfy.run(load_and_save(name, "broken"))
    assert run.status == "error"
    assert run.error["node_type"] == "MTX_LoadReferenceVideo"
    assert run.error["exception_message"].startswith(f"video: '{name}'")
    assert expected in run.error["exception_message"]
    assert sorted(comfy.output_dir.rglob("*")) == before


def test_options_selecting_no_frame_fail_with_a_clear_error(comfy, uploaded):
    run = comfy.run(load_and_save(uploaded["webm"], "none", skip_first_frames=500))
    assert run.status == "error"
    assert "select no frame" in run.error["exception_message"]
