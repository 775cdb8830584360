"""Every parameterisation behind the one adapter interface: VMC's temporal q/k/v, MotionDirector's LoRA
(temporal, and with the dual-path spatial LoRA) and Motion Inversion's motion embeddings.

What each must do: start as the base model exactly, train only its own tensors, leave the base
bit-identical, reproduce itself from the same seed, survive a file round trip bit-exactly, work
with every objective, and generate at a frame count and a resolution other than the training ones.
"""

import pytest
import torch

from motion_core.adapters import (ADAPTER_KINDS, LoRAAdapter, MotionEmbeddingAdapter, load_adapter, make_view,
                                  save_adapter)
from motion_core.objectives import BASE_LOSSES, ObjectiveSpec
from motion_core.testing import TINY_TEXT_DIM, tiny_denoiser
from motion_core.train import train

FRAMES, SIZE = 8, 16
KINDS = {  # name -> (kind, options, lr)
    "temporal_attention": ("temporal_attention", {}, 3e-3),
    "lora": ("lora", {"rank": 4, "alpha": 4.0}, 1e-2),
    "lora_spatial": ("lora", {"rank": 4, "alpha": 4.0, "spatial": True, "spatial_skip_probability": 0.0}, 1e-2),
    "motion_embeddings": ("motion_embeddings", {"frame_slots": 12}, 2e-2),
}


@pytest.fixture(scope="module")
def setup():
    from test_train import moving_blob

    denoiser = tiny_denoiser()
    text = torch.randn(1, 7, TINY_TEXT_DIM, generator=torch.Generator().manual_seed(0))
    return denoiser.module, moving_blob(FRAMES, SIZE), text, denoiser


def fresh(unet, name, seed=0):
    kind, options, _ = KINDS[name]
    return ADAPTER_KINDS[kind].for_unet(unet, "unet3d:tiny", (FRAMES, SIZE, SIZE), seed, **options)


def fit(setup, name, steps=4, seed=0, objective=None):
    unet, x0, text, denoiser = setup
    return train(denoiser, fresh(unet, name, seed), x0, text, objective or ObjectiveSpec(), steps=steps,
                 lr=KINDS[name][2], seed=seed)


@pytest.fixture(scope="module", params=sorted(KINDS))
def trained(request, setup):
    unet = setup[0]
    before = {key: value.clone() for key, value in unet.state_dict().items()}
    result = fit(setup, request.param, steps=6)
    return request.param, result, before


def output(unet, x, text, t=500):
    with torch.no_grad():
        return unet(x, torch.tensor([t]), encoder_hidden_states=text).sample


def adapted_output(unet, adapter, x, text, strength=1.0, **settings):
    view = make_view(unet)
    attachment = adapter.attach(view, strength, **settings)
    try:
        return output(view, x, text)
    finally:
        attachment.detach()


# --- every kind ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_new_adapter_is_the_base_model_exactly(setup, name):
    unet, x0, text, _ = setup
    assert torch.equal(adapted_output(unet, fresh(unet, name), x0, text), output(unet, x0, text))


def test_only_its_own_tensors_train_and_the_base_stays_bit_identical(setup, trained):
    unet, x0, text, _ = setup
    name, result, before = trained
    after = unet.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)
    start = fresh(unet, name).to_tensors()
    tensors = result.adapter.to_tensors()
    assert tensors.keys() == start.keys()  # nothing else was added to the adapter
    changed = [key for key in tensors if not torch.equal(tensors[key], start[key])]
    assert changed, "training changed nothing"
    if name == "motion_embeddings":  # only the trained frame slots move; the others never get a gradient
        for key, tensor in tensors.items():
            assert torch.count_nonzero(tensor[:, FRAMES:]) == 0, key
    assert not torch.equal(adapted_output(unet, result.adapter, x0, text), output(unet, x0, text))


def test_the_same_seed_gives_the_same_adapter(setup, trained):
    name, result, _ = trained
    again = fit(setup, name, steps=6)
    assert all(torch.equal(a, b) for a, b in zip(result.adapter.to_tensors().values(),
                                                    again.adapter.to_tensors().values()))
    other = fit(setup, name, steps=6, seed=1)
    assert any(not torch.equal(a, b) for a, b in zip(result.adapter.to_tensors().values(),
                                                       other.adapter.to_tensors().values()))


def test_save_then_load_generates_bit_identically(setup, trained, tmp_path):
    unet, x0, text, _ = setup
    name, result, _ = trained
    path = save_adapter(result.adapter, tmp_path / f"{name}.safetensors")
    loaded = load_adapter(path, "unet3d:tiny")
    assert type(loaded) is type(result.adapter) and loaded.metadata == result.adapter.metadata
    assert torch.equal(adapted_output(unet, loaded, x0, text), adapted_output(unet, result.adapter, x0, text))


def test_another_frame_count_and_resolution_generate(setup, trained):
    """Trained on 8 frames of 16×16 latents; generated at 12 frames of 24×20 and at 5 frames of 8×12."""
    unet, _, text, _ = setup
    name, result, _ = trained
    for shape in ((1, 4, 12, 24, 20), (1, 4, 5, 8, 12)):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        adapted, base = adapted_output(unet, result.adapter, x, text), output(unet, x, text)
        assert adapted.shape == shape and torch.isfinite(adapted).all()
        assert not torch.allclose(adapted, base, atol=1e-6), f"{name} did nothing at {shape}"
        assert torch.equal(adapted_output(unet, result.adapter, x, text, strength=0.0), base)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_gradient_checkpointing_trains_the_same_adapter(setup, name):
    """Recomputed blocks re-run the embeddings' grid hooks and replay LoRA's dropout draws."""
    from motion_core.train import TrainOptions

    unet, x0, text, denoiser = setup
    plain, checkpointed = (train(denoiser, fresh(unet, name), x0, text, ObjectiveSpec(), steps=2,
                                 lr=KINDS[name][2], options=TrainOptions(gradient_checkpointing=flag))
                           for flag in (False, True))
    for key, tensor in plain.adapter.to_tensors().items():
        torch.testing.assert_close(checkpointed.adapter.to_tensors()[key], tensor, rtol=0, atol=1e-6)


@pytest.mark.parametrize("base_loss", BASE_LOSSES)
@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_objective_trains_every_kind(setup, name, base_loss):
    """The objective's own terms are what training minimised (recorded per step and in the adapter's
    metadata), and the kind's tensors moved."""
    spec = ObjectiveSpec(base_loss=base_loss)
    result = fit(setup, name, steps=2, objective=spec)
    assert all(torch.isfinite(torch.tensor(h["total"])) for h in result.history)
    own_terms = {"mse", "debiased"} if base_loss == "motion_director" else set()
    assert all(own_terms | {"base", "sma_global", "sma_local", "total"} <= set(h) for h in result.history)
    assert base_loss == "motion_director" or not {"mse", "debiased"} & set(result.history[0])
    assert ObjectiveSpec.from_json(result.adapter.metadata["objective"]) == spec
    start = fresh(setup[0], name).to_tensors()
    assert any(not torch.equal(t, start[k]) for k, t in result.adapter.to_tensors().items())


@pytest.mark.parametrize("base_loss", BASE_LOSSES)
@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_objective_trains_every_kind_on_two_clips(setup, name, base_loss):
    """Two clips of one motion (one mirrored), each with its own prompt: training runs one clip per step
    with the objective's terms, and the adapter differs from one trained on the first clip alone."""
    unet, x0, text, denoiser = setup
    spec = ObjectiveSpec(base_loss=base_loss)
    kind_lr = KINDS[name][2]
    both = train(denoiser, fresh(unet, name), [x0, x0.flip(-1)], [text, -text], spec, steps=2, lr=kind_lr,
                 prompt=["a blob moving right", "a blob moving left"])
    alone = train(denoiser, fresh(unet, name), x0, text, spec, steps=2, lr=kind_lr)
    assert all(torch.isfinite(torch.tensor(h["total"])) and "base" in h for h in both.history)
    assert any(not torch.equal(t, alone.adapter.to_tensors()[k]) for k, t in both.adapter.to_tensors().items())


# --- LoRA ------------------------------------------------------------------------------------------

def test_lora_targets_are_the_temporal_attentions_and_feed_forwards(setup):
    unet = setup[0]
    names = [name.split(".", 1)[1] for name in fresh(unet, "lora").names]
    transformers = ["transformer_in", "down_blocks.0.temp_attentions.0", "mid_block.temp_attentions.0",
                    "up_blocks.1.temp_attentions.0", "up_blocks.1.temp_attentions.1"]
    expected = [f"{t}.transformer_blocks.0.{layer}" for t in transformers
                for layer in [f"{a}.{p}" for a in ("attn1", "attn2") for p in ("to_q", "to_k", "to_v", "to_out.0")]
                + ["ff.net.0.proj", "ff.net.2"]]
    assert names == expected
    spatial = [name for name in fresh(unet, "lora_spatial").names if name.startswith("spatial.")]
    assert len(spatial) == 4 * 6 and all(".attentions." in n and ".attn2." not in n for n in spatial)


def random_lora(unet, name="lora_spatial", scale=0.1):
    start = fresh(unet, name)
    gen = torch.Generator().manual_seed(5)
    weights = {n: (a, scale * torch.randn(b.shape, generator=gen)) for n, a, b in
               zip(start.names, start.lora_A, start.lora_B)}
    return LoRAAdapter({n: (a.detach(), b) for n, (a, b) in weights.items()}, dict(start.metadata))


def test_lora_equals_its_merged_weights_at_any_strength(setup):
    unet, x0, text, _ = setup
    adapter = random_lora(unet, "lora")
    for strength in (1.0, 0.4):
        merged = make_view(unet)
        for name, a, b in zip(adapter.names, adapter.lora_A, adapter.lora_B):
            linear = merged.get_submodule(name.split(".", 1)[1])
            linear.weight = torch.nn.Parameter(linear.weight + strength * (4.0 / 4) * b @ a, requires_grad=False)
        torch.testing.assert_close(adapted_output(unet, adapter, x0, text, strength), output(merged, x0, text),
                                   rtol=1e-4, atol=1e-5)


def test_lora_computes_what_peft_public_injection_computes(setup):
    """The pack builds peft's LoRA layer per target itself (on a private view, with the adapter's own
    parameters, docs/METHODS.md §8); the same tensors loaded through peft's public API
    (``inject_adapter_in_model`` with an anchored pattern of the layers, ``set_peft_model_state_dict``)
    into a copy of the model give the same output."""
    import copy
    import re

    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict

    unet, x0, text, _ = setup
    adapter = random_lora(unet, "lora")
    options = adapter.options
    layers = [name.split(".", 1)[1] for name in adapter.names]
    reference = copy.deepcopy(unet)
    pattern = "^(?:" + "|".join(re.escape(name) for name in layers) + ")$"
    config = LoraConfig(r=options["rank"], lora_alpha=options["alpha"], lora_dropout=0.0, target_modules=pattern)
    inject_adapter_in_model(config, reference, adapter_name="reference")
    state = {f"{layer}.lora_{which}.weight": tensor.detach()
             for layer, a, b in zip(layers, adapter.lora_A, adapter.lora_B) for which, tensor in zip("AB", (a, b))}
    loaded = set_peft_model_state_dict(reference, state, adapter_name="reference")
    assert not loaded.unexpected_keys
    reference.eval()
    torch.testing.assert_close(adapted_output(unet, adapter, x0, text), output(reference, x0, text),
                               rtol=1e-5, atol=1e-6)


def test_spatial_lora_applies_only_when_asked(setup):
    unet, x0, text, _ = setup
    adapter = random_lora(unet)
    temporal_only = LoRAAdapter({n: (a.detach(), b.detach()) for n, a, b in
                                 zip(adapter.names, adapter.lora_A, adapter.lora_B) if n.startswith("temporal.")},
                                {**adapter.metadata, "options": adapter.metadata["options"].replace(
                                    '"spatial": true', '"spatial": false')})
    default = adapted_output(unet, adapter, x0, text)
    assert torch.equal(default, adapted_output(unet, temporal_only, x0, text))
    assert not torch.equal(default, adapted_output(unet, adapter, x0, text, parts="temporal+spatial"))
    assert not torch.equal(adapted_output(unet, adapter, x0, text, parts="spatial"), output(unet, x0, text))
    with pytest.raises(Exception, match="no spatial part"):
        adapted_output(unet, temporal_only, x0, text, parts="spatial")


def test_the_spatial_lora_learns_only_from_its_own_path(setup):
    """Spatial path always skipped: the spatial B stay zero although the objective's loss depends on
    them; never skipped: they train and the history has a ``spatial`` term."""
    unet, x0, text, denoiser = setup
    options = {**KINDS["lora_spatial"][1], "spatial_skip_probability": 0.999999}
    start = LoRAAdapter.for_unet(unet, "unet3d:tiny", None, 0, **options)
    result = train(denoiser, start, x0, text, ObjectiveSpec(), steps=3, lr=1e-2)
    spatial_b = [b for n, b in zip(result.adapter.names, result.adapter.lora_B) if n.startswith("spatial.")]
    temporal_b = [b for n, b in zip(result.adapter.names, result.adapter.lora_B) if n.startswith("temporal.")]
    assert all(torch.count_nonzero(b) == 0 for b in spatial_b) and any(torch.count_nonzero(b) for b in temporal_b)
    assert all("spatial" not in h for h in result.history)
    trained = fit(setup, "lora_spatial", steps=3)
    assert all("spatial" in h for h in trained.history)
    assert any(torch.count_nonzero(b) for n, b in zip(trained.adapter.names, trained.adapter.lora_B)
               if n.startswith("spatial."))


def test_lora_dropout_is_off_at_generation(setup):
    unet, x0, text, _ = setup
    adapter = random_lora(unet, "lora")
    assert adapter.options["dropout"] == 0.1
    assert torch.equal(adapted_output(unet, adapter, x0, text), adapted_output(unet, adapter, x0, text))


# --- motion embeddings -----------------------------------------------------------------------------

def test_debias_modes_transform_a_hand_made_value_embedding_exactly():
    from motion_core.adapters.embeddings import debias_values

    e = torch.tensor([[[1.0, 10.0], [3.0, 20.0], [6.0, 40.0], [10.0, 70.0]]])  # (1 pixel, 4 frames, 2 channels)
    expected = torch.tensor([[[1.0, 10.0], [2.0, 10.0], [3.0, 20.0], [4.0, 30.0]]])
    assert torch.equal(debias_values(e, "object"), expected)
    assert torch.equal(debias_values(e, "hybrid"), expected)
    assert debias_values(e, "camera") is None
    assert debias_values(e, "none") is e
    assert torch.equal(debias_values(e, "auto"), expected), "auto in temporal attention: object, as published"
    assert debias_values(e, "auto", "joint") is e, "auto in a DiT's joint attention: as trained (measured)"


def random_embeddings(unet, scale=0.3, seed=2):
    start = fresh(unet, "motion_embeddings")
    gen = torch.Generator().manual_seed(seed)
    return MotionEmbeddingAdapter({n: scale * torch.randn(t.shape, generator=gen) for n, t in
                                   start.to_tensors().items()}, dict(start.metadata))


def with_values(adapter, transform):
    """A copy of ``adapter`` whose value embeddings are ``transform(E_v)``."""
    tensors = {n: transform(t) if n.endswith(".value") else t for n, t in adapter.to_tensors().items()}
    return MotionEmbeddingAdapter(tensors, dict(adapter.metadata))


def test_debias_modes_at_generation_equal_the_transformed_embeddings(setup):
    from motion_core.adapters.embeddings import debias_values

    unet, x0, text, _ = setup
    adapter = random_embeddings(unet)
    differential = lambda e: torch.cat([debias_values(e[:, :FRAMES], "object"), e[:, FRAMES:]], dim=1)
    assert torch.equal(adapted_output(unet, adapter, x0, text, debias="object"),
                       adapted_output(unet, with_values(adapter, differential), x0, text, debias="none"))
    assert torch.equal(adapted_output(unet, adapter, x0, text, debias="camera"),
                       adapted_output(unet, with_values(adapter, torch.zeros_like), x0, text, debias="none"))
    # Generating without a setting (auto) debiases in temporal attention as Motion Inversion's inference does.
    assert torch.equal(adapted_output(unet, adapter, x0, text), adapted_output(unet, adapter, x0, text,
                                                                               debias="object"))
    assert not torch.equal(adapted_output(unet, adapter, x0, text, debias="none"),
                           adapted_output(unet, adapter, x0, text, debias="object"))


def test_query_key_embedding_enters_q_and_k_only_and_value_embedding_v_only():
    """One attention against a hand-written reference: Q = Wq(X+E_qk), K = Wk(X+E_qk), V = Wv(X+γE_v)."""
    from diffusers.models.attention_processor import Attention

    from motion_core.adapters.base import Attachment
    from motion_core.adapters.embeddings import MotionEmbeddingProcessor, _Grid, _Term

    torch.manual_seed(0)
    attention = Attention(query_dim=16, heads=2, dim_head=8).eval()
    grid = _Grid()
    grid.hw = (2, 3)
    x = torch.randn(2 * 6, 5, 16)  # (b·h·w, frames, channels), b = 2
    e_qk, e_v = torch.randn(1, 7, 16), torch.randn(6, 7, 16)
    attachment = Attachment(None, None, 0.8, {"debias": "none"})
    attention.set_processor(MotionEmbeddingProcessor((_Term(e_qk, e_v, attachment, grid, 5, (2, 3), 0.5),)))
    with torch.no_grad():
        got = attention(x)
        qk_in, v_in = x + 0.8 * e_qk[:, :5], x + 0.8 * 0.5 * e_v[:, :5].repeat(2, 1, 1)
        q, k, v = (t.view(12, 5, 2, 8).transpose(1, 2) for t in
                   (attention.to_q(qk_in), attention.to_k(qk_in), attention.to_v(v_in)))
        weights = torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, dim=-1)
        expected = attention.to_out[0]((weights @ v).transpose(1, 2).reshape(12, 5, 16))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_resampling_keeps_end_slots_and_interpolates_between():
    from motion_core.adapters.embeddings import resample_frames, resample_grid

    e = torch.arange(4.0).reshape(1, 4, 1)  # frames 0, 1, 2, 3
    assert resample_frames(e, 4) is e
    assert torch.allclose(resample_frames(e, 7).flatten(), torch.tensor([0, 0.5, 1, 1.5, 2, 2.5, 3.0]))
    assert torch.allclose(resample_frames(e, 2).flatten(), torch.tensor([0.0, 3.0]))
    constant = torch.full((2 * 3, 4, 5), 1.5)
    assert torch.allclose(resample_grid(constant, (2, 3), (4, 5)), torch.full((20, 4, 5), 1.5))
    ramp = torch.arange(3.0).repeat(2).reshape(6, 1, 1)  # x = 0, 1, 2 on each of 2 rows
    wide = resample_grid(ramp, (2, 3), (2, 6)).reshape(2, 6)
    assert torch.equal(wide[0], wide[1]) and torch.all(wide[0].diff() >= 0)


def test_embeddings_are_sized_by_the_training_clip(setup):
    unet = setup[0]
    adapter = MotionEmbeddingAdapter.for_unet(unet, "", (8, 16, 24), frame_slots=32)
    shapes = {name: tuple(t.shape) for name, t in adapter.to_tensors().items()}
    assert shapes["down_blocks.0.temp_attentions.0.query_key"] == (1, 32, 32)
    assert shapes["down_blocks.0.temp_attentions.0.transformer_blocks.0.attn1.value"] == (16 * 24, 32, 32)
    assert len(shapes) == 3 * 3  # 3 transformers: one query-key and two values each
    with pytest.raises(Exception, match="frame_slots"):
        MotionEmbeddingAdapter.for_unet(unet, "", (40, 16, 16))


# --- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, options, message", [
    ("lora", {"rank": 0}, "rank"), ("lora", {"dropout": 1.5}, "dropout"), ("lora", {"ranks": 4}, "not an option"),
    ("motion_embeddings", {"blocks": "some"}, "blocks"), ("motion_embeddings", {"frame_slots": 0}, "frame_slots"),
    ("temporal_attention", {"rank": 4}, "not an option"),
])
def test_invalid_options_name_the_option(setup, kind, options, message):
    with pytest.raises(Exception, match=message):
        ADAPTER_KINDS[kind].for_unet(setup[0], "", (FRAMES, SIZE, SIZE), **options)


@pytest.mark.parametrize("name, settings, message", [
    ("lora", {"debias": "object"}, "no setting 'debias'"), ("motion_embeddings", {"debias": "sideways"}, "sideways"),
    ("temporal_attention", {"parts": "spatial"}, "no setting"),
])
def test_invalid_settings_are_refused(setup, name, settings, message):
    unet, x0, text, _ = setup
    with pytest.raises(Exception, match=message):
        adapted_output(unet, fresh(unet, name), x0, text, **settings)


@pytest.mark.parametrize("name", ["lora", "motion_embeddings"])
def test_an_adapter_from_another_unet_is_refused_and_the_view_left_clean(setup, name):
    from diffusers import UNet3DConditionModel

    unet = setup[0]
    wider = UNet3DConditionModel.from_config({**unet.config, "block_out_channels": (48, 96)})
    adapter = fresh(wider, name)  # same layer names, other widths
    view = make_view(unet)
    processors = dict(view.attn_processors)
    modules = [type(m) for m in view.modules()]
    with pytest.raises(Exception, match="another model|made for"):
        adapter.attach(view)
    assert [type(m) for m in view.modules()] == modules
    assert all(view.attn_processors[k] is v for k, v in processors.items())


def test_inconsistent_files_are_refused_with_the_reason(setup, tmp_path):
    unet = setup[0]
    lora = fresh(unet, "lora")
    tensors = lora.to_tensors()
    first = next(iter(tensors))
    with pytest.raises(Exception, match="incomplete"):
        LoRAAdapter.from_tensors({first: tensors[first]}, dict(lora.metadata))
    with pytest.raises(Exception, match="rank"):
        LoRAAdapter.from_tensors(tensors, {**lora.metadata, "options": '{"rank": 8}'})
    embeddings = fresh(unet, "motion_embeddings")
    with pytest.raises(Exception, match="latent_height"):
        MotionEmbeddingAdapter.from_tensors(embeddings.to_tensors(),
                                            {k: v for k, v in embeddings.metadata.items() if k != "latent_height"})
    values = {k: v for k, v in embeddings.to_tensors().items() if k.endswith(".value")}
    with pytest.raises(Exception, match="no query-key"):
        MotionEmbeddingAdapter.from_tensors(values, dict(embeddings.metadata))


# --- stacks ----------------------------------------------------------------------------------------

def test_two_adapters_of_any_kinds_stack_and_detach_cleanly(setup):
    unet, x0, text, _ = setup
    from test_adapters import random_adapter

    vmc, lora, embeddings = random_adapter(unet), random_lora(unet, "lora"), random_embeddings(unet)
    base = output(unet, x0, text)
    for first, second in ((vmc, lora), (embeddings, random_embeddings(unet, seed=3)), (lora, embeddings)):
        view = make_view(unet)
        processors, modules = dict(view.attn_processors), [type(m) for m in view.modules()]
        a = first.attach(view)
        one = output(view, x0, text)
        b = second.attach(view)
        both = output(view, x0, text)
        b.strength = 0.0
        assert torch.equal(output(view, x0, text), one)  # the second at strength 0 adds nothing
        b.detach()
        a.detach()
        assert not torch.equal(both, one) and not torch.equal(one, base)
        assert torch.equal(output(view, x0, text), base)
        assert [type(m) for m in view.modules()] == modules
        assert all(view.attn_processors[k] is v for k, v in processors.items())


# --- the published architecture (ZeroScope's config on the meta device: real names and sizes) ----

def test_zeroscope_targets_block_sets_and_embedding_shapes_at_576x320():
    from test_temporal import ZEROSCOPE_UNET, meta_unet

    from motion_core.adapters.embeddings import embedding_blocks
    from motion_core.adapters.lora import lora_targets

    unet = meta_unet(ZEROSCOPE_UNET)
    widest = [t.name for t in embedding_blocks(unet)]
    assert widest == ["down_blocks.2.temp_attentions.0", "down_blocks.2.temp_attentions.1",
                      "up_blocks.1.temp_attentions.0", "up_blocks.1.temp_attentions.1", "up_blocks.1.temp_attentions.2"]
    assert len(embedding_blocks(unet, "all")) == 15
    temporal, spatial = lora_targets(unet, "temporal"), lora_targets(unet, "spatial")
    assert (len(temporal), len(spatial)) == (170, 96)
    assert all(n.startswith("transformer_in.") or ".temp_attentions." in n for n, _ in temporal)
    assert all(".attentions." in n and ".attn2." not in n for n, _ in spatial)
    with torch.device("meta"):
        embeddings = MotionEmbeddingAdapter.for_unet(unet, "", (24, 40, 72))  # 576×320 pixels → 72×40 latents
    shapes = {n: tuple(t.shape) for n, t in embeddings.to_tensors().items()}
    assert len(shapes) == 5 + 10
    for name, shape in shapes.items():
        assert shape == ((1, 32, 1280) if name.endswith(".query_key") else (180, 32, 1280)), name


def test_zeroscope_trainable_parameters_per_kind():
    """Reported for the benchmark table; asserted against the architecture's arithmetic."""
    from test_temporal import ZEROSCOPE_UNET, meta_unet

    unet = meta_unet(ZEROSCOPE_UNET)
    counts = {}
    with torch.device("meta"):
        for label, kind, options in [("temporal_attention", "temporal_attention", {}),
                                     ("motion_embeddings (widest)", "motion_embeddings", {}),
                                     ("motion_embeddings (all)", "motion_embeddings", {"blocks": "all"})]:
            adapter = ADAPTER_KINDS[kind].for_unet(unet, "", (24, 40, 72), **options)
            counts[label] = sum(t.numel() for t in adapter.to_tensors().values())
    for label, options in [("lora r32", {}), ("lora r32 + spatial", {"spatial": True})]:
        adapter = LoRAAdapter.for_unet(unet, "", None, **options)
        counts[label] = sum(t.numel() for t in adapter.to_tensors().values())
    print("\n" + "\n".join(f"{label}: {count / 1e6:.2f} M" for label, count in counts.items()))
    widths = [512] + [320, 320, 640, 640, 1280, 1280] + [1280] + [1280] * 3 + [640] * 3 + [320] * 3  # 17 transformers
    assert counts["temporal_attention"] == sum(6 * c * c for c in widths)  # q, k, v of attn1 and attn2
    assert counts["motion_embeddings (widest)"] == 5 * 32 * 1280 + 10 * 180 * 32 * 1280
    assert counts["lora r32"] < counts["lora r32 + spatial"] < counts["temporal_attention"]
