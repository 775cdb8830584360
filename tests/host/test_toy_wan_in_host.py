"""The whole motion transfer graph on the toy Wan model (the repository's `models/toy-wan`, a Wan
diffusers folder) in a real ComfyUI server: 9 frames in, a LoRA trained, exported in ComfyUI's Wan
LoRA format, and a generated clip out."""

import shutil
from pathlib import Path

import pytest
from PIL import Image

from host.test_pipeline_in_host import transfer_graph
from motion_core.toy import examples, model

TOY_WAN = Path(__file__).resolve().parents[2] / "models" / "toy-wan"
CLIP, FRAMES = "red_square_nine.mp4", 9


@pytest.fixture(scope="module")
def prepared(comfy):
    shutil.copytree(TOY_WAN, comfy.models_dir / "diffusers" / "toy-wan", dirs_exist_ok=True)
    shutil.copy(examples.FOLDER / CLIP, comfy.input_dir)  # the bundled 9-frame clip (the Wan workflow's too)
    return comfy


def test_the_toy_wan_model_runs_the_whole_graph_and_exports_a_comfyui_wan_lora(prepared):
    comfy = prepared
    graph = transfer_graph(train_steps=3, prefix="toy_wan")
    graph["1"]["inputs"].update(video=CLIP, frame_load_cap=FRAMES)
    graph["2"]["inputs"]["model_name"] = "toy-wan"
    graph["4"]["inputs"].update(base_loss="motion_director", sma_global_weight=0.0, sma_local_weight=0.0)
    graph["5"]["inputs"].update(prompt="a red square moving", parameterisation="lora", lr=5e-4)
    graph["8"]["inputs"]["prompt"] = "a blue circle moving"
    graph["13"] = {"class_type": "MTX_ExportMotionLoRA",
                   "inputs": {"adapter": ["5", 0], "filename_prefix": "toy_wan_motion"}}
    run = comfy.run(graph, timeout=600)
    assert run.status == "success", run.error.get("exception_message") if run.error else run.error
    frames = run.outputs("10")["images"]
    assert len(frames) == FRAMES  # Wan's 4k + 1: all nine frames kept
    first = Image.open(comfy.output_dir / frames[0]["subfolder"] / frames[0]["filename"])
    assert first.size == (model.WIDTH, model.HEIGHT)
    assert run.outputs("13")["text"] == ["saved toy_wan_motion_00001.safetensors"]
    assert "toy_wan_motion_00001.safetensors" in comfy.get("/models/loras").json(), \
        "ComfyUI's LoRA loaders list the export"
