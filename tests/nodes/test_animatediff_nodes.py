"""Load Video Model with AnimateDiff: SD1.5 checkpoints from models/checkpoints, motion modules from
models/animatediff_models, AnimateDiff diffusers folders; then a graph's nodes on the loaded model."""

import importlib

import pytest
import torch

from support.original_files import write_motion_module, write_sd15_checkpoint

CHECKPOINT = "checkpoints/tiny-sd15.safetensors"


@pytest.fixture(scope="module")
def models_dir(pack, tmp_path_factory):
    import folder_paths

    testing = importlib.import_module(f"{pack.__name__}.motion_core.testing")
    root = tmp_path_factory.mktemp("models")
    testing.write_tiny_animatediff_folder(root / "diffusers" / "tiny-animatediff")
    testing.write_tiny_text_to_video_folder(root / "diffusers" / "tiny-t2v")
    _, text_encoder, vae = testing.tiny_clip_parts(root / "scratch")
    write_sd15_checkpoint(root / "checkpoints" / "tiny-sd15.safetensors", testing.tiny_unet2d(), vae, text_encoder)
    write_motion_module(root / "animatediff_models" / "tiny_mm.safetensors", testing.tiny_motion_adapter())
    for name in ("diffusers", "checkpoints", "animatediff_models"):
        folder_paths.add_model_folder_path(name, str(root / name), is_default=True)
    return root


@pytest.fixture(scope="module")
def loader(pack, models_dir):
    return pack.nodes.model.LoadVideoModel


def run(node, *args, **kwargs):
    with torch.inference_mode():
        return node.execute(*args, **kwargs).args


def test_the_loader_lists_checkpoints_and_motion_modules_beside_diffusers_folders(loader):
    inputs = {item.id: item for item in loader.GET_SCHEMA().inputs}
    assert {"tiny-animatediff", "tiny-t2v", CHECKPOINT} <= set(inputs["model_name"].options)
    assert inputs["motion_module"].options[0] == "none" and "tiny_mm.safetensors" in inputs["motion_module"].options
    assert list(inputs)[5] == "motion_module"  # appended: saved graphs keep their widget order


def test_the_loader_says_what_each_choice_needs(loader):
    assert loader.validate_inputs(CHECKPOINT, "tiny_mm.safetensors") is True
    assert loader.validate_inputs(CHECKPOINT).startswith(
        "motion_module: 'tiny-sd15.safetensors' is a Stable Diffusion 1.5 checkpoint: choose a motion module")
    assert loader.validate_inputs("tiny-t2v", "tiny_mm.safetensors").startswith(
        "motion_module: a ModelScope/ZeroScope-family text-to-video diffusers folder")
    assert "takes no motion module; leave it out (none)" in loader.validate_inputs("tiny-t2v", "tiny_mm.safetensors")
    assert loader.validate_inputs("tiny-animatediff", "tiny_mm.safetensors").startswith(
        "motion_module: 'tiny-animatediff' is an AnimateDiff folder with its own motion modules; choose none")
    assert loader.validate_inputs(CHECKPOINT, "missing.safetensors").startswith(
        "motion_module: 'missing.safetensors' is not in models/animatediff_models")
    assert loader.validate_inputs("checkpoints/missing.safetensors").startswith(
        "model_name: 'missing.safetensors' is not in models/checkpoints")


def test_the_checkpoint_is_read_with_comfyuis_own_sd15_tokenizer(loader):
    """The shipped SD1.5 configs and ComfyUI's tokenizer are what a user's checkpoint loads with; the
    tiny checkpoint does not fit them, and says so by naming the input."""
    with pytest.raises(Exception, match="model_name: 'tiny-sd15.safetensors' could not be read as SD1.5"):
        run(loader, CHECKPOINT, "fp32", "none", "sdpa", 8, "tiny_mm.safetensors")


def test_an_animatediff_graph_trains_and_generates(pack, loader):
    nodes = pack.nodes
    (model,) = run(loader, "tiny-animatediff", "auto", "none", "sdpa", 8, "none")
    assert model.family == "animatediff"
    frames = torch.rand(8, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    latents, _ = run(nodes.model.EncodeReference, model, frames, 0, 0)
    (adapter, _) = run(nodes.training.TrainMotionAdapter, model, latents, "a shape is moving", "temporal_attention",
                       2, 1e-3, 0, "auto", False)[:2]
    assert adapter.backbone == model.fingerprint and adapter.backbone.startswith("animatediff:")
    (inverted,) = run(nodes.generation.InvertVideo, model, latents, 2, "", 1.0)
    (noise,) = run(nodes.generation.InitialNoise, inverted, "blend", 0.5, 7)
    (generated,) = run(nodes.generation.GenerateVideo, model, noise, "a red square", "", 2, 4.0, 1.0, adapter)
    (video,) = run(nodes.model.DecodeVideo, model, generated)
    assert video.shape == (8, 32, 32, 3) and torch.isfinite(video).all()


def test_a_lora_exports_for_animatediff_evolved_and_loads_back(pack, loader, models_dir):
    import folder_paths

    folder_paths.add_model_folder_path("animatediff_motion_lora", str(models_dir / "animatediff_motion_lora"),
                                       is_default=True)
    nodes = pack.nodes
    (model,) = run(loader, "tiny-animatediff", "fp32", "none", "sdpa", 8, "none")
    frames = torch.rand(8, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    latents, _ = run(nodes.model.EncodeReference, model, frames, 0, 0)
    (options,) = run(nodes.adapter_options.LoRAOptions, 4, 4.0, 0.0, False, 0.2, False)
    adapter = run(nodes.training.TrainMotionAdapter, model, latents, "a shape is moving", "lora", 2, 1e-2, 0, "auto",
                  False, adapter_options=options)[0]
    first = nodes.adapter_files.ExportMotionLoRA.execute(adapter, "orbit")
    second = nodes.adapter_files.ExportMotionLoRA.execute(adapter, "orbit")
    assert (first.args[0], second.args[0]) == ("orbit_00001.safetensors", "orbit_00002.safetensors")
    assert "left out" not in first.ui.as_dict()["text"][0]
    assert nodes.adapter_files.LoadMotionLoRA.validate_inputs("orbit_00001.safetensors") is True
    (imported,) = run(nodes.adapter_files.LoadMotionLoRA, model, "orbit_00001.safetensors")
    assert imported.backbone == model.fingerprint and len(imported.names) == len(adapter.names)
    with_feed_forward = run(nodes.training.TrainMotionAdapter, model, latents, "a shape is moving", "lora", 1, 1e-2, 0,
                            "auto", False)[0]
    note = nodes.adapter_files.ExportMotionLoRA.execute(with_feed_forward, "orbit").ui.as_dict()["text"][0]
    assert "14 feed-forward/spatial layers left out" in note
