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
from motion_core.testing import (tiny_unet3d, tiny_unet_motion, tiny_wan_transformer, write_tiny_animatediff_folder, write_tiny_text_to_video_folder,
                                 write_tiny_wan_folder)

LATENT_SHAPE = (6, 8, 8)  # frames, latent height, width of the tiny clips here

KIND_OPTIONS = {
    "temporal_attention": {},
    "lora": {"rank": 4, "spatial": True},
    "motion_embeddings": {"blocks": "all", "frame_slots": 8},
}
"""Options a test builds each kind with (every kind of ``ADAPTER_KINDS`` needs an entry)."""

TINY_MODELS = {"unet3d": write_tiny_text_to_video_folder, "animatediff": write_tiny_animatediff_folder,
               "wan": write_tiny_wan_folder}
"""How a test writes a tiny model folder of each family (every family of ``FAMILIES`` needs one)."""

TINY_DENOISERS = {"unet3d": tiny_unet3d, "animatediff": tiny_unet_motion, "wan": tiny_wan_transformer}
"""A tiny denoiser of each family with motion sites, on which every adapter kind is held to its contract."""


def test_every_adapter_kind_and_family_has_its_contract_settings():
    assert set(KIND_OPTIONS) == set(ADAPTER_KINDS)
    assert set(TINY_MODELS) == set(FAMILIES) == set(TINY_DENOISERS)


# --- adapter kinds ------------------------------------------------------------------------------

DENOISERS = {family: make().requires_grad_(False) for family, make in TINY_DENOISERS.items()}
LAYOUT_OF = {family: motion_sites(denoiser)[0].layout for family, denoiser in DENOISERS.items()}
PAIRS = [(kind, family) for kind in sorted(KIND_OPTIONS) for family in sorted(DENOISERS)
         if LAYOUT_OF[family] in ADAPTER_KINDS[kind].LAYOUTS]
"""Every (adapter kind, family) whose motion sites the kind attaches to: each is held to the kind contract."""


def inputs_for(unet):
    """``(x, t, text)`` for one call of a tiny denoiser (latent channels and text width from its config)."""
    config = unet.config
    text_dim = getattr(config, "cross_attention_dim", None) or config.text_dim
    gen = torch.Generator().manual_seed(4)
    return (torch.randn(1, config.in_channels, *LATENT_SHAPE, generator=gen), torch.tensor([500]),
            torch.randn(1, 7, text_dim, generator=gen))


@pytest.fixture(params=PAIRS, ids=[f"{kind}-{family}" for kind, family in PAIRS])
def pair(request):
    kind, family = request.param
    return kind, DENOISERS[family], inputs_for(DENOISERS[family])


def run(module, inputs):
    x, t, text = inputs
    with torch.no_grad():
        return family_of(module).call_denoiser(module, x, t, text)


def build(kind, unet):
    """The kind built with its contract options (a LoRA's spatial part only where the family has
    appearance sites: a DiT has none, and says so, below)."""
    from motion_core.backbones.sites import appearance_sites

    options = dict(KIND_OPTIONS[kind])
    if options.get("spatial") and not appearance_sites(unet):
        with pytest.raises(InputError, match="^spatial: this model has no spatial transformers to put LoRA on"):
            ADAPTER_KINDS[kind].for_unet(unet, "", LATENT_SHAPE, 0, **options)
        options["spatial"] = False
    return ADAPTER_KINDS[kind].for_unet(unet, f"{family_of(unet).family}:tiny", LATENT_SHAPE, 0, **options)


def perturbed(adapter, seed=1):
    """The adapter with every tensor set to small random values (as training would leave it)."""
    gen = torch.Generator().manual_seed(seed)
    tensors = {name: 0.05 * torch.randn(tensor.shape, generator=gen) for name, tensor in adapter.to_tensors().items()}
    return type(adapter).from_tensors(tensors, dict(adapter.metadata))


def test_a_new_adapter_is_fp32_declares_its_layouts_and_changes_nothing(pair):
    kind, unet, inputs = pair
    adapter = build(kind, unet)
    assert adapter.kind == kind and set(adapter.LAYOUTS) <= set(LAYOUTS)
    assert all(tensor.dtype == torch.float32 for tensor in adapter.to_tensors().values())
    assert adapter.backbone == f"{family_of(unet).family}:tiny"
    view = make_view(unet)
    adapter.attach(view)
    torch.testing.assert_close(run(view, inputs), run(unet, inputs), rtol=0, atol=1e-5)


def test_strength_scales_the_adapter_and_detach_restores_the_view(pair):
    kind, unet, inputs = pair
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


def test_tensors_and_metadata_rebuild_the_same_adapter(pair):
    kind, unet, inputs = pair
    adapter = perturbed(build(kind, unet))
    again = type(adapter).from_tensors(adapter.to_tensors(), dict(adapter.metadata))
    assert again.to_tensors().keys() == adapter.to_tensors().keys()
    assert all(torch.equal(again.to_tensors()[k], v) for k, v in adapter.to_tensors().items())
    one, two = make_view(unet), make_view(unet)
    adapter.attach(one), again.attach(two)
    assert torch.equal(run(one, inputs), run(two, inputs))


@pytest.mark.parametrize("kind", sorted(KIND_OPTIONS))
def test_a_layout_the_kind_cannot_use_is_refused_naming_kind_and_family(kind, monkeypatch):
    """Every kind now takes every layout; a kind that declares fewer (as a new one may) is refused by
    name on a model whose sites have another layout."""
    layout = "joint"
    monkeypatch.setattr(ADAPTER_KINDS[kind], "LAYOUTS", ("frames",))
    unet = DENOISERS["unet3d"]
    sites, family = motion_sites(unet), family_of(unet)
    changed = [dataclasses.replace(site, layout=layout) for site in sites]
    monkeypatch.setattr(family, "find_motion_sites", classmethod(lambda cls, module: changed))
    with pytest.raises(InputError) as refused:
        build(kind, unet)
    message = str(refused.value)
    assert refused.value.input_name == "parameterisation"
    assert f"{kind} adapters attach to {' or '.join(ADAPTER_KINDS[kind].LAYOUTS)} motion sites" in message
    assert f"{family.family} models have {layout} sites" in message


def test_every_family_is_served_by_some_kinds_and_refused_by_name_by_the_others():
    for family, denoiser in DENOISERS.items():
        assert any(f == family for _, f in PAIRS)
        for kind in set(KIND_OPTIONS) - {k for k, f in PAIRS if f == family}:
            with pytest.raises(InputError, match=f"^parameterisation: {kind} adapters attach to"):
                build(kind, denoiser)


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


def test_training_with_gradient_checkpointing_gives_the_same_adapter(family_folder):
    """The family's checkpoint blocks exist, take their own call's arguments, and recompute exactly."""
    from motion_core.objectives import ObjectiveSpec
    from motion_core.train import TrainOptions, train

    _, folder = family_folder
    backbone = load_backbone(folder, ModelOptions(dtype="fp32", device="cpu"))
    x0 = torch.randn(1, backbone.denoiser_module.config.in_channels, *LATENT_SHAPE,
                     generator=torch.Generator().manual_seed(2))
    text = backbone.encode_prompt(["a square"])
    results = [train(backbone.denoiser(), ADAPTER_KINDS["temporal_attention"].for_unet(backbone.denoiser_module),
                     x0, text, ObjectiveSpec(), steps=2, lr=1e-3, options=TrainOptions(gradient_checkpointing=flag))
               for flag in (False, True)]
    for plain, checkpointed in zip(results[0].history, results[1].history):
        assert abs(plain["total"] - checkpointed["total"]) < 1e-5
    for plain, checkpointed in zip(results[0].adapter.deltas, results[1].adapter.deltas):
        assert plain.abs().max() > 0
        torch.testing.assert_close(checkpointed, plain, rtol=0, atol=1e-5)
