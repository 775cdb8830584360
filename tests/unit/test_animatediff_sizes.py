"""AnimateDiff at real size, on the ``meta`` device (no weights): SD1.5's UNet with the v2 and v3
motion modules, where the adapters attach and how big they are at 512×512×16 (README figures)."""

import json

import pytest
import torch

from motion_core.adapters.embeddings import embedding_blocks
from motion_core.adapters.lora import lora_targets
from motion_core.backbones import motion_sites, site_attentions
from motion_core.backbones.animatediff import SD15_CONFIGS, motion_module_info
from support.original_files import motion_adapter_to_original

MODULES = {"v2": {"use_motion_mid_block": True, "motion_max_seq_length": 32},
           "v3": {"use_motion_mid_block": False, "motion_max_seq_length": 32}}
"""diffusers' settings of guoyww's v2 (mm_sd_v15_v2) and v3 (v3_sd15_mm) motion adapters."""


@pytest.fixture(scope="module", params=sorted(MODULES))
def published(request):
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(json.loads((SD15_CONFIGS / "unet" / "config.json").read_text()))
        adapter = MotionAdapter(**MODULES[request.param])
        return request.param, adapter, UNetMotionModel.from_unet2d(unet, adapter, load_weights=False)


def test_motion_sites_attentions_and_lora_targets(published):
    version, _, unet = published
    sites, attentions = motion_sites(unet), site_attentions(unet)
    mid = version == "v2"
    assert len(sites) == 20 + mid and len(attentions) == 2 * len(sites)
    projections = [linear for attention in attentions for _, linear in attention.projections()]
    assert len(projections) == 3 * len(attentions)
    assert sum(linear.weight.numel() for linear in projections) == (123_494_400 if mid else 113_664_000)
    assert len(lora_targets(unet, "temporal")) == 10 * len(sites)  # q, k, v, out of 2 attentions + 2 feed-forward
    assert len(lora_targets(unet, "temporal", feed_forward_too=False)) == 8 * len(sites)
    motion_parameters = sum(p.numel() for name, p in unet.named_parameters() if "motion_modules" in name)
    assert round(motion_parameters / 1e6, 1) == (453.2 if mid else 417.1)


def test_grids_and_motion_embeddings_at_512x512x16(published):
    """512×512 pixels → 64×64 latents → 64, 32, 16, 8 at levels 0..3; Motion Inversion's widest
    blocks are the 1280-channel ones: 10 sites at 16×16 and 8×8."""
    _, _, unet = published
    grids = {(site.block, site.channels, site.grid(64, 64)) for site in motion_sites(unet)}
    assert ("down_blocks.0", 320, (64, 64)) in grids and ("up_blocks.0", 1280, (8, 8)) in grids
    widest = embedding_blocks(unet, "widest")
    assert [site.block for site in widest] == ["down_blocks.2"] * 2 + ["down_blocks.3"] * 2 + \
        ["up_blocks.0"] * 3 + ["up_blocks.1"] * 3
    values = sum(2 * site.tokens(64, 64) * 32 * site.inner_dim for site in widest)  # (h·w, 32 slots, C) per attention
    query_keys = sum(32 * site.inner_dim for site in widest)
    assert (values, query_keys) == (131_072_000, 409_600)


def test_the_published_modules_are_told_apart_by_their_tensors(published):
    version, adapter, _ = published
    info = motion_module_info(motion_adapter_to_original(adapter))
    assert info.version == version and info.frames == 32
    assert {key: info.config[key] for key in ("block_out_channels", "motion_layers_per_block",
                                              "motion_num_attention_heads", "motion_norm_num_groups")} == \
        {"block_out_channels": [320, 640, 1280, 1280], "motion_layers_per_block": 2,
         "motion_num_attention_heads": 8, "motion_norm_num_groups": 32}
