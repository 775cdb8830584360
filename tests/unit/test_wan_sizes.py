"""Wan at real size, on the ``meta`` device (no weights): the shipped configs of the published
transformers, where each parameterisation attaches and how big it is (README figures)."""

import json

import pytest
import torch

from motion_core.adapters import ADAPTER_KINDS
from motion_core.adapters.lora import lora_targets
from motion_core.backbones import motion_sites, site_attentions
from motion_core.backbones.wan import WAN_CONFIGS

EXPECTED = {  # blocks, width, feed-forward width, transformer parameters (billions, as published: 1.3B, 14B, 5B)
    "t2v-1.3b": (30, 1536, 8960, 1.42),
    "t2v-14b": (40, 5120, 13824, 14.29),
    "ti2v-5b": (30, 3072, 14336, 5.0),
}


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def published(request):
    from diffusers import WanTransformer3DModel

    config = json.loads((WAN_CONFIGS / request.param / "transformer" / "config.json").read_text())
    with torch.device("meta"):
        return request.param, WanTransformer3DModel.from_config(config)


def test_sites_and_where_each_parameterisation_attaches(published):
    name, transformer = published
    blocks, width, ffn, parameters = EXPECTED[name]
    qkv = blocks * 3 * width * width  # VMC's deltas: q, k, v of each block's self-attention
    lora = blocks * 32 * (4 * 2 * width + 2 * (width + ffn))  # rank 32: q, k, v, out and the two ffn linears
    sites = motion_sites(transformer)
    assert len(sites) == blocks and {(s.layout, s.inner_dim) for s in sites} == {("joint", width)}
    attentions = site_attentions(transformer)
    assert [a.slot for a in attentions] == ["attn1"] * blocks  # the 3-D self-attention; attn2 is the text's
    assert sum(linear.weight.numel() for a in attentions for _, linear in a.projections()) == qkv
    targets = lora_targets(transformer, "temporal")
    assert len(targets) == 6 * blocks  # q, k, v, out of attn1 and the feed-forward's two linears
    assert sum(32 * (linear.in_features + linear.out_features) for _, linear in targets) == lora
    assert round(sum(p.numel() for p in transformer.parameters()) / 1e9, 2) == parameters
    with torch.device("meta"):
        deltas = ADAPTER_KINDS["temporal_attention"].for_unet(transformer)
    assert sum(t.numel() for t in deltas.to_tensors().values()) == qkv


LATENTS_832x480x33 = {"t2v-1.3b": (9, 60, 104), "t2v-14b": (9, 60, 104), "ti2v-5b": (9, 30, 52)}
"""Latent frames, height, width of an 832×480, 33-frame clip: the Wan 2.1 VAE compresses 8× in space,
the Wan 2.2 VAE of TI2V-5B 16×; both 4× in time."""


def test_motion_embeddings_get_one_pair_per_block_with_a_coarse_value_grid(published):
    name, transformer = published
    blocks, width, _, _ = EXPECTED[name]
    frames, height, width_latent = LATENTS_832x480x33[name]
    with torch.device("meta"):
        adapter = ADAPTER_KINDS["motion_embeddings"].for_unet(transformer, "", (frames, height, width_latent))
    value_tokens = -(-(height // 2) // 4) * -(-(width_latent // 2) // 4)  # patch 2, then value_stride 4
    assert sum(t.numel() for t in adapter.to_tensors().values()) == blocks * 32 * width * (1 + value_tokens)
