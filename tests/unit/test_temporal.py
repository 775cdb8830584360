"""Where the temporal attention of a UNet3D is: the tiny test UNet and the published ModelScope and
ZeroScope architectures (built on the meta device: real module names and sizes, no weights)."""

import pytest
import torch

from motion_core.backbones import motion_sites as temporal_transformers, site_attentions as temporal_attentions
from motion_core.testing import TINY_TEXT_DIM, tiny_unet3d

# unet/config.json of damo-vilab/text-to-video-ms-1.7b (ModelScope) and of cerspense/zeroscope_v2_576w
# (ZeroScope fine-tunes ModelScope: the same architecture).
MODELSCOPE_UNET = {
    "_class_name": "UNet3DConditionModel", "_diffusers_version": "0.17.0.dev0", "act_fn": "silu",
    "attention_head_dim": 64, "block_out_channels": [320, 640, 1280, 1280], "cross_attention_dim": 1024,
    "down_block_types": ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
    "downsample_padding": 1, "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1,
    "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 32,
    "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
}
ZEROSCOPE_UNET = {**MODELSCOPE_UNET, "_name_or_path": "cerspense/zeroscope_v2_576w"}
PUBLISHED = {"modelscope": MODELSCOPE_UNET, "zeroscope_v2_576w": ZEROSCOPE_UNET}


def meta_unet(config):
    from diffusers import UNet3DConditionModel

    with torch.device("meta"):
        return UNet3DConditionModel.from_config(config)


@pytest.fixture(scope="module", params=sorted(PUBLISHED))
def published(request):
    return request.param, meta_unet(PUBLISHED[request.param])


def test_published_architectures_have_17_temporal_transformers_34_attentions_102_qkv(published):
    name, unet = published
    transformers, attentions = temporal_transformers(unet), temporal_attentions(unet)
    projections = [p for attention in attentions for p in attention.projections()]
    print(f"\n{name}: {len(transformers)} temporal transformers, {len(attentions)} temporal attentions, "
          f"{len(projections)} q/k/v linears, {sum(l.weight.numel() for _, l in projections) / 1e6:.1f} M q/k/v weights")
    assert (len(transformers), len(attentions), len(projections)) == (17, 34, 102)
    blocks = [t.block for t in transformers]
    assert blocks == ["transformer_in"] + ["down_blocks.0"] * 2 + ["down_blocks.1"] * 2 + ["down_blocks.2"] * 2 \
        + ["mid_block"] + ["up_blocks.1"] * 3 + ["up_blocks.2"] * 3 + ["up_blocks.3"] * 3


def test_every_temporal_transformer_module_is_found_once(published):
    from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

    _, unet = published
    expected = [n for n, m in unet.named_modules() if isinstance(m, TransformerTemporalModel)]
    found = [t.name for t in temporal_transformers(unet)]
    assert sorted(found) == sorted(expected) and len(set(found)) == len(found)
    for attention in temporal_attentions(unet):
        assert unet.get_submodule(attention.name) is attention.module
        assert attention.slot in ("attn1", "attn2") and attention.module.is_cross_attention is False


def test_published_widths_levels_and_grids_at_576x320(published):
    """576×320 pixels → 72×40 latents (VAE factor 8) → 72×40, 36×20, 18×10, 9×5 at levels 0..3."""
    _, unet = published
    layout = {(t.block, t.channels, t.inner_dim, t.level, t.grid(40, 72)) for t in temporal_transformers(unet)}
    assert layout == {
        ("transformer_in", 320, 512, 0, (40, 72)),
        ("down_blocks.0", 320, 320, 0, (40, 72)), ("down_blocks.1", 640, 640, 1, (20, 36)),
        ("down_blocks.2", 1280, 1280, 2, (10, 18)), ("mid_block", 1280, 1280, 3, (5, 9)),
        ("up_blocks.1", 1280, 1280, 2, (10, 18)), ("up_blocks.2", 640, 640, 1, (20, 36)),
        ("up_blocks.3", 320, 320, 0, (40, 72)),
    }
    wide = [t for t in temporal_transformers(unet) if t.channels == 1280 and t.block != "mid_block"]
    assert [t.block for t in wide] == ["down_blocks.2"] * 2 + ["up_blocks.1"] * 3  # Motion Inversion's default 5
    assert {t.tokens(40, 72) for t in wide} == {180}


def test_tiny_unet_layout():
    unet = tiny_unet3d()
    layout = [(t.name, t.block, t.channels, t.inner_dim, t.heads, t.level) for t in temporal_transformers(unet)]
    assert layout == [
        ("transformer_in", "transformer_in", 32, 64, 8, 0),
        ("down_blocks.0.temp_attentions.0", "down_blocks.0", 32, 32, 4, 0),
        ("mid_block.temp_attentions.0", "mid_block", 64, 64, 8, 1),
        ("up_blocks.1.temp_attentions.0", "up_blocks.1", 32, 32, 4, 0),
        ("up_blocks.1.temp_attentions.1", "up_blocks.1", 32, 32, 4, 0),
    ]
    assert [a.name for a in temporal_attentions(unet)][:2] == ["transformer_in.transformer_blocks.0.attn1",
                                                               "transformer_in.transformer_blocks.0.attn2"]


@pytest.mark.parametrize("size", [(16, 16), (10, 6), (9, 7)])
def test_grid_is_the_size_each_transformer_actually_sees(size):
    """The level arithmetic (ceil halving) against the hidden states a forward pass really feeds in."""
    unet = tiny_unet3d()
    seen = {}

    def record(name):
        def hook(module, args):
            seen[name] = tuple(args[0].shape[-2:])  # hidden states (batch·frames, channels, h, w)
        return hook

    hooks = [t.module.register_forward_pre_hook(record(t.name)) for t in temporal_transformers(unet)]
    with torch.no_grad():
        unet(torch.randn(1, 4, 3, *size), torch.tensor([10]), encoder_hidden_states=torch.randn(1, 5, TINY_TEXT_DIM))
    for hook in hooks:
        hook.remove()
    assert {t.name: t.grid(*size) for t in temporal_transformers(unet)} == seen
