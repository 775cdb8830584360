"""Write the example workflows in ``workflows/``: each graph once in ComfyUI's UI format (what a user
drags in; ComfyUI serves the folder as the pack's templates) and once in API format
(``workflows/api/``, what ``python -m motion_core.batch`` and other API clients queue).

    python scripts/make_workflows.py --server http://127.0.0.1:8188

Both are written from one description per graph below, with the node schemas taken from a running
ComfyUI that has this pack loaded (``/object_info``): the widget order, defaults, control widgets
and output slots come from the nodes themselves, not from a copy here. Every workflow is set up for
the bundled toy model and clip, so it runs as it is (see the note node in each for what to change
for a real model). Existing files are replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from motion_core.files import replace_file  # noqa: E402
FOLDER = REPOSITORY / "workflows"
API_FOLDER = FOLDER / "api"

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
COLUMN_WIDTH, NODE_WIDTH, ROW_GAP = 370, 330, 50
TOY_MODEL, TOY_CLIP, TOY_FPS = "toy-t2v", "red_square_wander.mp4", 8.0
TOY_TWIN = "blue_triangle_twin.mp4"
"""The red square's motion shown by a blue triangle on another background (``toy.examples.TWINS``)."""
TOY_ANIMATEDIFF = "toy-animatediff"
TOY_WAN, TOY_WAN_CLIP, TOY_WAN_FRAMES = "toy-wan", "red_square_nine.mp4", 9
"""The toy Wan model and a bundled clip of its length (Wan's 1 + 4k frames; ``toy.examples.LONGER``)."""
TOY_CONTROLNET = "toy_pose_controlnet.safetensors"
"""The toy AnimateDiff model's pose ControlNet (``models/toy-pose-controlnet``), for the editing workflow."""


@dataclass
class Node:
    """One node of a graph: its widget values by input name (the rest take the schema's defaults)
    and its linked inputs as ``input name -> (source node id, output slot)``."""

    id: int
    type: str
    column: int
    values: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)
    title: str | None = None


@dataclass
class Workflow:
    name: str
    note: str
    nodes: list[Node]


# -- the graphs -------------------------------------------------------------------------------------

def reference_and_model(model: str = TOY_MODEL, clip: str = TOY_CLIP, frames: int = 8) -> list[Node]:
    """Load the clip and the model, encode the clip: nodes 1-3."""
    return [
        Node(1, "MTX_LoadReferenceVideo", 0, {"video": clip, "frame_load_cap": frames}),
        Node(2, "MTX_LoadVideoModel", 0, {"model_name": model}),
        Node(3, "MTX_EncodeReference", 1, links={"model": (2, 0), "frames": (1, 0)}),
    ]


def train(kind: str, objective: dict, lr: float, caption: str, lora: dict | None = None, more: dict | None = None,
          more_links: dict | None = None, frames: int = 8) -> list[Node]:
    """The objective (node 4) and the training node (5, with ``more`` values and ``more_links``); a
    kind's options node is 12 (motion embeddings: a slot for each of the clip's ``frames``)."""
    nodes = [Node(4, "MTX_MotionObjective", 0, objective),
             Node(5, "MTX_TrainMotionAdapter", 1,
                  {"prompt": caption, "parameterisation": kind, "steps": 300, "lr": lr, "seed": 0, **(more or {})},
                  {"model": (2, 0), "latents": (3, 0), "objective": (4, 0), **(more_links or {})})]
    options = {"lora": Node(12, "MTX_LoRAOptions", 0, {"rank": 8, "alpha": 8.0, **(lora or {})}),
               "motion_embeddings": Node(12, "MTX_MotionEmbeddingOptions", 0, {"frame_slots": frames})}.get(kind)
    if options is not None:
        nodes[1].links["adapter_options"] = (12, 0)
        nodes.append(options)
    return nodes


def invert_generate_save(adapter: tuple[int, int], strategy: str, target: str, prefix: str) -> list[Node]:
    """Invert the clip with the adapter (6), initial noise (7), generate (8), decode (9), save (10, 11)."""
    return [
        Node(6, "MTX_InvertVideo", 2, {"steps": 25}, {"model": (2, 0), "latents": (3, 0), "adapter": adapter}),
        Node(7, "MTX_InitialNoise", 2, {"strategy": strategy, "seed": 0}, {"inverted": (6, 0)}),
        Node(8, "MTX_GenerateVideo", 2, {"prompt": target, "steps": 25, "cfg": 7.5},
             {"model": (2, 0), "noise": (7, 0), "adapter": adapter}),
        Node(9, "MTX_DecodeVideo", 3, links={"model": (2, 0), "latents": (8, 0)}),
        Node(10, "CreateVideo", 3, {"fps": TOY_FPS}, {"images": (9, 0)}),
        Node(11, "SaveVideo", 3, {"filename_prefix": f"motion_transfer/{prefix}"}, {"video": (10, 0)}),
    ]


TRY_IT = (
    "**Try it on the toy model** (bundled with the pack): copy the pack's `models/toy-t2v` folder into "
    "`ComfyUI/models/diffusers/` and `assets/toy/red_square_wander.mp4` into `ComfyUI/input/`, then "
    "Queue. About a minute on a CPU.\n\n"
    "**For a real video**: pick your model in *Load Video Model* (a ZeroScope or ModelScope folder in "
    "`models/diffusers`), upload your clip in *Load Reference Video* (16-24 frames of one clear motion; "
    "`frame_load_cap` 16), describe it in the training prompt, set training `steps` to 400, inversion and "
    "generation `steps` to 50 and `fps` in *Create Video* to your clip's."
)

SAVED_ADAPTER = "toy_red_square_00001.safetensors"
"""What ``train_and_save_adapter`` writes on its first run, and ``load_adapter_and_generate`` loads."""

WORKFLOWS = [
    Workflow(
        "motion_transfer_vmc_sma",
        "# Motion transfer: VMC + SMA\n\nLearns the reference clip's motion in the temporal attention layers "
        "(VMC's motion-vector loss, with SMA's wavelet and phase terms: the *Motion Objective* defaults), "
        "then generates the *Generate Video* prompt with that motion, from the inverted clip's noise.\n\n"
        "Change: the target prompt in *Generate Video*; the seed in *Initial Noise* for another sample; "
        "*Motion Objective* `sma_global_weight` and `sma_local_weight` to 0 for plain VMC.\n\n" + TRY_IT,
        reference_and_model()
        + train("temporal_attention", {}, 1e-4, "a red square moving")
        + invert_generate_save((5, 0), "direct", "a blue circle moving", "vmc_sma"),
    ),
    Workflow(
        "train_and_save_adapter",
        "# Train and save a motion adapter\n\nTrains an adapter on the reference clip and saves it to "
        "`models/motion_adapters/` (the file records the model it was trained for and how); the loss "
        "curve is plotted. Load it later with *Load Motion Adapter* (the `load_adapter_and_generate` "
        "workflow) to generate as many videos as you like without training again.\n\n"
        "Change: `filename_prefix` in *Save Motion Adapter*; the parameterisation and steps in *Train Motion "
        "Adapter*.\n\n" + TRY_IT,
        reference_and_model()
        + train("temporal_attention", {}, 1e-4, "a red square moving")
        + [Node(13, "MTX_SaveMotionAdapter", 2, {"filename_prefix": "toy_red_square"}, {"adapter": (5, 0)}),
           Node(14, "LossGraphNode", 2, {"filename_prefix": "motion_transfer/loss"}, {"loss": (5, 1)})],
    ),
    Workflow(
        "load_adapter_and_generate",
        "# Load a saved adapter and generate\n\nGenerates with an adapter saved earlier (run "
        "`train_and_save_adapter` first: it writes `toy_red_square_00001.safetensors`). The reference clip "
        "is still loaded, for the inverted noise the video starts from.\n\n"
        "Change: the adapter in *Load Motion Adapter* (it must be trained for the model loaded); "
        "`adapter_strength` in *Generate Video* to weaken or exaggerate the motion; the prompt and seed.\n\n"
        + TRY_IT,
        reference_and_model()
        + [Node(5, "MTX_LoadMotionAdapter", 1, {"adapter_name": SAVED_ADAPTER})]
        + invert_generate_save((5, 0), "direct", "a green triangle moving", "from_saved_adapter"),
    ),
    Workflow(
        "motion_transfer_motiondirector",
        "# Motion transfer: MotionDirector (LoRA)\n\nTrains LoRA adapters on the temporal layers (and, with "
        "`spatial` on in *LoRA Options*, spatial LoRAs that absorb the clip's appearance and are left out "
        "when generating), with MotionDirector's appearance-debiased loss; samples from a blend of the "
        "inverted clip and fresh noise, as the paper does.\n\n"
        "Change: `rank`/`alpha` in *LoRA Options* (the paper: 32); `ratio` in *Initial Noise*.\n\n" + TRY_IT,
        reference_and_model()
        + train("lora", {"base_loss": "motion_director", "sma_global_weight": 0.0, "sma_local_weight": 0.0},
                5e-4, "a red square moving")
        + invert_generate_save((5, 0), "blend", "a blue circle moving", "motiondirector"),
    ),
    Workflow(
        "motion_transfer_motion_inversion",
        "# Motion transfer: Motion Inversion (motion embeddings)\n\nLearns per-frame motion embeddings added "
        "to the temporal attention's queries and keys (and values, weighted by `value_weight`) instead of "
        "any weight of the model: the smallest adapter; samples from a blend of the inverted clip and fresh "
        "noise.\n\n"
        "Change: `blocks` and `frame_slots` (at least the clip's frames) in *Motion Embedding Options*.\n\n"
        + TRY_IT,
        reference_and_model()
        + train("motion_embeddings", {"base_loss": "motion_director", "sma_global_weight": 0.0,
                                      "sma_local_weight": 0.0}, 2e-2, "a red square moving")
        + invert_generate_save((5, 0), "blend", "a blue circle moving", "motion_inversion"),
    ),
    Workflow(
        "animatediff_motion_lora",
        "# AnimateDiff: train a motion LoRA, generate, export it for AnimateDiff-Evolved\n\nTrains a LoRA on "
        "the motion modules' attention of an AnimateDiff model (MotionDirector's loss; `feed_forward` off in "
        "*LoRA Options*, so the export carries everything), generates the target prompt with it, and writes it "
        "to `models/animatediff_motion_lora/` with *Export Motion LoRA*, where AnimateDiff-Evolved's "
        "motion-LoRA loader finds it.\n\n"
        "Change: the target prompt in *Generate Video*; `filename_prefix` in *Export Motion LoRA*; `rank` in "
        "*LoRA Options*.\n\n"
        "**Try it on the toy AnimateDiff model** (bundled): copy the pack's `models/toy-animatediff` folder into "
        "`ComfyUI/models/diffusers/` and `assets/toy/red_square_wander.mp4` into `ComfyUI/input/`, then Queue.\n\n"
        "**For a real model**: in *Load Video Model* choose `checkpoints/<your SD1.5 checkpoint>` and a "
        "`motion_module` from `models/animatediff_models` (mm_sd_v15_v2, v3_sd15_mm), load 16 frames at "
        "512×512 (*Load Reference Video* `custom_width`/`custom_height`), training `steps` 400, inversion and "
        "generation `steps` 50.",
        reference_and_model(TOY_ANIMATEDIFF)
        + train("lora", {"base_loss": "motion_director", "sma_global_weight": 0.0, "sma_local_weight": 0.0},
                5e-4, "a red square moving", lora={"feed_forward": False})
        + invert_generate_save((5, 0), "blend", "a blue circle moving", "animatediff_lora")
        + [Node(13, "MTX_ExportMotionLoRA", 2, {"filename_prefix": "toy_red_square_motion"}, {"adapter": (5, 0)})],
    ),
    Workflow(
        "wan_motion_transfer",
        "# Wan 2.1 / 2.2: motion transfer with motion embeddings\n\nLearns the reference clip's motion in "
        "per-frame embeddings added to the queries, keys and values of the Wan transformer's 3-D "
        "self-attention (Motion Inversion's analogue: each token's frame is known from its position), trained "
        "on high noise only (`timestep_low` 0.6: where the path is decided, the setting that carries a path "
        "from fresh noise on the toy models), then generates the target prompt with it from a blend of the "
        "inverted clip and fresh noise. Flow matching throughout: the inversion integrates the flow ODE "
        "backwards.\n\n"
        "Change: the target prompt in *Generate Video*; `frame_load_cap` (1 + 4k frames: 33, 49, 81) and "
        "`frame_slots` in *Motion Embedding Options* (at least the clip's latent frames: (frames - 1) / 4 + 1 on "
        "Wan; the toy Wan model does not compress time); "
        "`parameterisation` `lora` and an *Export Motion LoRA* node for a LoRA that ComfyUI's own LoRA loader "
        "applies to Wan in any Wan workflow.\n\n"
        "**Try it on the toy Wan model** (bundled): copy the pack's `models/toy-wan` folder into "
        "`ComfyUI/models/diffusers/` and `assets/toy/red_square_nine.mp4` into `ComfyUI/input/`, then Queue. "
        "About a minute on a CPU.\n\n"
        "**For a real model**: in *Load Video Model* choose "
        "`diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors` (or a 14B, or a Wan 2.2 A14B high-noise expert "
        "with its low-noise file in `low_noise_model_name`), `vae_name` `wan_2.1_vae.safetensors`, "
        "`text_encoder_name` a `umt5_xxl` file; connect *Load Reference Video*'s `video_info` to *Encode "
        "Reference* (clips are resampled to Wan's 16 fps); 33 frames at 832x480; training `steps` 400, "
        "inversion and generation `steps` 50, `cfg` 5, `fps` 16 in *Create Video*.",
        reference_and_model(TOY_WAN, TOY_WAN_CLIP, TOY_WAN_FRAMES)
        + train("motion_embeddings", {"base_loss": "motion_director", "sma_global_weight": 0.0,
                                      "sma_local_weight": 0.0}, 2e-2, "a red square moving",
                more={"timestep_low": 0.6}, frames=TOY_WAN_FRAMES)
        + invert_generate_save((5, 0), "blend", "a blue circle moving", "wan_motion_embeddings"),
    ),
    Workflow(
        "edit_motion",
        "# Edit-Your-Motion: give a clip another clip's motion, keep its look\n\nThe source clip (a red square) "
        "performs the reference clip's motion (the green star's path). *Align Pose* moves and scales the "
        "reference's skeleton onto the source's subject; *Train Motion Edit* learns the source under its own "
        "poses through the pose ControlNet (stage 1 the subject, stage 2 the full frames); *Edit Video* inverts "
        "the source and samples it again under the aligned poses.\n\n"
        "Change: the clips and their poses; `subject_steps`/`full_steps` (the paper: 300 + 300); connect a "
        "subject mask (any segmentation node) and Encode Reference's `encoded_frames` to *Train Motion Edit* "
        "for stage 1 on the masked subject.\n\n"
        "**Try it on the toy AnimateDiff model** (bundled): copy the pack's `models/toy-animatediff` folder into "
        "`ComfyUI/models/diffusers/`, `models/toy-pose-controlnet/toy_pose_controlnet.safetensors` into "
        "`ComfyUI/models/controlnet/`, and `assets/toy/red_square_wander.mp4`, `red_square_wander.pose.json` "
        "and `green_star_wander.pose.json` into `ComfyUI/input/`, then Queue.\n\n"
        "**For real videos**: an SD1.5 checkpoint with a motion module in *Load Video Model*, "
        "control_v11p_sd15_openpose in *Load Pose ControlNet*, both clips' poses from comfyui_controlnet_aux's "
        "DWPose Estimator (or saved with its Save Pose Keypoints and loaded here) on the frames you load, "
        "16 frames at 512x512, steps 300 + 300, 50 sampling steps.",
        [Node(1, "MTX_LoadReferenceVideo", 0, {"video": TOY_CLIP, "frame_load_cap": 8}),
         Node(2, "MTX_LoadVideoModel", 0, {"model_name": TOY_ANIMATEDIFF}),
         Node(3, "MTX_EncodeReference", 1, links={"model": (2, 0), "frames": (1, 0)}),
         Node(4, "MTX_LoadPoseKeypoints", 0, {"pose_file": "red_square_wander.pose.json"}, title="Source poses"),
         Node(5, "MTX_LoadPoseKeypoints", 0, {"pose_file": "green_star_wander.pose.json"}, title="Reference poses"),
         Node(6, "MTX_AlignPose", 1, links={"source_pose": (4, 0), "reference_pose": (5, 0)}),
         Node(7, "MTX_LoadPoseControlNet", 1, {"controlnet_name": TOY_CONTROLNET}, {"model": (2, 0)}),
         Node(8, "MTX_TrainMotionEdit", 2, {"prompt": "a red square moving", "subject_steps": 150, "full_steps": 150,
                                            "seed": 0},
              {"model": (2, 0), "controlnet": (7, 0), "source": (3, 0), "source_pose": (4, 0)}),
         Node(9, "MTX_EditVideo", 2, {"prompt": "a red square moving", "steps": 25, "cfg": 7.5},
              {"model": (2, 0), "controlnet": (7, 0), "edit": (8, 0), "source": (3, 0), "source_pose": (4, 0),
               "target_pose": (6, 0)}),
         Node(10, "MTX_DecodeVideo", 3, links={"model": (2, 0), "latents": (9, 0)}),
         Node(11, "CreateVideo", 3, {"fps": TOY_FPS}, {"images": (10, 0)}),
         Node(12, "SaveVideo", 3, {"filename_prefix": "motion_transfer/edit_motion"}, {"video": (11, 0)}),
         Node(13, "PreviewImage", 2, links={"images": (6, 1)}, title="Aligned poses")],
    ),
    Workflow(
        "train_on_two_clips",
        "# One motion from two clips (MotionDirector's multi-video training)\n\nTrains one adapter on two clips "
        "of the same motion by different subjects, each with its own prompt: the reference, and a second clip "
        "added with *Add Training Clip* (chain more of them for more clips). Each training step takes one clip, "
        "every clip equally often, so it needs no more memory than one clip. What the clips share is the "
        "motion; what differs (shape, colour, background) is what the adapter should not learn. Motion "
        "embeddings trained at high noise (`timestep_low` 0.6), the setting that carries a path on the toy "
        "models; a preview of the adapter so far shows on the training node every 100 steps.\n\n"
        "Change: the clips and their prompts; `steps` (a few more than for one clip); `preview_every` (0: "
        "off).\n\n"
        "**Try it on the toy AnimateDiff model** (bundled): copy the pack's `models/toy-animatediff` folder into "
        "`ComfyUI/models/diffusers/`, and `assets/toy/red_square_wander.mp4` and "
        "`assets/toy/blue_triangle_twin.mp4` into `ComfyUI/input/`, then Queue.\n\n"
        "**For real videos**: two or three clips of one motion by different subjects, the same `frame_load_cap` "
        "and size on both loaders (the clips must encode to the same size), each described in its own prompt.",
        reference_and_model(TOY_ANIMATEDIFF)
        + [Node(15, "MTX_LoadReferenceVideo", 0, {"video": TOY_TWIN, "frame_load_cap": 8}),
           Node(16, "MTX_EncodeReference", 1, links={"model": (2, 0), "frames": (15, 0)}),
           Node(17, "MTX_AddTrainingClip", 1, {"prompt": "a blue triangle moving"}, {"latents": (16, 0)})]
        + train("motion_embeddings", {"base_loss": "motion_director", "sma_global_weight": 0.0,
                                      "sma_local_weight": 0.0}, 2e-2, "a red square moving",
                more={"timestep_low": 0.6, "preview_every": 100}, more_links={"more_references": (17, 0)})
        + invert_generate_save((5, 0), "blend", "a green circle moving", "two_clips"),
    ),
]


# -- writing them -----------------------------------------------------------------------------------

def input_specs(schema: dict) -> list[tuple[str, str, dict]]:
    """``(name, type, options)`` of a node's inputs in the order the frontend shows them."""
    order = schema.get("input_order") or {kind: list(schema["input"].get(kind, {}))
                                          for kind in ("required", "optional")}
    specs = []
    for kind in ("required", "optional"):
        for name in order.get(kind, []):
            spec = schema["input"][kind][name]
            kind_name = "COMBO" if isinstance(spec[0], list) else spec[0]
            specs.append((name, kind_name, spec[1] if len(spec) > 1 else {}))
    return specs


def has_control_widget(name: str, options: dict) -> bool:
    """The frontend adds a "control after generate" widget (its value follows the seed's)."""
    return bool(options.get("control_after_generate", name in ("seed", "noise_seed")))


def widget_values(node: Node, schema: dict) -> list[tuple[str, object]]:
    """``(input name, value)`` of each widget in the frontend's order; the schema default where unset."""
    values = []
    for name, kind, options in input_specs(schema):
        if kind not in WIDGET_TYPES:  # a widget keeps its value even when a link feeds the input
            continue
        if name not in node.values and "default" not in options:
            raise ValueError(f"{node.type}.{name} has no default: give the node a value")
        values.append((name, node.values.get(name, options.get("default"))))
    unknown = set(node.values) - {name for name, _, _ in input_specs(schema)}
    if unknown:
        raise ValueError(f"{node.type} has no input(s) {sorted(unknown)}")
    return values


def api_format(workflow: Workflow, object_info: dict) -> dict:
    """``{node id: {"class_type", "inputs", "_meta"}}`` as ``POST /prompt`` takes it."""
    graph = {}
    for node in sorted(workflow.nodes, key=lambda n: n.id):
        schema = object_info[node.type]
        inputs = dict(widget_values(node, schema))
        for name, (source, slot) in node.links.items():  # a link wins over a widget's value
            inputs[name] = [str(source), slot]
        order = [name for name, _, _ in input_specs(schema)]
        graph[str(node.id)] = {"class_type": node.type, "inputs": {k: inputs[k] for k in order if k in inputs},
                               "_meta": {"title": node.title or schema.get("display_name", node.type)}}
    return graph


def _execution_order(nodes: list[Node]) -> list[int]:
    done: list[int] = []
    pending = sorted(nodes, key=lambda n: n.id)
    while pending:
        ready = [n for n in pending if all(source in done for source, _ in n.links.values())]
        if not ready:
            raise ValueError("the graph has a cycle or a link to a missing node")
        done.extend(n.id for n in ready)
        pending = [n for n in pending if n not in ready]
    return done


def _height(schema: dict, link_inputs: int, outputs: int) -> int:
    """Enough height for the node as the frontend draws it (it grows a node saved too small, over
    its neighbours): slots, a row per widget, a text box per multiline string, an upload button."""
    rows = multiline = 0
    for name, kind, options in input_specs(schema):
        if kind in WIDGET_TYPES:
            rows += 1 + has_control_widget(name, options) if kind == "INT" else 1
            multiline += bool(options.get("multiline"))
            rows += bool(options.get("video_upload") or options.get("image_upload"))
    return 50 + 22 * max(link_inputs, outputs) + 26 * rows + 60 * multiline


def ui_format(workflow: Workflow, object_info: dict) -> dict:
    """The graph as the frontend saves it (litegraph schema 0.4), with the note node at the left."""
    order = _execution_order(workflow.nodes)
    link_rows, outgoing = [], {}
    for node in sorted(workflow.nodes, key=lambda n: n.id):
        for name, (source, slot) in node.links.items():
            link_id = len(link_rows) + 1
            source_type = object_info[next(n.type for n in workflow.nodes if n.id == source)]["output"][slot]
            link_rows.append([link_id, source, slot, node.id, name, source_type])
            outgoing.setdefault((source, slot), []).append(link_id)
    column_y: dict[int, int] = {}
    note_id = max(n.id for n in workflow.nodes) + 1
    ui_nodes = [{"id": note_id, "type": "MarkdownNote", "pos": [20, 20], "size": [NODE_WIDTH, 560], "flags": {},
                 "order": len(order), "mode": 0, "inputs": [], "outputs": [], "title": "Read me",
                 "properties": {}, "widgets_values": [workflow.note], "color": "#432", "bgcolor": "#653"}]
    for node in sorted(workflow.nodes, key=lambda n: (n.column, order.index(n.id))):
        schema = object_info[node.type]
        specs = {name: (kind, options) for name, kind, options in input_specs(schema)}
        inputs = [{"name": name, "type": kind, "link": next(row[0] for row in link_rows
                                                             if row[3] == node.id and row[4] == name)}
                  for name, (kind, _) in specs.items() if name in node.links]
        values = []
        for name, value in widget_values(node, schema):
            values += [value, "fixed"] if has_control_widget(name, specs[name][1]) else [value]
        outputs = [{"name": out_name, "type": out_type, "links": outgoing.get((node.id, slot), []), "slot_index": slot}
                   for slot, (out_type, out_name) in enumerate(zip(schema["output"], schema["output_name"]))]
        height = _height(schema, len(inputs), len(outputs))
        x = 20 + COLUMN_WIDTH * (node.column + 1)
        y = column_y.get(node.column, 20)
        column_y[node.column] = y + height + ROW_GAP
        entry = {"id": node.id, "type": node.type, "pos": [x, y], "size": [NODE_WIDTH, height], "flags": {},
                 "order": order.index(node.id), "mode": 0, "inputs": inputs, "outputs": outputs,
                 "properties": {"Node name for S&R": node.type}, "widgets_values": values}
        if node.title:
            entry["title"] = node.title
        ui_nodes.append(entry)
    for row in link_rows:  # the UI format names the target slot by index among the node's linked inputs
        target = next(n for n in ui_nodes if n["id"] == row[3])
        row[4] = next(i for i, entry in enumerate(target["inputs"]) if entry["name"] == row[4])
    return {"last_node_id": note_id, "last_link_id": len(link_rows), "nodes": ui_nodes, "links": link_rows,
            "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}


def write_json(path: Path, data: dict, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    replace_file(path, lambda temporary: temporary.write_text(json.dumps(data, indent=1) + "\n"))


def main(argv: list[str] | None = None) -> int:
    import requests

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="http://127.0.0.1:8188", help="a ComfyUI with this pack loaded")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    object_info = requests.get(args.server.rstrip("/") + "/object_info", timeout=60).json()
    for workflow in WORKFLOWS:
        write_json(FOLDER / f"{workflow.name}.json", ui_format(workflow, object_info), args.overwrite)
        write_json(API_FOLDER / f"{workflow.name}.json", api_format(workflow, object_info), args.overwrite)
        print(f"wrote workflows/{workflow.name}.json and workflows/api/{workflow.name}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
