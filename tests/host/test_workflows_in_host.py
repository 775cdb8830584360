"""The workflows shipped in workflows/ (UI format) and example_workflows/api/ (their API-format twins): every
API workflow runs to completion, as committed, in the real server on the bundled toy model and clip;
each UI workflow describes the same graph as its twin; ComfyUI serves them as the pack's templates."""

import json
from pathlib import Path

import av
import pytest

from support.comfy_host import PACK_FOLDER_NAME, REPO_ROOT
from support.workflow_format import UnknownNode, declared_inputs, ui_to_api, without_meta

WORKFLOWS = REPO_ROOT / "example_workflows"
UI_FILES = sorted(WORKFLOWS.glob("*.json"))
API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))
RUN_ORDER = ["motion_transfer_vmc_sma", "train_and_save_adapter", "load_adapter_and_generate",
             "motion_transfer_motiondirector", "motion_transfer_motion_inversion"]
"""Every API workflow; the saved-adapter one after the one that saves it."""
SAVED_ADAPTER = "toy_red_square_00001.safetensors"
"""What train_and_save_adapter writes first, and load_adapter_and_generate loads."""
TOY_FRAMES, TOY_SIZE = 8, 32


def api_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())


def test_every_ui_workflow_has_an_api_twin_and_a_note():
    assert [p.name for p in UI_FILES] == [p.name for p in API_FILES]
    assert sorted(p.stem for p in API_FILES) == sorted(RUN_ORDER)
    for path in UI_FILES:
        notes = [n for n in json.loads(path.read_text())["nodes"] if n["type"] == "MarkdownNote"]
        assert len(notes) == 1 and "Change:" in notes[0]["widgets_values"][0], path.name


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_each_ui_workflow_describes_the_same_graph_as_its_api_twin(comfy, path):
    object_info = comfy.object_info()
    queued = ui_to_api(json.loads(path.read_text()), object_info)
    twin = without_meta(api_workflow(path.stem))
    assert queued == twin
    assert declared_inputs(twin, object_info) == twin, "the twin sends only inputs the nodes declare"


def test_the_comparison_notices_a_changed_value_and_an_unknown_node(comfy):
    object_info = comfy.object_info()
    ui = json.loads(UI_FILES[0].read_text())
    changed = next(n for n in ui["nodes"] if n["type"] == "MTX_GenerateVideo")
    changed["widgets_values"][0] = "a different prompt"
    assert ui_to_api(ui, object_info) != without_meta(api_workflow(UI_FILES[0].stem))
    changed["type"] = "SomeoneElsesNode"
    with pytest.raises(UnknownNode, match="SomeoneElsesNode"):
        ui_to_api(ui, object_info)


def test_the_server_lists_and_serves_them_as_the_packs_templates(comfy):
    listed = comfy.get("/workflow_templates").json()
    assert sorted(listed[PACK_FOLDER_NAME]) == sorted(p.stem for p in UI_FILES), "api/ twins are not templates"
    served = comfy.get(f"/api/workflow_templates/{PACK_FOLDER_NAME}/{UI_FILES[0].name}")
    assert served.status_code == 200 and served.json() == json.loads(UI_FILES[0].read_text())


def saved_videos(comfy, run, node: str) -> list[Path]:
    return [comfy.output_dir / item["subfolder"] / item["filename"] for item in run.outputs(node)["images"]]


def frame_count_and_size(path: Path) -> tuple[int, tuple[int, int]]:
    with av.open(str(path)) as container:
        frames = [frame for frame in container.decode(video=0)]
    return len(frames), (frames[0].width, frames[0].height)


@pytest.mark.parametrize("name", RUN_ORDER)
def test_every_api_workflow_runs_as_committed_on_the_toy_model(toy_host, name):
    comfy = toy_host
    graph = api_workflow(name)
    if name == "load_adapter_and_generate" and not (comfy.models_dir / "motion_adapters" / SAVED_ADAPTER).exists():
        assert comfy.run(api_workflow("train_and_save_adapter"), timeout=900).status == "success"
    run = comfy.run(graph, timeout=900)
    assert run.status == "success", run.error

    savers = [key for key, node in graph.items() if node["class_type"] == "SaveVideo"]
    for key in savers:
        (video,) = saved_videos(comfy, run, key)
        assert frame_count_and_size(video) == (TOY_FRAMES, (TOY_SIZE, TOY_SIZE))
    adapter_savers = [key for key, node in graph.items() if node["class_type"] == "MTX_SaveMotionAdapter"]
    for key in adapter_savers:
        saved = run.outputs(key)["text"][0].removeprefix("saved ")
        assert (comfy.models_dir / "motion_adapters" / saved).is_file()
    assert savers or adapter_savers, "every workflow leaves a file behind"
