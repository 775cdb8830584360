"""Contracts every adapter kind and every model family keeps, tied to their registries: a new kind
(``ADAPTER_KINDS``) or family (``FAMILIES``) fails here until it is given tiny test settings and
passes every check."""

import dataclasses

import pytest
import torch

from motion_core.adapters import ADAPTER_KINDS, make_view
from motion_core.backbones import FAMILIES, LAYOUTS, ModelOptions, family_for, load_backbone
from motion_core.backbones.sites import family_of, motion_sites
from motion_core.errors import InputError
from motion_core.testing import (TINY_TEXT_DIM, tiny_unet3d, tiny_unet_motion, write_tiny_animatediff_folder,
                                 write_tiny_text_to_video_folder)

LATENT_SHAPE = (6, 8, 8)  # frames, latent height, width of the tiny clips here

KIND_OPTIONS = {
    "temporal_attention": {},
    "lora": {"rank": 4, "spatial": True},
    "motion_embeddings": {"blocks": "all", "frame_slots": 8},
}
"""Options a test builds each kind with (every kind of ``ADAPTER_KINDS`` needs an entry)."""

TINY_MODELS = {"unet3d": write_tiny_text_to_video_folder, "animatediff": write_tiny_animatediff_folder}
"""How a test writes a tiny model folder of each family (every family of ``FAMILIES`` needs one)."""

TINY_DENOISERS = {"unet3d": tiny_unet3d, "animatediff": tiny_unet_motion}
"""A tiny denoiser of each family with motion sites, on which every adapter kind is held to its contract."""


def test_every_adapter_kind_and_family_has_its_contract_settings():
    assert set(KIND_OPTIONS) == set(ADAPTER_KINDS)
    assert set(TINY_MODELS) == set(FAMILIES) == set(TINY_DENOISERS)


# --- adapter kinds ------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=sorted(TINY_DENOISERS))
def unet(request):
    return TINY_DENOISERS[request.param]().requires_grad_(False)


@pytest.fixture(scope="module")
def inputs():
    gen = torch.Generator().manual_seed(4)
    return (torch.randn(1, 4, *LATENT_SHAPE, generator=gen), torch.tensor([500]),
            torch.randn(1, 7, TINY_TEXT_DIM, generator=gen))


def run(module, inputs):
    x, t, text = inputs
    with torch.no_grad():
        return family_of(module).call_denoiser(module, x, t, text)


def build(kind, unet):
    return ADAPTER_KINDS[kind].for_unet(unet, f"{family_of(unet).family}:tiny", LATENT_SHAPE, 0, **KIND_OPTIONS[kind])


def perturbed(adapter, seed=1):
    """The adapter with every tensor set to small random values (as training would leave it)."""
    gen = torch.Generator().manual_seed(seed)
    tensors = {name: 0.05 * torch.randn(tensor.shape, generator=gen) for name, tensor in adapter.to_tensors().items()}
    return type(adapter).from_tensors(tensors, dict(adapter.metadata))


@pytest.mark.parametrize("kind", sorted(KIND_OPTIONS))
def test_a_new_adapter_is_fp32_declares_its_layouts_and_changes_nothing(kind, unet, inputs):
    adapter = build(kind, unet)
    assert adapter.kind == kind and set(adapter.LAYOUTS) <= set(LAYOUTS)
    assert all(tensor.dtype == torch.float32 for tensor in adapter.to_tensors().values())
    assert adapter.backbone == f"{family_of(unet).family}:tiny"
    view = make_view(unet)
    adapter.attach(view)
    torch.testing.assert_close(run(view, inputs), run(unet, inputs), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(KIND_OPTIONS))
def test_strength_scales_the_adapter_and_detach_restores_the_view(kind, unet, inputs):
    adapter = perturbed(build(kind, unet))
    view = make_view(unet)
    base = run(unet, inputs)
    attachment = adapter.attach(view, strength=1.0)
    full = run(view, inputs)
    assert (full - base).abs().max() > 1e-3, "an adapter with non-zero tensors must change the output"
    attachment.strength = 0.0
    torch.testing.assert_close(run(view, inputs), base, rtol=0, atol=1e-5)
    attachment.strength = 0.5
    half = run(view, inputs)
    assert 0 < (half - base).abs().max() < (full - base).abs().max()
    attachment.detach()
    assert torch.equal(run(view, inputs), base)


@pytest.mark.parametrize("kind", sorted(KIND_OPTIONS))
def test_tensors_and_metadata_rebuild_the_same_adapter(kind, unet, inputs):
    adapter = perturbed(build(kind, unet))
    again = type(adapter).from_tensors(adapter.to_tensors(), dict(adapter.metadata))
    assert again.to_tensors().keys() == adapter.to_tensors().keys()
    assert all(torch.equal(again.to_tensors()[k], v) for k, v in adapter.to_tensors().items())
    one, two = make_view(unet), make_view(unet)
    adapter.attach(one), again.attach(two)
    assert torch.equal(run(one, inputs), run(two, inputs))


@pytest.mark.parametrize("kind", sorted(KIND_OPTIONS))
def test_a_layout_the_kind_cannot_use_is_refused_naming_kind_and_family(kind, unet, monkeypatch):
    sites, family = motion_sites(unet), family_of(unet)
    joint = [dataclasses.replace(site, layout="joint") for site in sites]
    monkeypatch.setattr(family, "find_motion_sites", classmethod(lambda cls, module: joint))
    with pytest.raises(InputError) as refused:
        build(kind, unet)
    message = str(refused.value)
    assert refused.value.input_name == "parameterisation"
    assert f"{kind} adapters attach to frames motion sites" in message
    assert f"{family.family} models have joint sites" in message


def test_a_module_of_no_family_is_refused_by_name():
    with pytest.raises(InputError, match="Linear is not the denoiser of a known model family; known: unet3d .*animatediff"):
        ADAPTER_KINDS["temporal_attention"].for_unet(torch.nn.Linear(2, 2))


# --- model families -----------------------------------------------------------------------------

@pytest.fixture(scope="module", params=sorted(TINY_MODELS))
def family_folder(request, tmp_path_factory):
    return request.param, TINY_MODELS[request.param](tmp_path_factory.mktemp(request.param) / "tiny")


def test_the_registry_picks_the_family_from_its_files(family_folder, tmp_path):
    name, folder = family_folder
    assert family_for(folder) is FAMILIES[name] and FAMILIES[name].recognises(folder)
    FAMILIES[name].check_files(folder)
    (tmp_path / "empty").mkdir()
    assert not FAMILIES[name].recognises(tmp_path / "empty")
    backbone = load_backbone(folder, ModelOptions(dtype="fp32", device="cpu"))
    assert isinstance(backbone, FAMILIES[name]) and backbone.fingerprint.startswith(f"{name}:")


def test_a_family_declares_motion_sites_and_checkpoint_blocks_that_exist(family_folder):
    name, folder = family_folder
    backbone = load_backbone(folder, ModelOptions(dtype="fp32", device="cpu"))
    sites = motion_sites(backbone.denoiser_module)
    assert sites and all(site.family == name and site.layout in LAYOUTS for site in sites)
    assert all(backbone.denoiser_module.get_submodule(site.name) is site.module for site in sites)
    assert backbone.checkpoint_blocks
    assert all(hasattr(backbone.denoiser_module, block) for block in backbone.checkpoint_blocks)
    assert FAMILIES[name].owns(make_view(backbone.denoiser_module))


def test_a_family_lists_every_module_it_holds_as_weights_a_memory_manager_moves(family_folder):
    """ComfyUI's memory manager (nodes/memory.py) moves what ``weight_modules`` lists and nothing
    else: a module the backbone holds outside them would stay behind on an eviction."""
    _, folder = family_folder
    backbone = load_backbone(folder, ModelOptions(dtype="fp32", device="cpu"))
    listed = {id(module) for root in backbone.weight_modules().values() for module in root.modules()}
    held = {name: value for name, value in vars(backbone).items() if isinstance(value, torch.nn.Module)}
    assert held and all(id(module) in listed for module in held.values()), sorted(held)
    assert id(backbone.denoiser_module) in listed and backbone.offloads is False


def test_the_denoiser_call_casts_its_inputs_to_the_model_dtype(family_folder):
    _, folder = family_folder
    backbone = load_backbone(folder, ModelOptions(dtype="bf16", device="cpu"))
    frames, height, width = LATENT_SHAPE
    x = torch.randn(1, backbone.denoiser_module.config.in_channels, frames, height, width)  # fp32
    text = backbone.encode_prompt(["a square"]).float()
    with torch.no_grad():
        prediction = backbone.call_denoiser(backbone.denoiser_module, x, torch.tensor([10]), text)
    assert prediction.shape == x.shape and prediction.dtype == torch.bfloat16


def test_the_sampling_object_is_consistent(family_folder):
    """x_t from (x0, eps) and the prediction a perfect denoiser would make give x0 back; training
    timesteps are reproducible from their generator."""
    _, folder = family_folder
    sampling = load_backbone(folder, ModelOptions(dtype="fp32", device="cpu")).sampling
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 4, *LATENT_SHAPE, generator=gen), torch.randn(3, 4, *LATENT_SHAPE, generator=gen)
    t = sampling.draw_timesteps(3, torch.Generator().manual_seed(7))
    assert torch.equal(t, sampling.draw_timesteps(3, torch.Generator().manual_seed(7)))
    x_t = sampling.noised(x0, eps, t)
    signal, noise = sampling.scales(t)
    torch.testing.assert_close(x_t, signal.reshape(-1, 1, 1, 1, 1) * x0 + noise.reshape(-1, 1, 1, 1, 1) * eps)
    torch.testing.assert_close(sampling.snr(t), signal.square() / noise.square())
    perfect = sampling.target(x0, eps, t)
    torch.testing.assert_close(sampling.x0_from(perfect, x_t, t), x0, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(sampling.signal_from(perfect, x_t, t), signal.reshape(-1, 1, 1, 1, 1) * x0,
                               rtol=1e-4, atol=1e-4)
