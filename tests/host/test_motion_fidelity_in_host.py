"""Motion Fidelity in a real ComfyUI server: two loaded clips scored, the score shown on the node."""

import pytest

from motion_core.video import write_video
from support.motion_clips import pan


@pytest.fixture(scope="module")
def clips(comfy):
    """Three 12-frame clips in the host's input folder: a pan right, another texture panning right, a pan left."""
    names = {}
    for name, step, seed in (("right", (3, 0), 0), ("right_again", (3, 0), 5), ("left", (-3, 0), 5)):
        names[name] = write_video(pan(step, frames=12, size=96, seed=seed), comfy.input_dir / f"pan_{name}.mp4",
                                  fps=8).name
    return names


def fidelity_graph(reference: str, generated: str, cap: int = 0) -> dict:
    def loader(video):
        return {"class_type": "MTX_LoadReferenceVideo",
                "inputs": {"video": video, "frame_load_cap": cap, "skip_first_frames": 0, "select_every_nth": 1,
                           "force_rate": 0.0, "custom_width": 0, "custom_height": 0}}

    return {"1": loader(reference), "2": loader(generated),
            "3": {"class_type": "MTX_MotionFidelity",
                  "inputs": {"reference_frames": ["1", 0], "generated_frames": ["2", 0]}}}


@pytest.mark.parametrize("generated, shown", [("right_again", "motion fidelity 1.000"),
                                              ("left", "motion fidelity -1.000")])
def test_the_score_shows_on_an_unconnected_node(comfy, clips, generated, shown):
    run = comfy.run(fidelity_graph(clips["right"], clips[generated]))
    assert run.status == "success", run.error
    (text,) = run.outputs("3")["text"]
    assert text.startswith(shown)


def test_a_single_frame_stops_with_a_message_naming_the_input(comfy, clips):
    run = comfy.run(fidelity_graph(clips["right"], clips["left"], cap=1))
    assert run.status == "error"
    assert run.error["exception_message"].startswith("reference_frames: 1 frame(s): motion needs at least 2")
