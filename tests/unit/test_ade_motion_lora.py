"""Motion LoRAs in AnimateDiff-Evolved's format: an exported LoRA, merged the way ADE merges, computes
what the adapter computes in the pack; an ADE file imports back to the same adapter."""

import pytest
import torch
from safetensors.torch import load_file

from motion_core.adapters import ADAPTER_KINDS, LoRAAdapter, make_view
from motion_core.adapters.ade import from_ade, load_ade, save_ade, to_ade
from motion_core.backbones import AnimateDiffBackbone, motion_sites
from motion_core.backbones.animatediff import load_motion_adapter
from motion_core.errors import InputError
from motion_core.testing import TINY_TEXT_DIM, tiny_motion_adapter, tiny_unet2d, tiny_unet_motion
from support.original_files import motion_adapter_to_original

SHAPE = (8, 8, 8)


def ade_merge(motion_module: dict, lora: dict, strength: float) -> dict:
    """ADE's documented merge rule, written here independently of the pack: for every key that is not
    an ``up`` key, ``W[model key] += strength · up @ down``."""
    merged = {name: tensor.clone() for name, tensor in motion_module.items()}
    for key in lora:
        if "up." in key:
            continue
        up_key = key.replace(".down.", ".up.")
        model_key = key.replace("processor.", "").replace("_lora", "").replace("down.", "").replace("up.", "")
        model_key = model_key.replace("to_out.", "to_out.0.")
        merged[model_key] += strength * lora[up_key] @ lora[key]
    return merged


def trained_lora(unet, feed_forward=False, seed=3):
    """A LoRA as training leaves it: random A and B, alpha ≠ rank (so the scale must be baked in)."""
    adapter = LoRAAdapter.for_unet(unet, "animatediff:tiny", SHAPE, 0, rank=4, alpha=8.0, dropout=0.0,
                                   feed_forward=feed_forward)
    gen = torch.Generator().manual_seed(seed)
    tensors = {k: 0.1 * torch.randn(v.shape, generator=gen) for k, v in adapter.to_tensors().items()}
    return LoRAAdapter.from_tensors(tensors, dict(adapter.metadata))


@pytest.fixture(scope="module")
def inputs():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(1, 4, *SHAPE, generator=gen), torch.tensor([400]), torch.randn(1, 7, TINY_TEXT_DIM, generator=gen)


def run(unet, inputs):
    with torch.no_grad():
        return AnimateDiffBackbone.call_denoiser(unet, *inputs)


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_an_exported_lora_merged_as_ade_merges_computes_what_the_adapter_computes(inputs, strength, tmp_path):
    from diffusers import UNetMotionModel

    unet = tiny_unet_motion().requires_grad_(False)
    adapter = trained_lora(unet)
    view = make_view(unet)
    adapter.attach(view, strength=strength)
    in_the_pack = run(view, inputs)
    assert (in_the_pack - run(unet, inputs)).abs().max() > 1e-3

    tensors, left_out = to_ade(adapter)
    assert left_out == [] and all(v.dtype == torch.float32 for v in tensors.values())
    merged_file = ade_merge(motion_adapter_to_original(tiny_motion_adapter()), tensors, strength)
    merged, _ = load_motion_adapter_from(merged_file, tmp_path)
    with_merged_weights = UNetMotionModel.from_unet2d(tiny_unet2d(), merged).eval()
    torch.testing.assert_close(run(with_merged_weights, inputs), in_the_pack, rtol=0, atol=1e-5)


def load_motion_adapter_from(state: dict, folder):
    """Load an original-format motion module state through the pack's loader (tiny heads and groups)."""
    import json

    from safetensors.torch import save_file

    from motion_core.testing import TINY_MOTION_MODULE

    save_file({k: v.contiguous() for k, v in state.items()}, folder / "merged.safetensors")
    (folder / "configs" / "motion_adapter").mkdir(parents=True)
    settings = {key: TINY_MOTION_MODULE[key] for key in ("motion_num_attention_heads", "motion_norm_num_groups")}
    (folder / "configs" / "motion_adapter" / "config.json").write_text(json.dumps(settings))
    return load_motion_adapter(folder / "merged.safetensors", torch.float32, folder / "configs")


def test_an_ade_file_imports_back_to_the_same_adapter(tmp_path, inputs):
    unet = tiny_unet_motion().requires_grad_(False)
    adapter = trained_lora(unet)
    path, left_out = save_ade(adapter, tmp_path / "orbit.safetensors")
    assert set(load_file(path)) == set(to_ade(adapter)[0])
    imported = load_ade(path, backbone="animatediff:tiny")
    assert isinstance(imported, ADAPTER_KINDS["lora"]) and imported.options["alpha"] == imported.options["rank"] == 4
    assert imported.backbone == "animatediff:tiny" and not imported.options["feed_forward"]
    one, two = make_view(unet), make_view(unet)
    adapter.attach(one), imported.attach(two)
    torch.testing.assert_close(run(two, inputs), run(one, inputs), rtol=0, atol=1e-6)
    with pytest.raises(InputError, match="^filename: 'orbit.safetensors' already exists"):
        save_ade(adapter, path)


def test_a_model_of_another_family_is_refused_by_name(tmp_path):
    """Found by the fuzz tier: Load Motion LoRA on a ModelScope model made an adapter stamped with that
    model, which Generate Video then refused saying "the adapter was made for unet3d:…"."""
    path, _ = save_ade(trained_lora(tiny_unet_motion().requires_grad_(False)), tmp_path / "orbit.safetensors")
    for family in ("unet3d", "wan"):
        with pytest.raises(InputError, match=f"^model: motion LoRAs adapt AnimateDiff motion modules; this is a "
                                             f"{family} model"):
            load_ade(path, backbone=f"{family}:0123")


def test_feed_forward_layers_are_reported_as_left_out():
    unet = tiny_unet_motion().requires_grad_(False)
    tensors, left_out = to_ade(trained_lora(unet, feed_forward=True))
    assert left_out and all(".ff.net." in name for name in left_out)
    assert len(left_out) == 2 * len(motion_sites(unet))  # ff.net.0.proj and ff.net.2 of each site's one block
    assert len(tensors) == 2 * 8 * len(motion_sites(unet))  # down and up of q, k, v, out in attn1 and attn2


def test_what_ade_cannot_read_is_refused_by_name():
    unet = tiny_unet_motion().requires_grad_(False)
    tensors, _ = to_ade(trained_lora(unet))
    with_alpha = {**tensors, next(iter(tensors)).replace("down.weight", "alpha"): torch.tensor(4.0)}
    with pytest.raises(InputError, match="^lora_name: tensor .*alpha.* is not part of an AnimateDiff motion LoRA"):
        from_ade(with_alpha)
    half = {k: v for k, v in tensors.items() if not k.endswith("to_q_lora.up.weight")}
    with pytest.raises(InputError, match="has only its down half; the file is incomplete"):
        from_ade(half)
    embeddings = ADAPTER_KINDS["motion_embeddings"].for_unet(unet, "", SHAPE, 0, blocks="all", frame_slots=8)
    with pytest.raises(InputError, match="^adapter: only LoRA adapters can be exported as motion LoRAs; this one is "
                                         "motion_embeddings"):
        to_ade(embeddings)
