"""The whole motion transfer graph in a real ComfyUI server, on a tiny model saved as a diffusers
folder in the server's models/diffusers: progress on the websocket, cancel, files it writes."""

import numpy as np
import pytest
from PIL import Image

from motion_core.testing import write_tiny_text_to_video_folder
from support.clips import write_index_clip
from support.comfy_host import host_source

MODEL, CLIP, FRAMES, SIZE = "tiny-t2v", "moving_square.mp4", 8, 32


def moving_square(index: int) -> np.ndarray:
    picture = np.full((SIZE, SIZE, 3), 30, np.uint8)
    left = 2 + 3 * index
    picture[10:20, left : left + 8] = (220, 40, 40)
    return picture


@pytest.fixture(scope="module")
def prepared(comfy):
    write_tiny_text_to_video_folder(comfy.models_dir / "diffusers" / MODEL)
    write_index_clip(comfy.input_dir / CLIP, FRAMES, fps=8, size=(SIZE, SIZE), picture=moving_square)
    return comfy


def transfer_graph(train_steps: int, prefix: str) -> dict:
    """Load → encode → train → invert → noise → generate → decode → save (frames, adapter, loss plot)."""
    return {
        "1": {"class_type": "MTX_LoadReferenceVideo",
              "inputs": {"video": CLIP, "frame_load_cap": FRAMES, "skip_first_frames": 0, "select_every_nth": 1,
                         "force_rate": 0.0, "custom_width": 0, "custom_height": 0}},
        "2": {"class_type": "MTX_LoadVideoModel",
              "inputs": {"model_name": MODEL, "dtype": "auto", "offload": "none", "attention": "sdpa",
                         "vae_decode_chunk": 4}},
        "3": {"class_type": "MTX_EncodeReference", "inputs": {"model": ["2", 0], "frames": ["1", 0], "width": 0,
                                                              "height": 0}},
        "4": {"class_type": "MTX_MotionObjective",
              "inputs": {"base_loss": "vmc", "vmc_variant": "released", "vmc_frame_stride": 1, "debias_beta": 1.0,
                         "sma_global_weight": 0.4, "sma_global_levels": 2, "sma_global_wavelet": "haar",
                         "sma_global_level_weights": "", "sma_local_weight": 0.2, "sma_local_delta": 0.05,
                         "sma_local_base": 1.0, "sma_local_phase": "wrapped", "x0_estimate": "scaled"}},
        "5": {"class_type": "MTX_TrainMotionAdapter",
              "inputs": {"model": ["2", 0], "latents": ["3", 0], "prompt": "a square is moving",
                         "parameterisation": "temporal_attention", "steps": train_steps, "lr": 1e-4, "seed": 0,
                         "precision": "auto", "gradient_checkpointing": False, "objective": ["4", 0]}},
        "6": {"class_type": "MTX_InvertVideo", "inputs": {"model": ["2", 0], "latents": ["3", 0], "steps": 4,
                                                          "prompt": "", "adapter_strength": 1.0}},
        "7": {"class_type": "MTX_InitialNoise", "inputs": {"inverted": ["6", 0], "strategy": "blend", "ratio": 0.5,
                                                           "seed": 1}},
        "8": {"class_type": "MTX_GenerateVideo",
              "inputs": {"model": ["2", 0], "noise": ["7", 0], "prompt": "a blue circle", "negative_prompt": "",
                         "steps": 4, "cfg": 7.5, "adapter_strength": 1.0, "adapter": ["5", 0]}},
        "9": {"class_type": "MTX_DecodeVideo", "inputs": {"model": ["2", 0], "latents": ["8", 0]}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": f"{prefix}/frame"}},
        "11": {"class_type": "MTX_SaveMotionAdapter", "inputs": {"adapter": ["5", 0], "filename_prefix": prefix}},
        "12": {"class_type": "LossGraphNode", "inputs": {"loss": ["5", 1], "filename_prefix": f"{prefix}/loss"}},
    }


def host_throttles_progress() -> bool:
    """Whether the host's ProgressBar drops reports closer than 0.1 s / 0.5 % (ComfyUI >= 0.33)."""
    return "PROGRESS_THROTTLE" in (host_source() / "comfy" / "utils.py").read_text()


def test_the_full_graph_runs_with_progress_on_the_websocket(prepared):
    comfy = prepared
    run = comfy.run(transfer_graph(train_steps=3, prefix="full"), timeout=600)
    assert run.status == "success", run.error

    progress = {}
    for data in run.of_type("progress"):
        progress.setdefault(data["node"], []).append((data["value"], data["max"]))
    assert progress["5"][-1] == (3, 3), "training reports each step"
    inversion = [value for value, _ in progress["6"]]
    if host_throttles_progress():  # ComfyUI >= 0.33 sends the first, the last, and steps >= 0.1 s apart
        assert inversion[0] == 1 and inversion[-1] == 4 and inversion == sorted(set(inversion))
    else:
        assert inversion == [1, 2, 3, 4], "inversion reports each step"
    assert progress["8"][-1] == (4, 4) and progress["9"][-1] == (FRAMES, FRAMES)
    losses = [text for node, text in run.texts if node == "5"]
    assert len(losses) == 3 and losses[-1].startswith("step 3/3 · loss ")

    frames = run.outputs("10")["images"]
    assert len(frames) == FRAMES
    first = Image.open(comfy.output_dir / frames[0]["subfolder"] / frames[0]["filename"])
    assert first.size == (SIZE, SIZE)
    assert (comfy.models_dir / "motion_adapters" / "full_00001.safetensors").is_file()
    assert run.outputs("12")["images"], "ComfyUI's loss graph node plotted the LOSS_MAP"


@pytest.mark.host_smoke  # ComfyUI >= 0.33 interrupts with a BaseException
def test_training_previews_and_latent_previews_show_on_the_nodes_that_make_them(prepared):
    """Train Motion Adapter sends a strip of sampled frames every ``preview_every`` steps; Invert Video
    and Generate Video send a latent preview per step, as core samplers do (the server runs with
    ``--preview-method auto``)."""
    import io

    graph = transfer_graph(train_steps=4, prefix="previews")
    graph["5"]["inputs"]["preview_every"] = 2
    graph["6"]["inputs"]["steps"] = 3  # not the cached inversion of another test
    run = prepared.run(graph, timeout=600)
    assert run.status == "success", run.error
    shown = {}
    for node, image in run.previews:
        shown.setdefault(node, []).append(Image.open(io.BytesIO(image)))
    assert len(shown["5"]) == 2, "a preview at steps 2 and 4"
    assert all(picture.size == (4 * SIZE, SIZE) for picture in shown["5"]), "four frames side by side"
    assert len(shown["6"]) == 3 and len(shown["8"]) == 4, "one latent preview per sampler step"
    assert all(picture.width == picture.height for picture in shown["8"]), "a frame of the square clip"


def test_cancel_during_training_ends_the_run_cleanly_and_saves_nothing(prepared):
    comfy = prepared
    sent = []

    def cancel_once_training_runs(message, host):
        data = message.get("data", {})
        # the first step's report: ComfyUI >= 0.33 then throttles reports to every 0.5 % of the steps
        if message.get("type") == "progress" and data.get("node") == "5" and data["value"] >= 1 and not sent:
            sent.append(data["value"])
            host.interrupt()

    run = comfy.run(transfer_graph(train_steps=100_000, prefix="cancelled"), timeout=300,
                    on_message=cancel_once_training_runs)
    assert sent and run.status == "interrupted"
    assert [data["node_id"] for data in run.of_type("execution_interrupted")] == ["5"]
    assert not list((comfy.models_dir / "motion_adapters").glob("cancelled*"))
    assert not (comfy.output_dir / "cancelled").exists()

    after = comfy.run(transfer_graph(train_steps=2, prefix="after_cancel"), timeout=600)
    assert after.status == "success", after.error


def test_a_wrong_model_folder_is_refused_before_running(prepared):
    from support.comfy_host import PromptRejected

    comfy = prepared
    (comfy.models_dir / "diffusers" / "an-image-model").mkdir(exist_ok=True)
    (comfy.models_dir / "diffusers" / "an-image-model" / "model_index.json").write_text(
        '{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}')
    graph = transfer_graph(train_steps=1, prefix="wrong")
    graph["2"]["inputs"]["model_name"] = "an-image-model"
    with pytest.raises(PromptRejected) as err:
        comfy.queue(graph)
    message = "motion_module: 'an-image-model' is a Stable Diffusion folder: choose a motion module"
    assert message in err.value.messages()


KIND_OPTIONS = {
    "lora": {"class_type": "MTX_LoRAOptions",
             "inputs": {"rank": 4, "alpha": 4.0, "dropout": 0.1, "spatial": True, "spatial_skip_probability": 0.2}},
    "motion_embeddings": {"class_type": "MTX_MotionEmbeddingOptions",
                          "inputs": {"blocks": "widest", "frame_slots": 16, "value_weight": 1.0}},
}


@pytest.mark.parametrize("kind", sorted(KIND_OPTIONS))
def test_a_graph_per_parameterisation_runs_with_its_options_a_stack_and_debiasing(prepared, kind):
    """Options node → Train (lora / motion_embeddings) → Save → Load → Combine with the trained one →
    Generate with debiasing → Decode → SaveImage."""
    comfy = prepared
    graph = transfer_graph(train_steps=2, prefix=f"kind_{kind}")
    graph["13"] = KIND_OPTIONS[kind]
    graph["5"]["inputs"].update({"parameterisation": kind, "lr": 1e-2, "adapter_options": ["13", 0]})
    saved = run_and_check(comfy, graph)
    graph = transfer_graph(train_steps=2, prefix=f"kind_{kind}_reuse")
    del graph["11"], graph["12"]
    graph["5"]["inputs"].update({"parameterisation": kind, "lr": 1e-2})  # the kind's default options
    graph["14"] = {"class_type": "MTX_LoadMotionAdapter", "inputs": {"adapter_name": saved}}
    graph["15"] = {"class_type": "MTX_CombineMotionAdapters",
                   "inputs": {"adapter_a": ["14", 0], "strength_a": 0.8, "parts_a": "temporal",
                              "strength_b": 0.5, "parts_b": "temporal", "adapter_b": ["5", 0]}}
    graph["8"]["inputs"].update({"adapter": ["15", 0], "debias": "camera"})
    run_and_check(comfy, graph)


def run_and_check(comfy, graph) -> str:
    """Run ``graph``; check it wrote its frames; the saved adapter's name if it saved one."""
    run = comfy.run(graph, timeout=600)
    assert run.status == "success", run.error
    assert len(run.outputs("10")["images"]) == FRAMES
    return run.outputs("11")["text"][0].removeprefix("saved ") if "11" in graph else ""


def test_motion_guidance_steers_generate_video_with_progress_and_no_adapter(prepared):
    """Encode → Motion Guidance → Generate Video (fresh noise, no adapter, guidance on its appended
    input) → Decode → SaveImage: the training-free graph, its progress ending at the sampler's steps."""
    graph = transfer_graph(train_steps=1, prefix="guided")
    for training_only in ("4", "5", "11", "12"):
        del graph[training_only]
    graph["7"]["inputs"]["strategy"] = "random"
    graph["13"] = {"class_type": "MTX_MotionGuidance",
                   "inputs": {"latents": ["3", 0], "guided_fraction": 0.5, "adam_steps": 2, "lr": 0.01,
                              "latent_weight": 20.0, "difference_weight": 5.0, "velocity_regulariser": 0.9,
                              "seed": 0, "reference_estimate": "noised"}}
    del graph["8"]["inputs"]["adapter"]
    graph["8"]["inputs"]["motion_guidance"] = ["13", 0]
    run = prepared.run(graph, timeout=600)
    assert run.status == "success", run.error
    assert [(data["value"], data["max"]) for data in run.of_type("progress") if data["node"] == "8"][-1] == (4, 4)
    assert len(run.outputs("10")["images"]) == FRAMES
