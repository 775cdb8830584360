"""The pipeline nodes as ComfyUI runs them (in inference mode), on a tiny model saved as a real
diffusers folder in a ``models/diffusers`` folder the host's folder_paths knows."""

import importlib

import pytest
import torch

FRAMES, SIZE, STEPS = 8, 16, 3


def core(pack, module: str):
    """A motion_core module as the pack imports it (the same classes the nodes use)."""
    return importlib.import_module(f"{pack.__name__}.motion_core.{module}")


@pytest.fixture(scope="module")
def models_dir(pack, tmp_path_factory):
    import folder_paths

    root = tmp_path_factory.mktemp("models")
    core(pack, 'testing').write_tiny_text_to_video_folder(root / "diffusers" / "tiny-t2v")
    (root / "diffusers" / "not-a-video-model").mkdir()
    (root / "diffusers" / "not-a-video-model" / "model_index.json").write_text(
        '{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}')
    folder_paths.add_model_folder_path("diffusers", str(root / "diffusers"), is_default=True)
    folder_paths.add_model_folder_path("motion_adapters", str(root / "motion_adapters"), is_default=True)
    return root


@pytest.fixture(scope="module")
def nodes(pack):
    return pack.nodes


def run(node, *args, **kwargs):
    """Execute a node the way ComfyUI does: under inference mode."""
    with torch.inference_mode():
        return node.execute(*args, **kwargs).args


@pytest.fixture(scope="module")
def model(nodes, models_dir):
    (backbone,) = run(nodes.model.LoadVideoModel, "tiny-t2v", "auto", "none", "sdpa", 8)
    return backbone


@pytest.fixture(scope="module")
def reference(nodes, model):
    frames = torch.rand(FRAMES, SIZE + 3, SIZE + 5, 3, generator=torch.Generator().manual_seed(0))
    latents, fitted = run(nodes.model.EncodeReference, model, frames, 0, 0)
    return latents


def train(nodes, model, reference, seed=0, steps=STEPS, **options):
    defaults = dict(prompt="a shape is moving", parameterisation="temporal_attention", steps=steps, lr=1e-3,
                    seed=seed, precision="auto", gradient_checkpointing=False)
    return run(nodes.training.TrainMotionAdapter, model, reference, **defaults | options)


def generate(nodes, model, reference, adapter=None, strength=1.0):
    (inverted,) = run(nodes.generation.InvertVideo, model, reference, STEPS, "", 1.0)
    (noise,) = run(nodes.generation.InitialNoise, inverted, "blend", 0.5, 7)
    (latents,) = run(nodes.generation.GenerateVideo, model, noise, "a red square", "", STEPS, 4.0, strength, adapter)
    return latents


def test_model_list_shows_diffusers_folders_and_the_loader_refuses_other_models(nodes, models_dir):
    loader = nodes.model.LoadVideoModel
    options = loader.GET_SCHEMA().inputs[0].options
    assert "tiny-t2v" in options
    message = loader.validate_inputs("not-a-video-model")
    assert message.startswith("motion_module: 'not-a-video-model' is a Stable Diffusion folder: choose a motion module")
    assert loader.validate_inputs("../escape").startswith("model_name: ")
    assert loader.validate_inputs("tiny-t2v") is True


def test_encode_resizes_frames_to_what_the_model_takes(nodes, model):
    frames = torch.rand(4, 19, 21, 3)
    latents, fitted = run(nodes.model.EncodeReference, model, frames, 0, 0)
    assert fitted.shape == (4, 16, 20, 3)  # rounded down to the model's multiple of 4
    assert latents.samples.shape == (1, 4, 4, 8, 10) and not latents.noise


def test_encode_refuses_a_single_frame_and_sizes_that_are_no_multiple(nodes, model):
    with pytest.raises(ValueError, match=r"^frames: 1 frame given; motion needs at least 2"):
        run(nodes.model.EncodeReference, model, torch.rand(1, 16, 16, 3), 0, 0)
    with pytest.raises(ValueError, match=r"^width: 18 is not a multiple of 4"):
        run(nodes.model.EncodeReference, model, torch.rand(2, 16, 16, 3), 18, 0)


def test_training_changes_no_base_weight_and_other_branches_see_the_base_model(nodes, model, reference):
    before = {name: tensor.clone() for name, tensor in model.unet.state_dict().items()}
    plain_before = generate(nodes, model, reference)
    adapter, loss = train(nodes, model, reference)
    assert all(torch.equal(before[name], tensor) for name, tensor in model.unet.state_dict().items())
    assert torch.equal(generate(nodes, model, reference).samples, plain_before.samples)
    assert len(loss["loss"]) == STEPS and all(isinstance(value, float) for value in loss["loss"])
    assert set(loss) >= {"loss", "base", "sma_global", "sma_local"}
    trained = [name for name, delta in adapter.to_tensors().items() if delta.abs().sum() > 0]
    assert trained and all(name.split(".")[-2] in ("to_q", "to_k", "to_v") for name in trained)
    assert all(".temp_attentions." in name or name.startswith("transformer_in.") for name in trained)


def test_the_same_seed_gives_the_same_adapter(nodes, model, reference):
    first, _ = train(nodes, model, reference, seed=3)
    second, _ = train(nodes, model, reference, seed=3)
    other, _ = train(nodes, model, reference, seed=4)
    tensors = first.to_tensors()
    assert all(torch.equal(tensors[name], tensor) for name, tensor in second.to_tensors().items())
    assert not all(torch.equal(tensors[name], tensor) for name, tensor in other.to_tensors().items())


OBJECTIVE_MSE = dict(base_loss="mse", vmc_variant="released", vmc_frame_stride=1, debias_beta=1.0,
                     sma_global_weight=0.0, sma_global_levels=2, sma_global_wavelet="haar",
                     sma_global_level_weights="", sma_local_weight=0.0, sma_local_delta=0.05, sma_local_base=1.0,
                     sma_local_phase="wrapped", x0_estimate="scaled")


def test_the_objective_input_is_used(nodes, model, reference):
    (objective,) = run(nodes.objectives.MotionObjective, **OBJECTIVE_MSE)
    _, loss = train(nodes, model, reference, objective=objective)
    assert set(loss) == {"loss", "base"}


TRAINING_DEFAULTS = {"timestep_low": 0.0, "timestep_high": 1.0, "timestep_shift": 1.0, "loss_weighting": "none",
                     "min_snr_gamma": 5.0}


def test_the_appended_training_inputs_default_to_what_a_saved_workflow_without_them_meant(nodes, model, reference):
    """A workflow saved before timestep_* and loss_weighting existed sends none of them: it trains the
    same adapter as the explicit defaults (uniform timesteps, unweighted loss), which record nothing."""
    inputs = {i.id: i for i in nodes.training.TrainMotionAdapter.GET_SCHEMA().inputs}
    assert {name: inputs[name].default for name in TRAINING_DEFAULTS} == TRAINING_DEFAULTS
    assert all(inputs[name].optional for name in TRAINING_DEFAULTS)
    old, _ = train(nodes, model, reference, seed=5)
    explicit, _ = train(nodes, model, reference, seed=5, **TRAINING_DEFAULTS)
    tensors = old.to_tensors()
    assert all(torch.equal(tensors[name], tensor) for name, tensor in explicit.to_tensors().items())
    assert not {"timesteps", "loss_weighting"} & set(explicit.metadata)


def test_the_timestep_and_loss_weighting_inputs_are_used_and_recorded(nodes, model, reference):
    import json

    plain, _ = train(nodes, model, reference, seed=5)
    adapter, loss = train(nodes, model, reference, seed=5, timestep_low=0.6, timestep_shift=3.0,
                          loss_weighting="min_snr", min_snr_gamma=2.0)
    assert json.loads(adapter.metadata["timesteps"]) == {"low": 0.6, "high": 1.0, "shift": 3.0}
    assert json.loads(adapter.metadata["loss_weighting"]) == {"kind": "min_snr", "gamma": 2.0}
    tensors = plain.to_tensors()
    assert not all(torch.equal(tensors[name], tensor) for name, tensor in adapter.to_tensors().items())
    assert len(loss["loss"]) == STEPS


def test_added_training_clips_are_chained_and_trained_on_with_their_prompts(nodes, model, reference):
    import json

    frames = torch.rand(FRAMES, SIZE + 3, SIZE + 5, 3, generator=torch.Generator().manual_seed(1))
    (second, _), (third, _) = (run(nodes.model.EncodeReference, model, f, 0, 0) for f in (frames, frames.flip(1)))
    (chain,) = run(nodes.training.AddTrainingClip, second, "a circle is moving")
    (chain,) = run(nodes.training.AddTrainingClip, third, "a star is moving", chain)
    assert [prompt for _, prompt in chain] == ["a circle is moving", "a star is moving"]
    alone, _ = train(nodes, model, reference, seed=5)
    together, loss = train(nodes, model, reference, seed=5, more_references=chain)
    assert [r["prompt"] for r in json.loads(together.metadata["references"])] == [
        "a shape is moving", "a circle is moving", "a star is moving"]
    tensors = alone.to_tensors()
    assert not all(torch.equal(tensors[name], tensor) for name, tensor in together.to_tensors().items())
    assert len(loss["loss"]) == STEPS


def test_an_added_clip_of_another_size_or_model_is_refused_by_input_name(nodes, model, reference):
    frames = torch.rand(FRAMES - 2, SIZE + 3, SIZE + 5, 3, generator=torch.Generator().manual_seed(1))
    (shorter, _) = run(nodes.model.EncodeReference, model, frames, 0, 0)
    (chain,) = run(nodes.training.AddTrainingClip, shorter, "a circle is moving")
    with pytest.raises(ValueError, match=r"^more_references: clip 2 has latents of 6 frames of 8×10 but the first "
                                         r"has 8 frames of 8×10"):
        train(nodes, model, reference, more_references=chain)
    (inverted,) = run(nodes.generation.InvertVideo, model, reference, STEPS, "", 1.0)
    (chain,) = run(nodes.training.AddTrainingClip, inverted, "noise")
    with pytest.raises(ValueError, match=r"^more_references: expected clean latents but got noise"):
        train(nodes, model, reference, more_references=chain)


@pytest.mark.parametrize("inputs, message", [
    ({"timestep_low": 0.8, "timestep_high": 0.2}, r"^timestep_low: \[0.8, 0.2\] is not a timestep range"),
    ({"timestep_shift": 0.0}, r"^timestep_shift: 0.0 is not valid; use a number > 0"),
    ({"loss_weighting": "snr"}, r"^loss_weighting: 'snr' is not valid; use one of none, min_snr, x0, v"),
    ({"loss_weighting": "min_snr", "min_snr_gamma": 0.0}, r"^min_snr_gamma: 0.0 is not valid; use a number > 0"),
])
def test_bad_training_options_are_refused_by_input_name(nodes, model, reference, inputs, message):
    with pytest.raises(ValueError, match=message):
        train(nodes, model, reference, **inputs)


def test_saved_and_loaded_adapter_generates_exactly_as_the_trained_one(nodes, model, reference, models_dir):
    adapter, _ = train(nodes, model, reference)
    in_memory = generate(nodes, model, reference, adapter)
    (name,) = run(nodes.adapter_files.SaveMotionAdapter, adapter, "tests/turn")
    assert name == "tests/turn_00001.safetensors"
    assert name in nodes.adapter_files.LoadMotionAdapter.GET_SCHEMA().inputs[0].options
    (loaded,) = run(nodes.adapter_files.LoadMotionAdapter, name)
    assert torch.equal(generate(nodes, model, reference, loaded).samples, in_memory.samples)
    assert not torch.equal(generate(nodes, model, reference, loaded, strength=0.0).samples, in_memory.samples)


def test_saving_under_an_existing_name_writes_the_next_number_and_keeps_the_old_file(nodes, model, reference,
                                                                                    models_dir):
    adapter, _ = train(nodes, model, reference)
    (first,) = run(nodes.adapter_files.SaveMotionAdapter, adapter, "again")
    saved = (models_dir / "motion_adapters" / first).read_bytes()
    (second,) = run(nodes.adapter_files.SaveMotionAdapter, adapter, "again")
    assert (first, second) == ("again_00001.safetensors", "again_00002.safetensors")
    assert (models_dir / "motion_adapters" / first).read_bytes() == saved


def test_adapter_files_that_cannot_be_used_are_refused_by_name(nodes, models_dir):
    folder = models_dir / "motion_adapters"
    folder.mkdir(exist_ok=True)
    (folder / "broken.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match=r"^adapter_name: 'broken.safetensors' could not be read as safetensors"):
        run(nodes.adapter_files.LoadMotionAdapter, "broken.safetensors")
    assert nodes.adapter_files.LoadMotionAdapter.validate_inputs("missing.safetensors").startswith("adapter_name: ")


def test_an_adapter_file_from_another_model_is_refused_when_used(nodes, model, reference, pack, models_dir):
    adapter = core(pack, "pipeline").new_adapter(model)
    adapter.metadata["backbone"] = "unet3d:0123456789abcdef"  # as written by training on another model
    core(pack, "adapters").save_adapter(adapter, models_dir / "motion_adapters" / "other.safetensors")
    (loaded,) = run(nodes.adapter_files.LoadMotionAdapter, "other.safetensors")
    with pytest.raises(ValueError, match=r"^adapter: adapter was trained on unet3d:0123456789abcdef, this model is"):
        generate(nodes, model, reference, loaded)


def test_noise_and_clean_latents_cannot_be_swapped(nodes, model, reference):
    with pytest.raises(ValueError, match=r"^noise: expected noise but got clean latents"):
        run(nodes.generation.GenerateVideo, model, reference, "x", "", STEPS, 1.0, 1.0)
    (inverted,) = run(nodes.generation.InvertVideo, model, reference, STEPS, "", 1.0)
    with pytest.raises(ValueError, match=r"^latents: expected clean latents but got noise"):
        run(nodes.model.DecodeVideo, model, inverted)


def test_decode_returns_image_frames(nodes, model, reference):
    (frames,) = run(nodes.model.DecodeVideo, model, generate(nodes, model, reference))
    assert frames.shape == (FRAMES, SIZE, SIZE + 4, 3) and 0 <= frames.min() and frames.max() <= 1


def test_cancel_during_training_outputs_nothing_and_changes_nothing(nodes, model, reference, monkeypatch):
    import comfy.model_management

    before = {name: tensor.clone() for name, tensor in model.unet.state_dict().items()}
    calls = []
    original = comfy.model_management.throw_exception_if_processing_interrupted

    def cancel_at_second_step():
        calls.append(1)
        if len(calls) == 2:
            comfy.model_management.interrupt_current_processing(True)
        original()

    monkeypatch.setattr(comfy.model_management, "throw_exception_if_processing_interrupted", cancel_at_second_step)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        train(nodes, model, reference, steps=50)
    assert len(calls) == 2
    assert all(torch.equal(before[name], tensor) for name, tensor in model.unet.state_dict().items())


GUIDANCE = {"guided_fraction": 0.5, "adam_steps": 2, "lr": 0.05, "latent_weight": 20.0, "difference_weight": 5.0,
            "velocity_regulariser": 0.9, "seed": 0, "reference_estimate": "noised"}


def guided_generate(nodes, model, reference, guidance, adapter=None):
    (noise,) = run(nodes.generation.InitialNoise, run(nodes.generation.InvertVideo, model, reference, STEPS, "", 1.0)[0],
                   "random", 0.0, 7)
    (latents,) = run(nodes.generation.GenerateVideo, model, noise, "a red square", "", STEPS, 4.0, 1.0, adapter,
                     "object", guidance)
    return latents


def test_motion_guidance_steers_generate_video_without_changing_the_model(nodes, model, reference):
    """Motion Guidance → Generate Video's appended motion_guidance, in inference mode as ComfyUI runs
    nodes: the video changes, the shared model does not; guided_fraction 0 is the unguided video."""
    before = {name: tensor.clone() for name, tensor in model.unet.state_dict().items()}
    (guidance,) = run(nodes.generation.MotionGuidanceNode, reference, **GUIDANCE)
    plain = guided_generate(nodes, model, reference, None)
    steered = guided_generate(nodes, model, reference, guidance)
    assert steered.samples.shape == plain.samples.shape and not torch.allclose(steered.samples, plain.samples)
    (off,) = run(nodes.generation.MotionGuidanceNode, reference, **GUIDANCE | {"guided_fraction": 0.0})
    assert torch.equal(guided_generate(nodes, model, reference, off).samples, plain.samples)
    adapter, _ = train(nodes, model, reference)
    with_adapter = guided_generate(nodes, model, reference, guidance, adapter)
    assert not torch.allclose(with_adapter.samples, steered.samples)
    assert all(torch.equal(before[name], tensor) for name, tensor in model.unet.state_dict().items())
    assert all(parameter.grad is None for parameter in model.unet.parameters())


@pytest.mark.parametrize("inputs, message", [
    ({"guided_fraction": 2.0}, r"^guided_fraction: 2.0 is not valid"),
    ({"lr": 0.0}, r"^lr: 0.0 is not valid"),
    ({"latent_weight": 0.0, "difference_weight": 0.0}, r"^difference_weight: both weights are 0"),
    ({"reference_estimate": "inverted"}, r"^reference_estimate: 'inverted' is not valid"),
])
def test_bad_guidance_settings_are_refused_by_input_name(nodes, reference, inputs, message):
    with pytest.raises(ValueError, match=message):
        run(nodes.generation.MotionGuidanceNode, reference, **GUIDANCE | inputs)


def test_guidance_from_noise_or_of_another_size_is_refused_by_input_name(nodes, model, reference):
    (inverted,) = run(nodes.generation.InvertVideo, model, reference, STEPS, "", 1.0)
    with pytest.raises(ValueError, match=r"^latents: expected the clean reference latents from Encode Reference"):
        run(nodes.generation.MotionGuidanceNode, inverted, **GUIDANCE)
    smaller, _ = run(nodes.model.EncodeReference, model, torch.rand(FRAMES, 8, 8, 3), 0, 0)
    (guidance,) = run(nodes.generation.MotionGuidanceNode, smaller, **GUIDANCE)
    with pytest.raises(ValueError, match=r"^motion_guidance: the reference latents are \(4, 8, 4, 4\) .* but "
                                         r"the noise is \(4, 8, 8, 10\)"):
        guided_generate(nodes, model, reference, guidance)
