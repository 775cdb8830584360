"""Any input, any time: every node of the pack, driven with widget values drawn across all that its
declared schema allows, in the real ComfyUI server, on the toy models.

Users reach every value a schema allows, through the canvas and through scripts. So for each node
the server lists as the pack's (nodes added later are fuzzed without a change here), graphs are
built whose widget values are drawn at random inside the node's ``/object_info`` declaration:
numbers at their minimum, at their maximum and between (on their ``step``), every combo option, both
booleans, empty, long and odd-unicode strings, optional inputs present and absent. Socket inputs are
fed by small fixed chains on the toy models (``SOCKETS``), and a node's output is used by the next
node of the pipeline (``USED_BY``), so that a fuzzed value is not only accepted but used.

Every run must succeed, or stop with one of the pack's own errors (``motion_core/errors.py``) whose
message starts with the input to change, as ``InputError`` does ("steps: ..."): an input of the node
that raised it, or of a node upstream of it (training refuses a Motion Objective's
``vmc_frame_stride`` too large for the clip). Never a raw torch / diffusers / numpy exception, never
a hang; after every failure the server must still run the next graph.

The draws are seeded (``MTX_FUZZ_SEED`` changes the seed, ``MTX_FUZZ_ROUNDS`` multiplies the number
of graphs). Inputs whose largest values cost minutes are drawn up to a documented cap
(``COST_CAPS``); their declared maximum is queued once each and cancelled after a few seconds.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time

import pytest

from support.comfy_host import REPO_ROOT, pack_nodes
from support.poses import STANDING, dwpose_frame, openpose_frame, walking
from support.schema_fuzz import (ABSENT, STRINGS, SUMMARY, Draws, Graph, Input, Outcome, broken_rule, draw_plan,
                                 node_inputs, presence_draws, run_outcome, widget_draws)

SEED = int(os.environ.get("MTX_FUZZ_SEED", "20261130"))
ROUNDS = int(os.environ.get("MTX_FUZZ_ROUNDS", "1"))
MIN_GRAPHS = 10
"""Graphs per node (more for a node with an input of more cases, such as a long combo)."""
GRAPH_TIMEOUT = 120
"""Seconds a fuzzed graph may take before it counts as a hang (they take about a second)."""

WORLDS = ("toy-t2v", "toy-animatediff")
"""The models a graph runs on (one of them each): the two bundled toy models."""

CLIP = "red_square_wander.mp4"
CLIP_FRAMES = 8

# -- what feeds a socket ----------------------------------------------------------------------------
# Each recipe adds a small fixed chain to the graph on the graph's toy model and returns the link
# (or, for a type no node of the host makes, the literal value a script would send).


def reference_frames(g: Graph, world: str) -> list:
    return [g.add("clip", "MTX_LoadReferenceVideo", video=CLIP, frame_load_cap=CLIP_FRAMES), 0]


def video_info(g: Graph, world: str) -> list:
    return [g.add("clip", "MTX_LoadReferenceVideo", video=CLIP, frame_load_cap=CLIP_FRAMES), 3]


def video_model(g: Graph, world: str) -> list:
    return [g.add(f"model.{world}", "MTX_LoadVideoModel", model_name=world), 0]


def clean_latents(g: Graph, world: str) -> list:
    return [g.add("latents", "MTX_EncodeReference", model=video_model(g, world), frames=reference_frames(g, world)), 0]


def inverted_noise(g: Graph, world: str) -> list:
    return [g.add("inverted", "MTX_InvertVideo", model=video_model(g, world), latents=clean_latents(g, world),
                  steps=2), 0]


def trained(kind: str):
    def adapter(g: Graph, world: str) -> list:
        return [g.add(f"adapter.{kind}", "MTX_TrainMotionAdapter", model=video_model(g, world),
                      latents=clean_latents(g, world), parameterisation=kind, steps=1), 0]
    adapter.__name__ = f"trained_{kind}"
    return adapter


def stacked_adapters(g: Graph, world: str) -> list:
    return [g.add("stack", "MTX_CombineMotionAdapters", adapter_a=trained("temporal_attention")(g, world),
                  adapter_b=trained("lora")(g, world), strength_b=0.5), 0]


def added_clip(g: Graph, world: str) -> list:
    """The reference again as a second training clip, with its own prompt."""
    return [g.add("references", "MTX_AddTrainingClip", latents=clean_latents(g, world), prompt="a square moving"), 0]


def motion_guidance(g: Graph, world: str) -> list:
    return [g.add("guidance", "MTX_MotionGuidance", latents=clean_latents(g, world)), 0]


def vmc_sma_objective(g: Graph, world: str) -> list:
    return [g.add("objective.vmc", "MTX_MotionObjective"), 0]


def motion_director_objective(g: Graph, world: str) -> list:
    return [g.add("objective.md", "MTX_MotionObjective", base_loss="motion_director"), 0]


def lora_options(g: Graph, world: str) -> list:
    return [g.add("options.lora", "MTX_LoRAOptions", rank=4, alpha=4.0), 0]


def embedding_options(g: Graph, world: str) -> list:
    return [g.add("options.embeddings", "MTX_MotionEmbeddingOptions", frame_slots=CLIP_FRAMES), 0]


def dwpose_walk(g: Graph, world: str) -> dict:
    """A person walking right, as comfyui_controlnet_aux's DWPose node outputs it (sent as a literal:
    ``{"__value__": ...}`` is how the API carries a list that is not a link)."""
    return {"__value__": [dwpose_frame([(points, ())], 256, 320) for points in walking(CLIP_FRAMES)]}


def openpose_arms_up(g: Graph, world: str) -> dict:
    """Arms raised, hips missing in the last frame, in the OpenPose node's normalised coordinates."""
    frames = [openpose_frame([(points, ())], 200, 300) for points in walking(CLIP_FRAMES - 1, step=(0, 2))]
    raised = STANDING.copy()
    raised[[4, 7]] = (72, 0), (128, 0)
    return {"__value__": [*frames, openpose_frame([(raised, (8, 11))], 200, 300)]}


POSE_FILE = "red_square_wander.pose.json"
"""The bundled toy clip's skeleton (``motion_core.toy.skeleton``), in the input folder."""
CONTROLNET = "toy_pose_controlnet.safetensors"


def pose_controlnet(g: Graph, world: str) -> list:
    return [g.add("controlnet", "MTX_LoadPoseControlNet", model=video_model(g, world), controlnet_name=CONTROLNET), 0]


def toy_clip_pose(g: Graph, world: str) -> dict:
    """The bundled clip's own poses, the first ``CLIP_FRAMES`` frames (what its Load Reference Video gives)."""
    return {"__value__": json.loads((REPO_ROOT / "assets" / "toy" / POSE_FILE).read_text())[:CLIP_FRAMES]}


def trained_edit(g: Graph, world: str) -> list:
    return [g.add("edit", "MTX_TrainMotionEdit", model=video_model(g, world), controlnet=pose_controlnet(g, world),
                  source=clean_latents(g, world), source_pose=toy_clip_pose(g, world), subject_steps=1,
                  full_steps=1), 0]


def solid_mask(g: Graph, world: str) -> list:
    """A mask from ComfyUI's own Solid Mask node (one frame, 32 x 32: the toy clip's size)."""
    return [g.add("mask", "SolidMask", value=1.0, width=32, height=32), 0]


SOCKETS = {
    "IMAGE": [reference_frames],
    "MTX_VIDEO_MODEL": [video_model],
    "MTX_LATENTS": [clean_latents, inverted_noise],
    "MTX_ADAPTER": [trained("temporal_attention"), trained("lora"), trained("motion_embeddings"), stacked_adapters],
    "MTX_OBJECTIVE": [vmc_sma_objective, motion_director_objective],
    "MTX_ADAPTER_OPTIONS": [lora_options, embedding_options],
    "MTX_REFERENCES": [added_clip],
    "MTX_MOTION_GUIDANCE": [motion_guidance],
    "MTX_VIDEO_INFO": [video_info],
    "POSE_KEYPOINT": [toy_clip_pose, dwpose_walk, openpose_arms_up],
    "MTX_POSE_CONTROLNET": [pose_controlnet],
    "MTX_EDIT_ADAPTER": [trained_edit],
    "MASK": [solid_mask],
}
"""What can feed each socket type: each recipe in one of a node's graphs, the first (or the input's
``INTENDED`` one) in the others. Wrong but connectable choices (clean latents into a noise input, a
LoRA's options for motion embeddings, a stack where one adapter is saved) are meant: users wire them."""

INTENDED = {
    ("MTX_InitialNoise", "inverted"): inverted_noise,
    ("MTX_GenerateVideo", "noise"): inverted_noise,
    ("MTX_ExportMotionLoRA", "adapter"): trained("lora"),
}
"""Inputs whose right recipe is not their type's first (Export Motion LoRA writes LoRAs only)."""

# -- what uses a node's output ----------------------------------------------------------------------


def train_one_step(g: Graph, world: str, **given) -> list:
    inputs = {"model": video_model(g, world), "latents": clean_latents(g, world), "steps": 1} | given
    return [g.add("use.train", "MTX_TrainMotionAdapter", **inputs), 0]


def generate_one_step(g: Graph, world: str, **given) -> list:
    inputs = {"model": video_model(g, world), "noise": inverted_noise(g, world), "steps": 1} | given
    return [g.add("use.generate", "MTX_GenerateVideo", **inputs), 0]


def decode(g: Graph, world: str, latents: list, model: list | None = None) -> list:
    return [g.add("use.decode", "MTX_DecodeVideo", model=model or video_model(g, world), latents=latents), 0]


def whole_pipeline(g: Graph, world: str, model: list) -> list:
    """Encode, train, invert, generate and decode with ``model``."""
    latents = [g.add("use.encode", "MTX_EncodeReference", model=model, frames=reference_frames(g, world)), 0]
    adapter = train_one_step(g, world, model=model, latents=latents)
    noise = [g.add("use.invert", "MTX_InvertVideo", model=model, latents=latents, steps=1), 0]
    return decode(g, world, generate_one_step(g, world, model=model, noise=noise, adapter=adapter), model)


def edit_one_step(g: Graph, world: str, **given) -> list:
    inputs = {"model": video_model(g, world), "controlnet": pose_controlnet(g, world), "edit": trained_edit(g, world),
              "source": clean_latents(g, world), "source_pose": toy_clip_pose(g, world),
              "target_pose": toy_clip_pose(g, world), "steps": 1} | given
    return [g.add("use.edit", "MTX_EditVideo", **inputs), 0]


USED_BY = {
    "MTX_LoadReferenceVideo": lambda g, world, out: [g.add("use.encode", "MTX_EncodeReference",
                                                           model=video_model(g, world), frames=out), 0],
    "MTX_LoadVideoModel": whole_pipeline,
    "MTX_EncodeReference": lambda g, world, out: train_one_step(g, world, latents=out),
    "MTX_MotionObjective": lambda g, world, out: train_one_step(g, world, objective=out),
    "MTX_LoRAOptions": lambda g, world, out: train_one_step(g, world, parameterisation="lora", adapter_options=out),
    "MTX_MotionEmbeddingOptions": lambda g, world, out: train_one_step(g, world, parameterisation="motion_embeddings",
                                                                       adapter_options=out),
    "MTX_TrainMotionAdapter": lambda g, world, out: generate_one_step(g, world, adapter=out),
    "MTX_AddTrainingClip": lambda g, world, out: train_one_step(g, world, more_references=out),
    "MTX_MotionGuidance": lambda g, world, out: generate_one_step(g, world, motion_guidance=out),
    "MTX_CombineMotionAdapters": lambda g, world, out: generate_one_step(g, world, adapter=out),
    "MTX_LoadMotionAdapter": lambda g, world, out: generate_one_step(g, world, adapter=out),
    "MTX_LoadMotionLoRA": lambda g, world, out: generate_one_step(g, world, adapter=out),
    "MTX_InvertVideo": lambda g, world, out: generate_one_step(g, world, noise=out),
    "MTX_InitialNoise": lambda g, world, out: generate_one_step(g, world, noise=out),
    "MTX_GenerateVideo": lambda g, world, out: decode(g, world, out),
    "MTX_LoadPoseControlNet": lambda g, world, out: edit_one_step(g, world, controlnet=out),
    "MTX_TrainMotionEdit": lambda g, world, out: edit_one_step(g, world, edit=out),
    "MTX_EditVideo": lambda g, world, out: decode(g, world, out),
}
"""The next node of the pipeline for a node's first output, on the graph's toy model (one training or
sampling step): options and objectives only matter once training reads them. Nodes not listed end
their graph (previewed as text), as the output nodes and Decode Video do anyway."""

# -- costly inputs ----------------------------------------------------------------------------------

COST_CAPS = {
    ("MTX_TrainMotionAdapter", "steps"): 2,
    ("MTX_InvertVideo", "steps"): 3,
    ("MTX_GenerateVideo", "steps"): 3,
    ("MTX_LoadReferenceVideo", "custom_width"): 128,
    ("MTX_LoadReferenceVideo", "custom_height"): 128,
    ("MTX_EncodeReference", "width"): 64,
    ("MTX_EncodeReference", "height"): 64,
    ("MTX_AlignPose", "width"): 256,
    ("MTX_AlignPose", "height"): 256,
    ("MTX_MotionGuidance", "adam_steps"): 5,
    ("MTX_TrainMotionEdit", "subject_steps"): 1,
    ("MTX_TrainMotionEdit", "full_steps"): 1,
    ("MTX_EditVideo", "steps"): 3,
}
"""The largest value the fuzz draws for inputs whose declared maximum costs minutes or gigabytes on
2 CPU cores (steps, Motion Guidance's Adam steps: one denoiser pass each; sizes: pixels of every frame; Encode Reference's size is
also what the training step after it runs at: 64 pixels are 32 x 32 latents, ~1 s a step). Every
other input is drawn up to its declared maximum. Each capped input's declared maximum is queued once by
``test_a_capped_input_at_its_declared_maximum_can_be_cancelled``."""

KNOWN_FILES = {
    ("MTX_LoadReferenceVideo", "video"): CLIP,
    ("MTX_LoadPoseKeypoints", "pose_file"): POSE_FILE,
    ("MTX_LoadPoseControlNet", "controlnet_name"): CONTROLNET,
    ("MTX_LoadVideoModel", "model_name"): WORLDS[0],
}
"""The file a combo that lists files (and has no default) is given where a test needs a known good one."""

CANCEL_AFTER = 3.0
"""Seconds a declared maximum runs before the cancel is sent."""
CANCEL_GRACE = 20.0
"""Seconds a run may go on after the cancel (a frame, a VAE part or a step being finished)."""


# -- the rule and the draws, without a server ------------------------------------------------------

PACK_ERROR = "/tmp/comfy/custom_nodes/comfyui-motion-transfer.motion_core.errors.InputError"
"""How the server names the pack's InputError (the module as ComfyUI imported the pack)."""

RULE_GRAPH = {"objective": {"class_type": "MTX_MotionObjective", "inputs": {"vmc_frame_stride": 16}},
              "train": {"class_type": "MTX_TrainMotionAdapter", "inputs": {"steps": 1, "objective": ["objective", 0]}}}
RULE_SCHEMAS = {"MTX_MotionObjective": {"input": {"required": {"vmc_frame_stride": ["INT", {}]}}},
                "MTX_TrainMotionAdapter": {"input": {"required": {"steps": ["INT", {}]},
                                                     "optional": {"objective": ["MTX_OBJECTIVE", {}]}}}}


@pytest.mark.parametrize(("status", "error_type", "failing", "message", "accepted"), [
    ("success", "", "", "", True),
    ("error", PACK_ERROR, "train", "steps: 0 is not valid; use a whole number from 1", True),
    ("error", PACK_ERROR, "train", "vmc_frame_stride: a stride of 16 needs more than 16 frames", True),
    ("rejected", "custom_validation_failed", "train", "steps: refused by the node's own check", True),
    ("error", PACK_ERROR, "objective", "steps: the objective cannot name training's input", False),
    ("error", PACK_ERROR, "train", "training failed", False),
    ("error", "IndexError", "train", "index 1000 is out of bounds for dimension 0 with size 1000", False),
    ("error", "torch.OutOfMemoryError", "train", "steps: a raw error that happens to start like ours", False),
    ("rejected", "value_not_in_list", "train", "steps: not the pack's check", False),
    ("interrupted", "", "train", "", False),
    ("timeout", "", "", "", False),
])
def test_the_rule_accepts_success_and_the_packs_errors_naming_an_input_only(status, error_type, failing, message,
                                                                            accepted):
    outcome = Outcome("MTX_TrainMotionAdapter", RULE_GRAPH, status, failing, error_type, message)
    assert (broken_rule(outcome, RULE_SCHEMAS) is None) == accepted


def test_the_draws_give_each_edge_step_option_and_string_a_graph():
    rng = random.Random(SEED)
    width = Input("N", "width", "INT", {"min": 0, "max": 8192, "step": 8, "default": 0}, False)
    weight = Input("N", "weight", "FLOAT", {"min": -10.0, "max": 10.0, "step": 0.05, "default": 1.0}, False)
    mode = Input("N", "mode", "COMBO", {"options": ["a", "b", "c"]}, False)
    prefix = Input("N", "prefix", "STRING", {"default": "motion"}, False)
    draws = {"width": widget_draws(width, rng, cap=128), "weight": widget_draws(weight, rng),
             "mode": widget_draws(mode, rng), "prefix": widget_draws(prefix, rng), "flag": presence_draws(
                 Input("N", "flag", "BOOLEAN", {}, True), rng)}
    assert draws["width"].cases[:2] == [0, 128] and draws["weight"].cases[:2] == [-10.0, 10.0]
    assert draws["prefix"].cases == ["motion", *STRINGS] and draws["flag"].cases == [True, False]
    plan = draw_plan(draws, 12, rng)
    for name, input_draws in draws.items():
        assert all(any(graph[name] == case for graph in plan) for case in input_draws.cases), name
    assert all(graph["width"] % 8 == 0 and 0 <= graph["width"] <= 128 for graph in plan)
    assert all(abs(graph["weight"] * 20 - round(graph["weight"] * 20)) < 1e-6 for graph in plan), "on the step"


# -- the tier ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_host(toy_host):
    """The server with the toy files, and a saved adapter of each toy model and an exported motion LoRA,
    so that Load Motion Adapter and Load Motion LoRA have files to list."""
    object_info = toy_host.object_info()
    for world, kind in (("toy-animatediff", "lora"), ("toy-t2v", "temporal_attention")):
        g = Graph()
        adapter = trained(kind)(g, world)
        g.add("save", "MTX_SaveMotionAdapter", adapter=adapter, filename_prefix=f"fuzz/{kind}_{world}")
        if kind == "lora":
            g.add("export", "MTX_ExportMotionLoRA", adapter=adapter, filename_prefix="fuzz/motion_lora")
        run = toy_host.run(complete(g.nodes, object_info), timeout=300)
        assert run.status == "success", run.error
    return toy_host


def test_every_socket_of_every_pack_node_has_a_recipe(fuzz_host):
    """A new node is fuzzed as soon as it is registered; a socket type nothing here can feed fails
    this test (and the tier) instead of being skipped."""
    assert not missing_recipes(pack_nodes(fuzz_host.object_info())), missing_recipes.__doc__


def test_every_cost_cap_is_a_number_input_below_its_declared_maximum(fuzz_host):
    """The caps narrow only what they say: each names an existing number input and lies inside its range."""
    nodes = pack_nodes(fuzz_host.object_info())
    for (node, name), cap in COST_CAPS.items():
        item = next((i for i in node_inputs(node, nodes[node]) if i.name == name), None) if node in nodes else None
        assert item is not None and item.kind in ("INT", "FLOAT"), f"{node}.{name} is not a number input"
        assert item.options["min"] < cap < item.options["max"], f"{node}.{name}: cap {cap} outside its range"


def test_every_node_succeeds_or_names_the_input_it_refuses(fuzz_host):
    """The tier itself: every graph of every node, then a known-good graph after each failure and at
    the end. All breaches are collected and reported together, each with the graph that caused it."""
    host = fuzz_host
    object_info = host.object_info()
    nodes = pack_nodes(object_info)
    missing = missing_recipes(nodes)
    assert not missing, f"add a recipe to SOCKETS in tests/host/test_fuzz_in_host.py for: {missing}"
    rng = random.Random(SEED)
    plans = {node: node_plan(node, info, rng) for node, info in sorted(nodes.items())}
    started, outcomes, breaches = time.monotonic(), [], []
    queue = [(node, world, values) for world in WORLDS  # one model at a time: its chain stays in ComfyUI's cache
             for node, plan in plans.items() for w, values in plan if w == world]
    for node, world, values in queue:
        outcome = run_outcome(host, node, fuzzed_graph(node, nodes[node], values, world, object_info), GRAPH_TIMEOUT)
        outcomes.append(outcome)
        problem = broken_rule(outcome, object_info)
        if problem:
            breaches.append((problem, outcome))
        if outcome.status != "success":
            answered = run_outcome(host, node, known_good(len(outcomes), world), GRAPH_TIMEOUT)
            if answered.status != "success":
                breaches.append((f"the server did not run a known-good graph after it: {answered.message}", outcome))
                break  # the graphs left would only wait for it
    final = run_outcome(host, "check", known_good(0, WORLDS[0]), GRAPH_TIMEOUT)
    breaches += [] if final.status == "success" else [(f"the last known-good graph failed: {final.message}", final)]
    statuses = {status: sum(o.status == status for o in outcomes) for status in sorted({o.status for o in outcomes})}
    SUMMARY.append(f"fuzz tier (seed {SEED}, rounds {ROUNDS}): {len(outcomes)} graphs over {len(plans)} nodes, "
                   f"{statuses}, {time.monotonic() - started:.0f} s")
    if os.environ.get("MTX_FUZZ_LOG"):
        write_log(os.environ["MTX_FUZZ_LOG"], outcomes)
    assert not breaches, report(breaches)
    assert {o.node for o in outcomes} == set(nodes)


@pytest.mark.parametrize(("node", "name"), sorted(COST_CAPS), ids=lambda value: value)
def test_a_capped_input_at_its_declared_maximum_can_be_cancelled(fuzz_host, node, name):
    """The declared maximum, queued as a user may queue it (the other inputs at their defaults, on the
    first toy model, the output not used further), and cancelled after ``CANCEL_AFTER`` seconds: the
    run ends (cancelled, finished, or refused with the pack's message) within ``CANCEL_GRACE`` seconds
    of the cancel, and the server then runs the next graph."""
    host = fuzz_host
    object_info = host.object_info()
    info = object_info[node]
    items = {item.name: item for item in node_inputs(node, info)}
    values = {item.name: INTENDED.get(item.key, SOCKETS[item.kind][0])
              for item in items.values() if not item.is_widget and not item.optional}
    values |= {item.name: KNOWN_FILES[item.key] for item in items.values() if item.key in KNOWN_FILES}
    values[name] = items[name].options["max"]
    graph = fuzzed_graph(node, info, values, WORLDS[0], object_info, used=False)
    sent = []
    cancel = threading.Timer(CANCEL_AFTER, lambda: (sent.append(time.monotonic()), host.interrupt()))

    def start_the_clock(message, _host):
        if message.get("type") == "executing" and message["data"].get("node") == "fuzz" and cancel.ident is None:
            cancel.start()

    outcome = run_outcome(host, node, graph, CANCEL_AFTER + CANCEL_GRACE + 60, on_message=start_the_clock)
    cancel.cancel()
    if cancel.ident is not None:
        cancel.join()
    ended = time.monotonic()
    assert outcome.status == "interrupted" or broken_rule(outcome, object_info) is None, report([("", outcome)])
    if sent:
        late = ended - sent[0]
        assert late < CANCEL_GRACE, f"{node}.{name}={values[name]} ran {late:.0f} s after the cancel"
    answered = run_outcome(host, node, known_good(0, WORLDS[0]), GRAPH_TIMEOUT)
    assert answered.status == "success", answered.message


# -- building and running the graphs ----------------------------------------------------------------


def complete(graph: dict, object_info: dict) -> dict:
    """``graph`` with every required widget a recipe left out set to its declared default."""
    for node in graph.values():
        declared = object_info[node["class_type"]]["input"].get("required", {})
        for name, spec in declared.items():
            if name not in node["inputs"] and len(spec) > 1 and "default" in spec[1]:
                node["inputs"][name] = spec[1]["default"]
    return graph


def missing_recipes(nodes: dict) -> dict[str, str]:
    """Socket types of ``nodes`` (``/object_info`` entries) without a recipe in ``SOCKETS``, each with
    the first input that needs one: add a recipe to SOCKETS in tests/host/test_fuzz_in_host.py."""
    missing = {}
    for node, info in nodes.items():
        for item in node_inputs(node, info):
            if not item.is_widget and item.kind not in SOCKETS:
                missing.setdefault(item.kind, f"{node}.{item.name}")
    return missing


def input_draws(item: Input, rng: random.Random) -> Draws:
    if item.is_widget:
        return widget_draws(item, rng, COST_CAPS.get(item.key))
    recipes = SOCKETS[item.kind]
    intended = INTENDED.get(item.key, recipes[0])
    return Draws(recipes, lambda: intended)


def fuzzed_graph(node: str, info: dict, values: dict, world: str, object_info: dict, used: bool = True) -> dict:
    """One graph: ``node`` (id ``fuzz``) with ``values``, its sockets fed, its output used (``USED_BY``)."""
    g = Graph()
    inputs = {}
    for name, value in values.items():
        if value is ABSENT:
            continue
        inputs[name] = value(g, world) if callable(value) else value
    g.add("fuzz", node, **inputs)
    if info["output"] and node in USED_BY and used:
        g.preview(USED_BY[node](g, world, ["fuzz", 0]))
    elif info["output"] and not info.get("output_node"):
        g.preview(["fuzz", 0])
    return complete(g.nodes, object_info)


def node_plan(node: str, info: dict, rng: random.Random) -> list[tuple[str, dict]]:
    """(world, values) of each graph of ``node``: ``MIN_GRAPHS``, or more where an input has more
    cases, times ``ROUNDS``."""
    values, presence = {}, {}
    for item in node_inputs(node, info):
        values[item.name] = input_draws(item, rng)
        presence[item.name] = presence_draws(item, rng)
    count = max(MIN_GRAPHS, *(len(d.cases) for d in values.values())) * ROUNDS
    plans = zip(draw_plan({"world": Draws(list(WORLDS), lambda: rng.choice(WORLDS))}, count, rng),
                draw_plan(values, count, rng), draw_plan(presence, count, rng))
    return [(world["world"], {name: value if present[name] else ABSENT for name, value in chosen.items()})
            for world, chosen, present in plans]


def known_good(g_index: int, world: str) -> dict:
    """A tiny graph that must run after any failure: load a few frames, encode and decode them."""
    g = Graph()
    frames = [g.add("check.clip", "MTX_LoadReferenceVideo", video=CLIP, frame_load_cap=2 + g_index % (CLIP_FRAMES - 1),
                    skip_first_frames=0, select_every_nth=1, force_rate=0.0, custom_width=0, custom_height=0), 0]
    model = [g.add("check.model", "MTX_LoadVideoModel", model_name=world, dtype="auto", offload="none",
                   attention="sdpa", vae_decode_chunk=8), 0]
    latents = [g.add("check.encode", "MTX_EncodeReference", model=model, frames=frames, width=0, height=0), 0]
    g.preview([g.add("check.decode", "MTX_DecodeVideo", model=model, latents=latents), 0])
    return g.nodes


def shown_values(graph: dict) -> dict:
    """The fuzzed node's inputs, a literal socket value (poses) shortened."""
    inputs = graph.get("fuzz", {}).get("inputs", {})
    return {name: "<literal>" if isinstance(value, dict) else value for name, value in inputs.items()}


def write_log(path: str, outcomes: list[Outcome]) -> None:
    """Every graph and what it did, one JSON object a line (``MTX_FUZZ_LOG=path``), to replay or study."""
    with open(path, "w") as log:
        log.writelines(json.dumps({"node": o.node, "status": o.status, "failing_node": o.failing_type,
                                   "error_type": o.error_type, "message": o.message, "seconds": round(o.seconds, 2),
                                   "graph": o.graph}) + "\n"
                       for o in outcomes)


def report(breaches: list[tuple[str, Outcome]]) -> str:
    lines = [f"{len(breaches)} fuzzed graphs broke the rule (seed {SEED}):"]
    for problem, outcome in breaches:
        lines += [f"- {outcome.node}: {problem}", f"  {outcome.error_type}: {outcome.message[:400]}",
                  f"  values: {shown_values(outcome.graph)}"]
    return "\n".join(lines)


