"""A LoRA trained on Wan, exported in ComfyUI's format, applied by ComfyUI's own LoRA code (key map,
loader, model patcher) to ComfyUI's own Wan model changes its output as the adapter changes the pack's."""

import types

import pytest
import torch

from support.wan_files import transformer_to_original


def comfy_wan(transformer):
    """ComfyUI's ``WanModel`` holding the tiny transformer's weights, inside a module ComfyUI's LoRA key
    map reads (``diffusion_model.*`` names, as a loaded ComfyUI model has)."""
    import comfy.ops
    from comfy.ldm.wan.model import WanModel

    holder = torch.nn.Module()
    holder.diffusion_model = WanModel(dim=24, ffn_dim=32, freq_dim=256, text_dim=16, in_dim=16, out_dim=16,
                                      num_heads=2, num_layers=2, operations=comfy.ops.disable_weight_init,
                                      device="cpu", dtype=torch.float32).eval()
    holder.diffusion_model.load_state_dict(transformer_to_original(transformer), strict=True)
    holder.model_config = types.SimpleNamespace(unet_config={})  # what the key map asks of a model
    return holder


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_comfyuis_lora_loader_applies_the_export_as_the_pack_applies_the_adapter(pack, strength):
    import comfy.lora
    import comfy.model_patcher

    core = __import__(f"{pack.__name__}.motion_core", fromlist=["testing", "adapters"])
    testing = __import__(f"{pack.__name__}.motion_core.testing", fromlist=["tiny_wan_transformer"])
    adapters = __import__(f"{pack.__name__}.motion_core.adapters", fromlist=["LoRAAdapter", "make_view"])
    comfy_lora = __import__(f"{pack.__name__}.motion_core.adapters.comfy_lora", fromlist=["to_comfy_wan"])
    backbones = __import__(f"{pack.__name__}.motion_core.backbones", fromlist=["WanBackbone"])
    del core

    transformer = testing.tiny_wan_transformer().requires_grad_(False)
    fresh = adapters.LoRAAdapter.for_unet(transformer, "wan:tiny", (3, 4, 4), 0, rank=4, alpha=8.0, dropout=0.0)
    gen = torch.Generator().manual_seed(5)
    trained = adapters.LoRAAdapter.from_tensors(
        {k: 0.2 * torch.randn(v.shape, generator=gen) for k, v in fresh.to_tensors().items()}, dict(fresh.metadata))
    x, text = torch.randn(1, 16, 3, 4, 4, generator=gen), torch.randn(1, 7, 16, generator=gen)
    t = torch.tensor([600.0])

    view = adapters.make_view(transformer)
    trained.attach(view, strength=strength)
    with torch.no_grad():
        in_the_pack = backbones.WanBackbone.call_denoiser(view, x, t, text)
        base = backbones.WanBackbone.call_denoiser(transformer, x, t, text)
    assert (in_the_pack - base).abs().max() > 1e-3

    holder = comfy_wan(transformer)
    key_map = comfy.lora.model_lora_keys_unet(holder, {})
    patches = comfy.lora.load_lora(comfy_lora.to_comfy_wan(trained), key_map)
    assert len(patches) == len(trained.names)  # every layer found by ComfyUI's own key map
    patcher = comfy.model_patcher.ModelPatcher(holder, load_device=torch.device("cpu"),
                                               offload_device=torch.device("cpu"))
    patcher.add_patches(patches, strength)
    patcher.patch_model()
    with torch.no_grad():
        in_comfyui = holder.diffusion_model(x, t, text)
    patcher.unpatch_model()
    # ComfyUI computes its sinusoids and RoPE in float64 (tests/nodes/test_wan_nodes.py): equal to ~1e-5
    torch.testing.assert_close(in_comfyui, in_the_pack, rtol=0, atol=2e-5)


def test_only_wan_loras_are_exported_in_comfyuis_format(pack):
    testing = __import__(f"{pack.__name__}.motion_core.testing", fromlist=["tiny_unet_motion"])
    adapters = __import__(f"{pack.__name__}.motion_core.adapters", fromlist=["LoRAAdapter"])
    comfy_lora = __import__(f"{pack.__name__}.motion_core.adapters.comfy_lora", fromlist=["to_comfy_wan"])
    lora = adapters.LoRAAdapter.for_unet(testing.tiny_unet_motion(), "animatediff:tiny", (8, 8, 8), 0, rank=2)
    with pytest.raises(ValueError, match="^adapter: this LoRA was trained on animatediff:tiny; ComfyUI LoRA files "
                                         "are written for Wan models"):
        comfy_lora.to_comfy_wan(lora)


def test_export_motion_lora_writes_a_wan_lora_into_comfyuis_lora_folder(pack, tmp_path):
    import folder_paths
    from safetensors.torch import load_file

    testing = __import__(f"{pack.__name__}.motion_core.testing", fromlist=["tiny_wan_transformer"])
    adapters = __import__(f"{pack.__name__}.motion_core.adapters", fromlist=["LoRAAdapter"])
    folder_paths.add_model_folder_path("loras", str(tmp_path / "loras"), is_default=True)
    lora = adapters.LoRAAdapter.for_unet(testing.tiny_wan_transformer(), "wan:tiny", (3, 4, 4), 0, rank=2)
    result = pack.nodes.adapter_files.ExportMotionLoRA.execute(lora, "wan/orbit")
    assert result.args[0] == "wan/orbit_00001.safetensors"
    written = load_file(tmp_path / "loras" / "wan" / "orbit_00001.safetensors")
    assert "diffusion_model.blocks.0.self_attn.q.lora_A.weight" in written
    assert len(written) == 3 * len(lora.names)  # A, B and alpha per layer
