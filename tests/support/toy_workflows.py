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
             "train_on_two_clips", "wan_motion_transfer", "edit_motion"]
"""Every API workflow; the saved-adapter one after the one that saves it."""
TOY_CONTROLNET = REPO_ROOT / "models" / "toy-pose-controlnet" / "toy_pose_controlnet.safetensors"
"""The toy AnimateDiff model's pose ControlNet, which the editing workflow's note has a user copy to
``models/controlnet``."""
SAVED_ADAPTER = "toy_red_square_00001.safetensors"
"""What train_and_save_adapter writes first, and load_adapter_and_generate loads."""

FEW_STEPS = {"MTX_TrainMotionAdapter": {"steps": 2}, "MTX_InvertVideo": {"steps": 2},
             "MTX_GenerateVideo": {"steps": 2}, "MTX_EditVideo": {"steps": 2},
             "MTX_TrainMotionEdit": {"subject_steps": 1, "full_steps": 1}}
"""The step inputs of these node types, where a test needs the graph to run but not to learn anything:
every loop still runs, in seconds instead of minutes."""


def api_workflow(name: str) -> dict:
    """The committed API-format twin of workflow ``name``."""
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())


def with_few_steps(graph: dict) -> dict:
    """A copy of ``graph`` whose training, inversion and sampling nodes take ``FEW_STEPS`` steps."""
    quick = copy.deepcopy(graph)
    for node in quick.values():
        node["inputs"].update(FEW_STEPS.get(node["class_type"], {}))
    return quick


def provide_toy_files(host: ComfyHost) -> None:
    """What the workflows' notes tell a user to copy: the toy models and a toy clip."""
    for name in ("toy-t2v", "toy-animatediff", "toy-wan"):
        model = host.models_dir / "diffusers" / name
        if not model.exists():
            shutil.copytree(REPO_ROOT / "models" / name, model)
    for clip in ("red_square_wander.mp4", "blue_triangle_twin.mp4", "red_square_nine.mp4",
                 "red_square_wander.pose.json",
                 "green_star_wander.pose.json"):
        shutil.copy(REPO_ROOT / "assets" / "toy" / clip, host.input_dir)
    shutil.copy(TOY_CONTROLNET, host.models_dir / "controlnet")
