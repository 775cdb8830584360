"""Edit-Your-Motion's pose ControlNet from the files users keep in ``models/controlnet``: ControlNet 1.1's
cldm keys with or without the ``control_model.`` prefix (``.pth`` read weights-only, or
``.safetensors``) and diffusers-format files, all loaded offline into the same model. The files are
written by the tests from a tiny ControlNet (``tests/support/original_files.controlnet_to_cldm``)."""

import json

import pytest
import torch
from safetensors.torch import save_file
from support.original_files import controlnet_to_cldm

from motion_core.edit.controlnet import controlnet_layout, load_controlnet
from motion_core.errors import InputError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny SD-style ControlNet (ANIMATEDIFF.md §5's sizes) and a folder with its config."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(16, 32), layers_per_block=1, cross_attention_dim=16,
                                attention_head_dim=2, norm_num_groups=4, sample_size=8,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(4, 8, 8, 16)).eval()
    with torch.no_grad():  # the zero convolutions start at zero: give them values so that outputs differ
        for module in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                       controlnet.controlnet_cond_embedding.conv_out]:
            module.weight.normal_(0, 0.1)
    folder = tmp_path_factory.mktemp("config")
    (folder / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel", **dict(controlnet.config)}))
    return controlnet, folder


def outputs(controlnet):
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(2, 4, 8, 8, generator=generator)
    pose = torch.rand(2, 3, 64, 64, generator=generator)
    text = torch.randn(2, 5, 16, generator=generator)
    with torch.no_grad():
        down, mid = controlnet(sample, torch.tensor([10, 500]), text, pose, return_dict=False)
    return [*down, mid]


@pytest.mark.parametrize("kind", ["cldm .pth", "cldm .safetensors without prefix", "diffusers .safetensors"])
def test_every_file_layout_loads_into_the_same_controlnet(tiny, tmp_path, kind):
    controlnet, config = tiny
    if kind == "cldm .pth":
        path = tmp_path / "control_v11p_sd15_openpose.pth"
        torch.save({"state_dict": controlnet_to_cldm(controlnet)}, path)
    elif kind.startswith("cldm"):
        path = tmp_path / "openpose.safetensors"
        save_file(controlnet_to_cldm(controlnet, prefix=""), path)
    else:
        path = tmp_path / "diffusion_pytorch_model.safetensors"
        save_file({k: v.contiguous() for k, v in controlnet.state_dict().items()}, path)
    loaded = load_controlnet(path, configs=config)
    for got, expected in zip(outputs(loaded), outputs(controlnet)):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training


def test_the_layout_is_told_from_the_tensors(tiny):
    controlnet, _ = tiny
    assert controlnet_layout(controlnet_to_cldm(controlnet)) == "cldm"
    assert controlnet_layout(controlnet_to_cldm(controlnet, prefix="")) == "cldm"
    assert controlnet_layout(controlnet.state_dict()) == "diffusers"
    assert controlnet_layout({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)}) is None


def test_files_that_are_not_an_sd15_controlnet_are_refused_by_name(tiny, tmp_path):
    controlnet, _ = tiny
    other = tmp_path / "not_a_controlnet.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(InputError, match="^controlnet: 'not_a_controlnet.safetensors' is not a ControlNet"):
        load_controlnet(other)
    tiny_file = tmp_path / "tiny.safetensors"
    save_file(controlnet_to_cldm(controlnet), tiny_file)
    with pytest.raises(InputError, match=r"^controlnet: 'tiny.safetensors' is a ControlNet \(cldm keys\) but not of "
                                         "this model's shape"):
        load_controlnet(tiny_file)  # with the shipped SD1.5 config
    with pytest.raises(InputError, match="^controlnet: 'missing.pth' does not exist"):
        load_controlnet(tmp_path / "missing.pth")


def test_the_shipped_config_is_sd15s_controlnet():
    from diffusers import ControlNetModel

    from motion_core.backbones.animatediff import SD15_CONFIGS

    config = ControlNetModel.load_config(SD15_CONFIGS / "controlnet")
    with torch.device("meta"):
        model = ControlNetModel.from_config(config)
    assert config["cross_attention_dim"] == 768 and tuple(config["block_out_channels"]) == (320, 640, 1280, 1280)
    assert tuple(config["conditioning_embedding_out_channels"]) == (16, 32, 96, 256)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6) == 361  # ControlNet 1.1 SD1.5: 361 M


def test_the_config_derived_from_sd15s_unet_is_the_shipped_one():
    """A ControlNet copies its UNet's encoder: SD1.5's UNet config (and the hint widths of an SD1.5 file)
    give the shipped config field for field."""
    from motion_core.backbones.animatediff import SD15_CONFIGS
    from motion_core.edit.controlnet import controlnet_config

    shipped = json.loads((SD15_CONFIGS / "controlnet" / "config.json").read_text())
    unet = json.loads((SD15_CONFIGS / "unet" / "config.json").read_text())
    hint = {f"input_hint_block.{2 * i}.weight": torch.zeros(width, 1, 1, 1)
            for i, width in enumerate((16, 16, 32, 32, 96, 96, 256, 320))}
    assert controlnet_config(unet, hint) == {**shipped, "num_attention_heads": None}


@pytest.mark.parametrize("layout, hint", [("cldm", (4, 8, 8, 16)), ("diffusers", (4, 8))])
def test_a_controlnet_of_another_size_loads_with_the_config_of_its_animatediff_unet(tmp_path, layout, hint):
    """The pose ControlNet of a non-SD1.5-sized model (the toy world's) needs no config file: the loaded
    model's UNet says what it is. (diffusers converts cldm keys for SD's four-level pose-image encoder
    only, so the toy world's two-level one ships in diffusers' layout.)"""
    from diffusers import ControlNetModel

    from motion_core.testing import tiny_unet2d, tiny_unet_motion

    controlnet = ControlNetModel.from_unet(tiny_unet2d(), conditioning_embedding_out_channels=hint).eval()
    with torch.no_grad():
        for module in [*controlnet.controlnet_down_blocks, controlnet.controlnet_cond_embedding.conv_out]:
            module.weight.normal_(0, 0.1)
    path = tmp_path / "pose.safetensors"
    save_file(controlnet_to_cldm(controlnet) if layout == "cldm" else
              {k: v.contiguous() for k, v in controlnet.state_dict().items()}, path)
    loaded = load_controlnet(path, unet_config=dict(tiny_unet_motion().config))
    generator = torch.Generator().manual_seed(1)
    side = 8 * 2 ** (len(hint) - 1)  # each step of the pose-image encoder halves the side
    sample, pose = torch.randn(2, 4, 8, 8, generator=generator), torch.rand(2, 3, side, side, generator=generator)
    text = torch.randn(2, 5, 32, generator=generator)
    with torch.no_grad():
        got = loaded(sample, torch.tensor([10, 500]), text, pose, return_dict=False)
        expected = controlnet(sample, torch.tensor([10, 500]), text, pose, return_dict=False)
    for a, b in zip([*got[0], got[1]], [*expected[0], expected[1]]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
