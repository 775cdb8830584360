"""Load Reference Video as a node class: what execute returns, how it validates and caches."""

import json
import shutil

import pytest

from motion_core.video import FrameSelection, load_video
from support.clips import frame_index, write_index_clip

DEFAULTS = dict(frame_load_cap=0, skip_first_frames=0, select_every_nth=1, force_rate=0.0,
                custom_width=0, custom_height=0)


@pytest.fixture
def node(pack):
    return pack.nodes.video.LoadReferenceVideo


@pytest.fixture
def clip(input_dir):
    return write_index_clip(input_dir / "walk", 20, fps=10, kind="webm")


def test_execute_returns_frames_count_fps_and_info(node, clip):
    output = node.execute(clip.name, **DEFAULTS | dict(frame_load_cap=5, select_every_nth=2, custom_width=32))
    frames, count, fps, info = output.args
    expected = load_video(clip, FrameSelection(frame_load_cap=5, select_every_nth=2, custom_width=32))
    assert frames.shape == (5, 24, 32, 3) and count == 5 and fps == pytest.approx(5.0)
    assert (frames == expected.frames).all()
    assert [frame_index(f.numpy()) for f in frames] == [0, 2, 4, 6, 8]
    assert json.loads(json.dumps(info)) == info  # plain data: survives ComfyUI's cache and the API
    assert info["source_indices"] == [0, 2, 4, 6, 8]


def test_listing_shows_the_input_folder_videos(node, input_dir, clip):
    (input_dir / "notes.txt").write_text("not a clip")
    options = node.GET_SCHEMA().inputs[0].options
    assert clip.name in options and "notes.txt" not in options


@pytest.mark.parametrize("name, reason", [
    ("../walk.webm", "points outside the input folder"),
    ("/etc/passwd", "is an absolute path"),
    ("nothing.mp4", "not found in the input folder"),
])
def test_validation_names_the_input_and_hides_server_paths(node, clip, input_dir, name, reason):
    message = node.validate_inputs(name)
    assert message.startswith("video: ") and reason in message
    assert str(input_dir) not in message
    assert node.validate_inputs(clip.name) is True


def test_fingerprint_changes_when_the_file_is_replaced(node, clip, tmp_path):
    before = node.fingerprint_inputs(clip.name)
    assert node.fingerprint_inputs(clip.name) == before
    other = write_index_clip(tmp_path / "other", 7, fps=10, kind="webm")
    shutil.copy(other, clip)
    assert node.fingerprint_inputs(clip.name) != before


def test_cancel_stops_loading(node, clip):
    import comfy.model_management

    comfy.model_management.interrupt_current_processing(True)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            node.execute(clip.name, **DEFAULTS)
    finally:
        comfy.model_management.interrupt_current_processing(False)
