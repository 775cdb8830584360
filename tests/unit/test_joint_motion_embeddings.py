"""Motion embeddings on a DiT's full 3-D self-attention (Wan; the pack's analogue of Motion Inversion):
each token gets its frame's query-key embedding and its frame's and position's value embedding, so
that ``Q = Wq(X + E_qk)``, ``K = Wk(X + E_qk)``, ``V = Wv(X + γ·E_v)`` — checked against the base
attention run by hand on those inputs, on the tiny Wan transformer."""

import copy

import pytest
import torch
from einops import rearrange

from motion_core import pipeline
from motion_core.adapters import ADAPTER_KINDS, make_view
from motion_core.adapters.embeddings import JOINT_VALUE_STRIDE
from motion_core.backbones import load_backbone
from motion_core.errors import InputError
from motion_core.testing import (
    TINY_WAN_TEXT_DIM,
    moving_square_frames,
    tiny_wan_transformer,
    write_tiny_wan_folder,
)

FRAMES, HEIGHT, WIDTH = 3, 8, 12  # latent frames and size: 4×6 tokens per frame (patch 2)
Adapter = ADAPTER_KINDS["motion_embeddings"]


@pytest.fixture(scope="module")
def transformer():
    return tiny_wan_transformer()


def inputs():
    generator = torch.Generator().manual_seed(1)
    return dict(hidden_states=torch.randn(2, 16, FRAMES, HEIGHT, WIDTH, generator=generator),
                timestep=torch.tensor([500.0, 500.0]),
                encoder_hidden_states=torch.randn(2, 5, TINY_WAN_TEXT_DIM, generator=generator))


def random_adapter(transformer, value_stride=0, seed=0):
    adapter = Adapter.for_unet(transformer, "wan:tiny", (FRAMES, HEIGHT, WIDTH), value_stride=value_stride)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for embedding in adapter.embeddings:
            embedding.copy_(torch.randn(embedding.shape, generator=generator))
    return adapter


def test_every_block_gets_a_query_key_and_a_coarse_value_embedding(transformer):
    adapter = Adapter.for_unet(transformer, "wan:tiny", (FRAMES, HEIGHT, WIDTH))
    shapes = {name: tuple(t.shape) for name, t in adapter.to_tensors().items()}
    coarse = -(-(HEIGHT // 2) // JOINT_VALUE_STRIDE) * -(-(WIDTH // 2) // JOINT_VALUE_STRIDE)  # 1×2 of 4×6
    assert shapes == {"blocks.0.query_key": (1, 32, 24), "blocks.0.attn1.value": (coarse, 32, 24),
                      "blocks.1.query_key": (1, 32, 24), "blocks.1.attn1.value": (coarse, 32, 24)}
    fine = Adapter.for_unet(transformer, "wan:tiny", (FRAMES, HEIGHT, WIDTH), value_stride=1)
    assert fine.to_tensors()["blocks.0.attn1.value"].shape == (4 * 6, 32, 24)
    with pytest.raises(InputError, match="^value_stride: -1 is not valid"):
        Adapter.for_unet(transformer, "wan:tiny", (FRAMES, HEIGHT, WIDTH), value_stride=-1)


def test_zero_embeddings_or_strength_zero_leave_the_model_as_it_was(transformer):
    with torch.no_grad():
        base = transformer(**inputs()).sample
        zero = Adapter.for_unet(transformer, "wan:tiny", (FRAMES, HEIGHT, WIDTH))
        view = make_view(transformer)
        attachment = zero.attach(view)
        torch.testing.assert_close(view(**inputs()).sample, base, atol=1e-6, rtol=0)
        attachment.detach()
        attachment = random_adapter(transformer).attach(view, strength=0.0)
        torch.testing.assert_close(view(**inputs()).sample, base, atol=1e-6, rtol=0)
        attachment.strength = 1.0
        assert not torch.allclose(view(**inputs()).sample, base, atol=1e-3)


class _OffsetLinear(torch.nn.Module):
    """``linear(x + offset)``: the value projection as the embeddings define it."""

    def __init__(self, linear, offset):
        super().__init__()
        self.linear, self.offset = linear, offset

    def forward(self, x):
        return self.linear(x + self.offset)


@pytest.mark.parametrize("value_stride", [1, 2])
def test_each_token_gets_its_frames_query_key_and_its_frames_and_positions_value(transformer, value_stride):
    adapter = random_adapter(transformer, value_stride)
    view = make_view(transformer)
    seen = {}

    def keep_input(module, args, kwargs):  # registered first: sees the attention's input before the embeddings
        seen["args"], seen["kwargs"] = args, kwargs

    view.blocks[1].attn1.register_forward_pre_hook(keep_input, with_kwargs=True)
    view.blocks[1].attn1.register_forward_hook(lambda module, args, output: seen.update(output=output))
    adapter.attach(view, debias="none")
    with torch.no_grad():
        view(**inputs())

    tensors = adapter.to_tensors()
    query_key = tensors["blocks.1.query_key"][:, :FRAMES]  # (1, F, C)
    h, w = HEIGHT // 2, WIDTH // 2
    value = tensors["blocks.1.attn1.value"][:, :FRAMES]  # (h_v·w_v, F, C)
    h_v, w_v = -(-h // value_stride), -(-w // value_stride)
    grid = rearrange(value, "(h w) f c -> 1 (f c) h w", h=h_v, w=w_v)
    if value_stride > 1:
        grid = torch.nn.functional.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
    value_tokens = rearrange(grid, "1 (f c) h w -> 1 (f h w) c", f=FRAMES)
    query_key_tokens = query_key.repeat_interleave(h * w, dim=1)  # frame-major tokens: f·h·w + y·w + x
    attention = copy.deepcopy(transformer.blocks[1].attn1)
    attention.to_v = _OffsetLinear(attention.to_v, value_tokens - query_key_tokens)
    x = seen["args"][0] if seen["args"] else seen["kwargs"]["hidden_states"]
    args = (x + query_key_tokens, *seen["args"][1:]) if seen["args"] else ()
    kwargs = seen["kwargs"] if seen["args"] else {**seen["kwargs"], "hidden_states": x + query_key_tokens}
    with torch.no_grad():
        expected = attention(*args, **kwargs)
    torch.testing.assert_close(seen["output"], expected, atol=1e-5, rtol=0)


def test_on_a_dit_generating_without_a_setting_uses_the_value_embeddings_as_trained(transformer):
    adapter = random_adapter(transformer)
    outputs = {}
    for debias in (None, "none", "object"):
        view = make_view(transformer)
        adapter.attach(view, **({"debias": debias} if debias else {}))
        with torch.no_grad():
            outputs[debias] = view(**inputs()).sample
    assert torch.equal(outputs[None], outputs["none"])
    assert not torch.allclose(outputs["none"], outputs["object"], atol=1e-5)


def test_motion_embeddings_train_and_generate_on_a_wan_model(tmp_path):
    backbone = load_backbone(write_tiny_wan_folder(tmp_path / "wan"))
    latents, _ = pipeline.encode_reference(backbone, moving_square_frames(17, 32, 32))
    result = pipeline.train_adapter(backbone, latents, "a square moving", kind="motion_embeddings", steps=3)
    assert all(t.abs().sum() > 0 for t in result.adapter.to_tensors().values()), "every embedding trained"
    noise = pipeline.make_noise(pipeline.invert_reference(backbone, latents, steps=2), "random", 0)
    plain = pipeline.generate(backbone, noise, "a circle", steps=2, cfg=1.0)
    adapted = pipeline.generate(backbone, noise, "a circle", steps=2, cfg=1.0, adapters=((result.adapter, 1.0),))
    assert not torch.allclose(adapted.samples, plain.samples, atol=1e-4)
