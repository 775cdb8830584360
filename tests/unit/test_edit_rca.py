"""Recurrent Causal Attention (docs/METHODS.md §7): Q from frame i, K from frames i-1 and i+1, V from
frames i-1 and i; edge frames use the neighbours they have."""

import pytest
import torch

from motion_core.adapters import make_view
from motion_core.edit import RecurrentCausalAttention, attach_rca, neighbour_frames, spatial_self_attentions
from motion_core.edit.rca import FrameCount
from motion_core.testing import TINY_TEXT_DIM, tiny_unet_motion

# 0-based: the paper's "first frame: frames 1 and 2" are frames 0 and 1; "the last: the last two".
NEIGHBOURS = {  # frames: (K frames per frame, V frames per frame)
    1: ([(0, 0)], [(0, 0)]),
    2: ([(0, 1), (0, 1)], [(0, 1), (0, 1)]),
    3: ([(0, 1), (0, 2), (1, 2)], [(0, 1), (0, 1), (1, 2)]),
    5: ([(0, 1), (0, 2), (1, 3), (2, 4), (3, 4)], [(0, 1), (0, 1), (1, 2), (2, 3), (3, 4)]),
}


@pytest.mark.parametrize("frames", sorted(NEIGHBOURS))
def test_neighbour_frames_as_written_down(frames):
    keys, values = neighbour_frames(frames)
    assert keys.tolist() == [list(p) for p in NEIGHBOURS[frames][0]]
    assert values.tolist() == [list(p) for p in NEIGHBOURS[frames][1]]


def attention(channels=8, heads=2, seed=0):
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(seed)
    return Attention(query_dim=channels, heads=heads, dim_head=channels // heads, bias=True).eval()


def by_hand(attn, hidden, batch, frames):
    """RCA written out: for each video, frame and head, softmax(q·kᵀ / sqrt(d))·v over the tokens of
    the two K and V frames of :data:`NEIGHBOURS`, then the output projection."""
    keys, values = NEIGHBOURS[frames]
    heads = attn.heads
    z = hidden.view(batch, frames, *hidden.shape[1:])
    out = torch.empty_like(hidden).view(batch, frames, hidden.shape[1], -1)
    for b in range(batch):
        for i in range(frames):
            q = attn.to_q(z[b, i])
            k = attn.to_k(torch.cat([z[b, keys[i][0]], z[b, keys[i][1]]]))
            v = attn.to_v(torch.cat([z[b, values[i][0]], z[b, values[i][1]]]))
            d = q.shape[-1] // heads
            parts = []
            for h in range(heads):
                qh, kh, vh = (x[:, h * d:(h + 1) * d] for x in (q, k, v))
                parts.append(torch.softmax(qh @ kh.T / d ** 0.5, dim=-1) @ vh)
            out[b, i] = torch.cat(parts, dim=-1)
    return attn.to_out[0](out.reshape(batch * frames, hidden.shape[1], -1))


@pytest.mark.parametrize("frames", [2, 3, 5])
def test_equals_attention_over_the_neighbour_frames_by_hand(frames):
    attn, batch, tokens = attention(), 2, 6
    hidden = torch.randn(batch * frames, tokens, 8, generator=torch.Generator().manual_seed(frames))
    count = FrameCount()
    count.frames = frames
    attn.set_processor(RecurrentCausalAttention(count))
    with torch.no_grad():
        assert torch.allclose(attn(hidden), by_hand(attn, hidden, batch, frames), atol=1e-6)


def test_on_identical_frames_it_is_plain_self_attention():
    # K = [z, z] and V = [z, z]: every key twice, with its own value, weighs as once
    attn, frames = attention(heads=4), 4
    hidden = torch.randn(1, 6, 8).expand(2 * frames, 6, 8)
    with torch.no_grad():
        plain = attn(hidden)
        count = FrameCount()
        count.frames = frames
        attn.set_processor(RecurrentCausalAttention(count))
        assert torch.allclose(attn(hidden), plain, atol=1e-6)


def test_the_frame_count_must_be_known_and_fit():
    attn = attention()
    attn.set_processor(RecurrentCausalAttention(FrameCount()))
    with pytest.raises(RuntimeError, match="needs the frame count of the UNet call"):
        attn(torch.randn(6, 4, 8))
    count = FrameCount()
    count.frames = 4
    attn.set_processor(RecurrentCausalAttention(count))
    with pytest.raises(RuntimeError, match=r"got 4 for 6 rows"):
        attn(torch.randn(6, 4, 8))


def run(unet, latents):
    text = torch.randn(1, 3, TINY_TEXT_DIM, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return unet(latents, 10, encoder_hidden_states=text.repeat_interleave(latents.shape[2], 0)).sample


def test_on_a_view_of_an_animatediff_unet_the_base_stays_as_it_was():
    base = tiny_unet_motion()
    weights = {name: tensor.clone() for name, tensor in base.state_dict().items()}
    processors = {name: type(p) for name, p in base.attn_processors.items()}
    view = make_view(base)
    moving = torch.randn(1, 4, 5, 8, 8, generator=torch.Generator().manual_seed(0))
    before = run(view, moving)  # the view itself, not the base: two module trees may round apart (~1e-7)
    attached = attach_rca(view)

    from diffusers.models.transformers.transformer_2d import Transformer2DModel
    spatial = [m for m in view.modules() if isinstance(m, Transformer2DModel)]
    assert len(attached.names) == sum(len(t.transformer_blocks) for t in spatial) > 0
    assert all(".motion_modules." not in name and name.endswith(".attn1") for name in attached.names)
    assert [name for name, _ in spatial_self_attentions(view)] == list(attached.names)
    replaced = {name + ".processor" for name in attached.names}
    assert all(isinstance(p, RecurrentCausalAttention) == (name in replaced)
               for name, p in view.attn_processors.items())

    assert not torch.allclose(run(view, moving), before, atol=1e-3)
    assert attached.frame_count.frames == 5

    assert {name: type(p) for name, p in base.attn_processors.items()} == processors
    assert all(torch.equal(tensor, weights[name]) for name, tensor in base.state_dict().items())
    attached.remove()
    assert {name: type(p) for name, p in view.attn_processors.items()} == processors
    assert torch.equal(run(view, moving), before)


def test_gradients_reach_the_projections_rca_uses():
    view = make_view(tiny_unet_motion(), for_training=True)
    attach_rca(view)
    name, attn = spatial_self_attentions(view)[0]
    attn.to_k.weight.requires_grad_(True)
    latents = torch.randn(1, 4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    text = torch.randn(3, 3, TINY_TEXT_DIM)
    view(latents, 10, encoder_hidden_states=text).sample.square().mean().backward()
    assert attn.to_k.weight.grad is not None and bool(attn.to_k.weight.grad.abs().sum() > 0), name
