"""The pack's models in ComfyUI's memory manager, in-process with the host's own model management:
a loaded model is in ComfyUI's loaded-model list, every node that computes asks ComfyUI to load it
with the memory its step needs, an eviction of all models removes it and the next node brings it
back, and dropping the model drops its registration."""

import gc
import importlib

import pytest
import torch

FRAMES, SIZE = 4, 16


@pytest.fixture(scope="module")
def tiny_folder(pack, tmp_path_factory):
    import folder_paths

    root = tmp_path_factory.mktemp("memory_models")
    testing = importlib.import_module(f"{pack.__name__}.motion_core.testing")
    testing.write_tiny_text_to_video_folder(root / "diffusers" / "tiny-memory")
    folder_paths.add_model_folder_path("diffusers", str(root / "diffusers"), is_default=True)
    return "tiny-memory"


def run(node, *args, **kwargs):
    with torch.inference_mode():
        return node.execute(*args, **kwargs).args


def registered(pack) -> list:
    """The containers of the pack's models in ComfyUI's loaded-model list."""
    import comfy.model_management

    memory = pack.nodes.memory
    return [loaded.model.model for loaded in comfy.model_management.current_loaded_models
            if loaded.model is not None and isinstance(loaded.model.model, memory.VideoModelWeights)]


@pytest.fixture
def load_requests(pack, monkeypatch):
    """Every ``load_models_gpu`` call: (model classes, memory_required, force_full_load)."""
    import comfy.model_management

    calls, original = [], comfy.model_management.load_models_gpu

    def recording(models, memory_required=0, *args, force_full_load=False, **kwargs):
        calls.append(([type(m.model).__name__ for m in models], memory_required, force_full_load))
        return original(models, memory_required, *args, force_full_load=force_full_load, **kwargs)

    monkeypatch.setattr(comfy.model_management, "load_models_gpu", recording)
    return calls


def test_a_loaded_model_is_in_comfyuis_list_with_its_weights(pack, tiny_folder, load_requests):
    (model,) = run(pack.nodes.model.LoadVideoModel, tiny_folder, "fp32", "none", "sdpa", 8)
    (weights,) = [w for w in registered(pack) if w.unet is model.unet]
    assert weights.vae is model.vae and weights.text_encoder is model.text_encoder
    patcher = pack.nodes.memory.patcher(model)
    assert patcher.model is weights and patcher.model_size() == sum(
        tensor.nbytes for module in model.weight_modules().values() for tensor in module.state_dict().values())
    assert patcher.loaded_size() == patcher.model_size(), "loaded completely"
    assert load_requests == [(["VideoModelWeights"], 0, True)]


def test_every_node_that_computes_asks_comfyui_first_with_its_memory(pack, tiny_folder, load_requests):
    nodes = pack.nodes
    (model,) = run(nodes.model.LoadVideoModel, tiny_folder, "fp32", "none", "sdpa", 8)
    frames = torch.rand(FRAMES, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(0))
    latents, _ = run(nodes.model.EncodeReference, model, frames, 0, 0)
    adapter, _ = run(nodes.training.TrainMotionAdapter, model, latents, "a square", "temporal_attention", 1, 0.0,
                     0, "auto", False)
    (inverted,) = run(nodes.generation.InvertVideo, model, latents, 2, "", 1.0)
    (video,) = run(nodes.generation.GenerateVideo, model, inverted, "a square", "", 2, 4.0, 1.0, adapter)
    run(nodes.model.DecodeVideo, model, video)
    asked = [memory for classes, memory, full in load_requests[1:] if classes == ["VideoModelWeights"] and full]
    assert len(asked) == 5 == len(load_requests) - 1, load_requests
    memory = nodes.memory
    shape = tuple(latents.samples.shape)
    assert asked[1:4] == [memory.working_memory(model, task, shape) for task in ("train", "invert", "sample")]
    assert asked[1] == 3 * asked[2] > 0, "training asks for more than a forward pass"


def test_unloading_all_models_removes_it_and_the_next_node_loads_it_again(pack, tiny_folder):
    import comfy.model_management

    nodes = pack.nodes
    (model,) = run(nodes.model.LoadVideoModel, tiny_folder, "fp32", "none", "sdpa", 8)
    frames = torch.rand(FRAMES, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(1))
    comfy.model_management.unload_all_models()
    assert not [w for w in registered(pack) if w.unet is model.unet]
    latents, _ = run(nodes.model.EncodeReference, model, frames, 0, 0)
    assert [w for w in registered(pack) if w.unet is model.unet], "the node loaded it through ComfyUI again"
    (decoded,) = run(nodes.model.DecodeVideo, model, latents)
    assert decoded.shape == (FRAMES, SIZE, SIZE, 3)


def test_a_dropped_model_leaves_comfyuis_list_without_a_leak(pack, tiny_folder):
    import comfy.model_management

    (model,) = run(pack.nodes.model.LoadVideoModel, tiny_folder, "fp32", "none", "sdpa", 8)
    before = len(registered(pack))
    del model
    gc.collect()
    comfy.model_management.cleanup_models()
    assert len(registered(pack)) == before - 1
    assert not any(loaded.is_dead() for loaded in comfy.model_management.current_loaded_models)


def test_an_offloading_model_is_registered_where_its_parts_stay(pack, tiny_folder, monkeypatch):
    """offload=model moves each part to the device itself (hold): ComfyUI registers it on the
    offload device and makes room on the compute device for the step and the largest part."""
    import comfy.model_management
    import folder_paths

    backbones = importlib.import_module(f"{pack.__name__}.motion_core.backbones")
    model = backbones.load_backbone(folder_paths.get_folder_paths("diffusers")[0] + "/" + tiny_folder,
                                    backbones.ModelOptions(dtype="fp32", device="cpu"))
    model._offload = True  # what offload=model means on a GPU (on the CPU the loader keeps it off)
    freed = []
    monkeypatch.setattr(comfy.model_management, "free_memory", lambda size, device, **_: freed.append((size, device)))
    memory = pack.nodes.memory
    memory.load(model, "sample", (1, 4, FRAMES, 8, 8))
    patcher = memory.patcher(model)
    assert patcher.load_device == patcher.offload_device == comfy.model_management.unet_offload_device()
    largest = max(comfy.model_management.module_size(m) for m in model.weight_modules().values())
    assert freed == [(memory.working_memory(model, "sample", (1, 4, FRAMES, 8, 8)) + largest, model.device)]
    assert [w for w in registered(pack) if w.unet is model.unet]
    with pytest.raises(ValueError, match="task 'dream'"):
        memory.working_memory(model, "dream", (1, 4, 2, 2, 2))


def test_room_is_made_for_fp8_weights_as_they_load_dequantised(pack, tmp_path, monkeypatch):
    """An fp8 file takes its values at the model's dtype once loaded: the room asked for counts them so."""
    import os

    import comfy.model_management

    from support.original_files import _save

    freed = []
    monkeypatch.setattr(comfy.model_management, "free_memory", lambda size, device, **_: freed.append((size, device)))
    path = str(_save(tmp_path / "wan_fp8_e4m3fn.safetensors", {"w": torch.zeros(100, 10, dtype=torch.float8_e4m3fn),
                                                                "b": torch.zeros(10, dtype=torch.float16)}))
    gpu = torch.device("cuda")
    for dtype in (torch.float16, torch.float32):
        pack.nodes.memory.make_room_for_files([path], gpu, dtype)
    assert freed == [(os.path.getsize(path) + 1000, gpu), (os.path.getsize(path) + 3000, gpu)]
