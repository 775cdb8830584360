"""The workflows shipped in workflows/ (UI format) and workflows/api/ (their API-format twins): every
API workflow runs to completion in the real server on the bundled toy model and clip, as committed but
for its step counts; each UI workflow describes the same graph as its twin; ComfyUI serves them as the
pack's templates (``/workflow_templates`` lists them and ``/api/workflow_templates/<pack>/`` serves
them: what the frontend's Templates menu reads). ``benchmarks/workflows_as_committed.py`` runs them
unchanged."""

import json
from pathlib import Path

import av
import pytest

from support.comfy_host import PACK_FOLDER_NAME, REPO_ROOT
from support.toy_workflows import (FEW_STEPS, RUN_ORDER, SAVED_ADAPTER, WORKFLOWS, api_workflow,
                                   with_few_steps)
from support.workflow_format import UnknownNode, declared_inputs, dynamic_inputs, ui_to_api, without_meta

UI_FILES = sorted(WORKFLOWS.glob("*.json"))
API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))
TOY_SIZE = 32


def test_every_ui_workflow_has_an_api_twin_and_a_note():
    assert [p.name for p in UI_FILES] == [p.name for p in API_FILES]
    assert sorted(p.stem for p in API_FILES) == sorted(RUN_ORDER)
    for path in UI_FILES:
        notes = [n for n in json.loads(path.read_text())["nodes"] if n["type"] == "MarkdownNote"]
        assert len(notes) == 1 and "Change:" in notes[0]["widgets_values"][0], path.name


def skip_dynamic_inputs(ui: dict, object_info: dict) -> None:
    dynamic = dynamic_inputs(ui, object_info)
    if dynamic:
        pytest.skip(f"this host's {', '.join(dynamic)} are dynamic inputs, which the UI-format reading does not "
                    "model; the API twins run on it below")


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_each_ui_workflow_describes_the_same_graph_as_its_api_twin(comfy, path):
    object_info = comfy.object_info()
    skip_dynamic_inputs(json.loads(path.read_text()), object_info)
    queued = ui_to_api(json.loads(path.read_text()), object_info)
    twin = without_meta(api_workflow(path.stem))
    assert queued == twin
    assert declared_inputs(twin, object_info) == twin, "the twin sends only inputs the nodes declare"


def test_the_comparison_notices_a_changed_value_and_an_unknown_node(comfy):
    object_info = comfy.object_info()
    ui = json.loads(UI_FILES[0].read_text())
    skip_dynamic_inputs(ui, object_info)
    changed = next(n for n in ui["nodes"] if n["type"] == "MTX_GenerateVideo")
    changed["widgets_values"][0] = "a different prompt"
    assert ui_to_api(ui, object_info) != without_meta(api_workflow(UI_FILES[0].stem))
    changed["type"] = "SomeoneElsesNode"
    with pytest.raises(UnknownNode, match="SomeoneElsesNode"):
        ui_to_api(ui, object_info)


TEMPLATE_FOLDERS = ["example_workflows", "example", "examples", "workflow", "workflows"]
"""The folders ComfyUI serves a pack's templates from (``app/custom_node_manager.py``, 0.3.75 and 0.33):
it lists the JSON files of all of them, but serves ``/api/workflow_templates/<pack>/`` from the first
that exists, so any other of these folders in the pack would hide ``workflows/``."""


@pytest.mark.host_smoke
def test_workflows_is_the_only_template_folder_of_the_pack():
    assert WORKFLOWS.name == "workflows" and WORKFLOWS.parent == REPO_ROOT
    assert [name for name in TEMPLATE_FOLDERS if (REPO_ROOT / name).exists()] == ["workflows"]


@pytest.mark.host_smoke
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


def changed_inputs(before: dict, after: dict) -> set[tuple[str, str]]:
    """``(node id, input name)`` of every input whose value differs between two graphs of the same nodes."""
    assert {key: node["class_type"] for key, node in before.items()} == {
        key: node["class_type"] for key, node in after.items()}, "the same nodes"
    return {(key, name) for key, node in before.items()
            for name in node["inputs"].keys() | after[key]["inputs"].keys()
            if node["inputs"].get(name) != after[key]["inputs"].get(name)}


@pytest.mark.host_smoke
@pytest.mark.parametrize("name", RUN_ORDER)
def test_the_runs_change_only_step_counts_and_the_committed_ones_are_valid(comfy, name):
    """The runs below send the committed graph with fewer steps; the server never sees the committed
    step counts there, so they are checked against the nodes' declared ranges here (the benchmark
    runs them as they are)."""
    object_info = comfy.object_info()
    committed = api_workflow(name)
    stepped = {(key, step) for key, node in committed.items() for step in FEW_STEPS.get(node["class_type"], {})}
    assert changed_inputs(committed, with_few_steps(committed)) == stepped
    for key, step in stepped:
        node = committed[key]
        kind, options = object_info[node["class_type"]]["input"]["required"][step]
        assert kind == "INT" and options["min"] <= node["inputs"][step] <= options["max"], (name, key)


@pytest.mark.host_smoke
@pytest.mark.parametrize("name", RUN_ORDER)
def test_every_api_workflow_runs_on_the_toy_model_with_few_steps(toy_host, name):
    comfy = toy_host
    graph = with_few_steps(api_workflow(name))
    if name == "load_adapter_and_generate" and not (comfy.models_dir / "motion_adapters" / SAVED_ADAPTER).exists():
        assert comfy.run(with_few_steps(api_workflow("train_and_save_adapter")), timeout=900).status == "success"
    run = comfy.run(graph, timeout=900)
    assert run.status == "success", run.error

    savers = [key for key, node in graph.items() if node["class_type"] == "SaveVideo"]
    loaded = {node["inputs"]["frame_load_cap"] for node in graph.values()
              if node["class_type"] == "MTX_LoadReferenceVideo"}
    for key in savers:
        (video,) = saved_videos(comfy, run, key)
        assert frame_count_and_size(video) == (*loaded, (TOY_SIZE, TOY_SIZE)), "every frame loaded comes out"
    adapter_savers = [key for key, node in graph.items() if node["class_type"] == "MTX_SaveMotionAdapter"]
    for key in adapter_savers:
        saved = run.outputs(key)["text"][0].removeprefix("saved ")
        assert (comfy.models_dir / "motion_adapters" / saved).is_file()
    assert savers or adapter_savers, "every workflow leaves a file behind"
