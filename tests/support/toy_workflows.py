"""The committed example workflows (``workflows/api/``) on the bundled toy model and clip.

The host tests run each of them with few steps (``with_few_steps``): the graph, the nodes and every
other value stay as committed, so a broken node, link or value still fails there, in seconds.
``benchmarks/workflows_as_committed.py`` runs them unchanged and prints how long each takes.
"""

from __future__ import annotations

import copy
import json
import shutil

from support.comfy_host import REPO_ROOT, ComfyHost

WORKFLOWS = REPO_ROOT / "workflows"
RUN_ORDER = ["motion_transfer_vmc_sma", "train_and_save_adapter", "load_adapter_and_generate",
             "motion_transfer_motiondirector", "motion_transfer_motion_inversion", "animatediff_motion_lora",
             "train_on_two_clips"]
"""Every API workflow; the saved-adapter one after the one that saves it."""
SAVED_ADAPTER = "toy_red_square_00001.safetensors"
"""What train_and_save_adapter writes first, and load_adapter_and_generate loads."""

FEW_STEPS = {"MTX_TrainMotionAdapter": 2, "MTX_InvertVideo": 2, "MTX_GenerateVideo": 2}
"""The ``steps`` input of these node types, where a test needs the graph to run but not to learn
anything: every loop still runs more than once, in seconds instead of minutes."""


def api_workflow(name: str) -> dict:
    """The committed API-format twin of workflow ``name``."""
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())


def with_few_steps(graph: dict) -> dict:
    """A copy of ``graph`` whose training, inversion and sampling nodes take ``FEW_STEPS`` steps."""
    quick = copy.deepcopy(graph)
    for node in quick.values():
        if node["class_type"] in FEW_STEPS:
            node["inputs"]["steps"] = FEW_STEPS[node["class_type"]]
    return quick


def provide_toy_files(host: ComfyHost) -> None:
    """What the workflows' notes tell a user to copy: the toy models and a toy clip."""
    for name in ("toy-t2v", "toy-animatediff"):
        model = host.models_dir / "diffusers" / name
        if not model.exists():
            shutil.copytree(REPO_ROOT / "models" / name, model)
    for clip in ("red_square_wander.mp4", "blue_triangle_twin.mp4"):
        shutil.copy(REPO_ROOT / "assets" / "toy" / clip, host.input_dir)
