"""The pack's model in ComfyUI's memory manager, in a real server: a graph that loads the toy model
leaves it in ComfyUI's loaded-model list; training asks ComfyUI for its memory; ``POST /free`` with
``unload_models`` (what ComfyUI's "Unload models" button sends) removes it, and the next graph
loads it again and runs. The server's view comes from the harness's test probe (support/host_probe).
A pack that loaded its model outside the manager fails every test here."""

import time

import pytest

from support.toy_workflows import api_workflow, with_few_steps

pytestmark = pytest.mark.host_smoke

PACK_MODEL = "VideoModelWeights"
"""The class ComfyUI's loaded-model list shows for a model of the pack (nodes/memory.py)."""
WORKFLOW = "motion_transfer_vmc_sma"


def graph(seed: int) -> tuple[dict, dict[str, str]]:
    """The workflow with few steps and ``seed`` for training and noise (so its model nodes run again);
    and its node ids by class."""
    quick = with_few_steps(api_workflow(WORKFLOW))
    ids = {node["class_type"]: key for key, node in quick.items()}
    quick[ids["MTX_TrainMotionAdapter"]]["inputs"]["seed"] = seed
    quick[ids["MTX_InitialNoise"]]["inputs"]["seed"] = seed
    return quick, ids


def pack_models(comfy) -> list[dict]:
    return [entry for entry in comfy.memory()["loaded"] if entry["model"] == PACK_MODEL]


def run(comfy, seed: int) -> dict[str, str]:
    prompt, ids = graph(seed)
    result = comfy.run(prompt, timeout=900)
    assert result.status == "success", result.error
    return ids


def test_a_graph_that_loads_the_toy_model_leaves_it_in_comfyuis_loaded_models(toy_host):
    run(toy_host, seed=1)
    (entry,) = pack_models(toy_host)
    assert entry["size"] > 0 and entry["loaded"] == entry["size"], "registered and loaded completely"


def test_training_asks_comfyui_for_its_memory_before_it_runs(toy_host):
    toy_host.forget_requests()
    ids = run(toy_host, seed=2)
    requests = toy_host.memory()["requests"]
    by_node = {request["node"]: request for request in requests if request["models"] == [PACK_MODEL]}
    train = by_node.get(ids["MTX_TrainMotionAdapter"])
    assert train is not None, f"training never asked ComfyUI to load the model: {requests}"
    assert train["memory_required"] > 0 and train["force_full_load"]
    for node in ("MTX_InvertVideo", "MTX_GenerateVideo", "MTX_DecodeVideo"):
        assert ids[node] in by_node, f"{node} computed without asking ComfyUI: {requests}"
    assert train["memory_required"] > by_node[ids["MTX_InvertVideo"]]["memory_required"], "backward needs more"


def test_unloading_all_models_removes_it_and_the_next_graph_loads_it_again(toy_host):
    run(toy_host, seed=3)
    assert pack_models(toy_host)
    toy_host.free(unload_models=True)
    deadline = time.monotonic() + 60
    while pack_models(toy_host):
        assert time.monotonic() < deadline, f"still loaded after POST /free: {toy_host.memory()['loaded']}"
        time.sleep(0.2)
    run(toy_host, seed=4)
    assert pack_models(toy_host), "the next graph loaded it through ComfyUI again"
