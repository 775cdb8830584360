"""Private views and the temporal-attention (VMC) adapter: what attaching, strength and detaching do,
and that the shared base model is never changed."""

import copy
import re

import pytest
import torch
import torch.nn as nn

from motion_core.adapters import DeltaLinear, TemporalAttentionAdapter, make_view
from motion_core.errors import InputError
from motion_core.testing import TINY_TEXT_DIM, tiny_unet3d

TEMPORAL_QKV = re.compile(r"^(transformer_in|.*temp_attentions\.\d+)\.transformer_blocks\.\d+\.attn[12]\.to_[qkv]$")


@pytest.fixture(scope="module")
def base():
    return tiny_unet3d(seed=1).requires_grad_(False)


@pytest.fixture(scope="module")
def batch():
    gen = torch.Generator().manual_seed(3)
    return torch.randn(1, 4, 8, 16, 16, generator=gen), torch.tensor([400]), torch.randn(1, 7, TINY_TEXT_DIM, generator=gen)


def run(unet, batch):
    x, t, text = batch
    with torch.no_grad():
        return unet(x, t, encoder_hidden_states=text).sample


def random_adapter(unet, scale=0.05, seed=0):
    gen = torch.Generator().manual_seed(seed)
    zeros = TemporalAttentionAdapter.for_unet(unet, "unet3d:test")
    return TemporalAttentionAdapter({k.removesuffix(".weight_delta"): scale * torch.randn(v.shape, generator=gen)
                                     for k, v in zeros.to_tensors().items()}, dict(zeros.metadata))


def merged_copy(unet, adapter, strength):
    """An independent model with ``W + strength·delta`` written into real copies of the weights."""
    merged = copy.deepcopy(unet)
    with torch.no_grad():
        for name, delta in zip(adapter.names, adapter.deltas):
            merged.get_submodule(name).weight += strength * delta
    return merged


def snapshot(unet):
    return {name: tensor.clone() for name, tensor in unet.state_dict().items()}


def structure(unet):
    return [(name, type(module)) for name, module in unet.named_modules()], dict(unet.attn_processors)


# --- views ---------------------------------------------------------------------------------------

def test_view_shares_the_weight_tensors_but_not_the_modules(base):
    view = make_view(base)
    for (name, p), (_, q) in zip(base.named_parameters(), view.named_parameters()):
        assert p is q, name
    for (name, m), (_, n) in zip(base.named_modules(), view.named_modules()):
        assert m is not n, name
    assert all(a is not b for a, b in zip(base.attn_processors.values(), view.attn_processors.values()))


def test_changing_a_view_leaves_the_base_and_other_views_alone(base, batch):
    from diffusers.models.attention_processor import AttnProcessor

    before, modules = run(base, batch), structure(base)
    view, other = make_view(base), make_view(base)
    view.set_attn_processor(AttnProcessor())
    view.conv_out = nn.Identity()
    assert run(view, batch).shape != before.shape or not torch.equal(run(view, batch), before)
    assert structure(base)[0] == modules[0]
    assert all(base.attn_processors[k] is v for k, v in modules[1].items())
    assert torch.equal(run(base, batch), before) and torch.equal(run(other, batch), before)


def test_view_of_a_base_that_requires_grad_is_frozen_without_touching_the_base():
    unet = tiny_unet3d()  # requires_grad=True, as a freshly built model has
    view = make_view(unet)
    assert all(p.requires_grad for p in unet.parameters())
    assert not any(p.requires_grad for p in view.parameters())
    assert all(p.data_ptr() == q.data_ptr() for p, q in zip(unet.parameters(), view.parameters()))


def test_training_view_of_an_inference_mode_model_gets_normal_tensors():
    with torch.inference_mode():
        unet = tiny_unet3d().requires_grad_(False)
    plain, training = make_view(unet), make_view(unet, for_training=True)
    assert all(p.is_inference() for p in plain.parameters())
    assert not any(p.is_inference() for p in training.parameters())
    assert all(torch.equal(p, q) for p, q in zip(unet.parameters(), training.parameters()))


# --- the temporal-attention adapter --------------------------------------------------------------

def test_adapter_covers_exactly_the_temporal_q_k_v(base):
    adapter = TemporalAttentionAdapter.for_unet(base, "unet3d:test")
    expected = [name for name, module in base.named_modules() if TEMPORAL_QKV.match(name)]
    assert sorted(adapter.names) == sorted(expected) and len(expected) == 5 * 2 * 3
    assert all(torch.count_nonzero(d) == 0 and d.dtype == torch.float32 for d in adapter.deltas)
    assert [tuple(d.shape) for d in adapter.deltas] == [tuple(base.get_submodule(n).weight.shape) for n in adapter.names]
    assert adapter.metadata == {"backbone": "unet3d:test"}


def test_attach_replaces_only_temporal_q_k_v_in_the_view(base):
    view = make_view(base)
    attachment = random_adapter(base).attach(view)
    replaced = {name for name, module in view.named_modules() if isinstance(module, DeltaLinear)}
    assert replaced == {name for name in dict(base.named_modules()) if TEMPORAL_QKV.match(name)}
    assert not any(isinstance(m, DeltaLinear) for m in base.modules())
    attachment.detach()
    assert not any(isinstance(m, DeltaLinear) for m in view.modules())
    assert structure(view)[0] == structure(base)[0]


@pytest.mark.parametrize("strength", [1.0, 0.5, -0.7])
def test_strength_scales_the_deltas(base, batch, strength):
    adapter = random_adapter(base)
    view = make_view(base)
    adapter.attach(view, strength=strength)
    torch.testing.assert_close(run(view, batch), run(merged_copy(base, adapter, strength), batch), rtol=1e-5, atol=1e-6)


def test_strength_zero_is_the_base_model_exactly_and_can_change_between_calls(base, batch):
    adapter = random_adapter(base)
    view = make_view(base)
    attachment = adapter.attach(view, strength=1.0)
    assert not torch.allclose(run(view, batch), run(base, batch), atol=1e-3)
    attachment.strength = 0.0
    assert torch.equal(run(view, batch), run(base, batch))
    with pytest.raises(InputError, match="strength"):
        attachment.strength = float("nan")


def test_detach_gives_back_the_base_model(base, batch):
    view = make_view(base)
    attachment = random_adapter(base).attach(view)
    attachment.detach()
    assert torch.equal(run(view, batch), run(base, batch))


def test_two_views_with_different_adapters_are_independent(base, batch):
    one, two = make_view(base), make_view(base)
    first, second = random_adapter(base, seed=1), random_adapter(base, seed=2)
    first.attach(one), second.attach(two)
    torch.testing.assert_close(run(one, batch), run(merged_copy(base, first, 1.0), batch), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(run(one, batch), run(two, batch), atol=1e-3)


def test_adapter_for_another_architecture_is_refused_and_the_view_left_clean(base):
    adapter = random_adapter(base)
    tensors = adapter.to_tensors()
    last = list(tensors)[-1]
    tensors[last] = torch.zeros(3, 3)
    wrong = TemporalAttentionAdapter.from_tensors(tensors, {"backbone": "unet3d:other"})
    view = make_view(base)
    with pytest.raises(InputError, match=r"layer .*to_v is \(32, 32\) in this model but \(3, 3\).*unet3d:other"):
        wrong.attach(view)
    assert not any(isinstance(m, DeltaLinear) for m in view.modules())
    missing = TemporalAttentionAdapter.from_tensors({"down_blocks.7.to_q.weight_delta": torch.zeros(2, 2)}, {})
    with pytest.raises(InputError, match="no layer down_blocks.7.to_q"):
        missing.attach(view)


def test_a_model_without_temporal_attention_is_refused():
    with pytest.raises(InputError, match="Sequential is not the denoiser of a known model family"):
        TemporalAttentionAdapter.for_unet(nn.Sequential(nn.Linear(2, 2)), "")


def test_fp16_model_computes_in_fp16():
    unet = tiny_unet3d().requires_grad_(False).to(torch.float16)
    adapter = random_adapter(unet)
    view = make_view(unet)
    adapter.attach(view)
    linear = view.get_submodule(adapter.names[0])
    assert linear.weight.dtype == torch.float16 and adapter.deltas[0].dtype == torch.float32
    expected = (unet.get_submodule(adapter.names[0]).weight.float() + adapter.deltas[0]).half()
    assert torch.equal(linear.weight, expected)


def test_published_architecture_attaches_all_102_on_the_meta_device():
    from test_temporal import MODELSCOPE_UNET, meta_unet

    unet = meta_unet(MODELSCOPE_UNET)
    with torch.device("meta"):
        shapes = {f"{name}.weight_delta": torch.empty(linear.weight.shape)
                  for name, linear in unet.named_modules() if TEMPORAL_QKV.match(name)}
    adapter = TemporalAttentionAdapter.from_tensors(shapes, {})
    view = make_view(unet)
    adapter.attach(view)
    assert sum(isinstance(m, DeltaLinear) for m in view.modules()) == 102
    assert not any(isinstance(m, DeltaLinear) for m in unet.modules())
