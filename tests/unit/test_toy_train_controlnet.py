"""The toy pose ControlNet's training script: how it builds the ControlNet, and a few steps on a tiny model."""

import json

import numpy as np
import pytest
import torch

from motion_core.adapters import make_view
from motion_core.edit.motion_attention import PoseCondition, attach_pose_control

from motion_core.backbones import load_backbone
from motion_core.edit.controlnet import load_controlnet
from motion_core.testing import tiny_unet2d, tiny_unet_motion, write_tiny_animatediff_folder
from motion_core.toy import train_controlnet


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return write_tiny_animatediff_folder(tmp_path_factory.mktemp("animatediff") / "model", seed=3)


def test_the_image_unet_is_the_motion_unet_without_its_motion_modules():
    image = train_controlnet.image_unet_from_motion_unet(tiny_unet_motion(seed=4))
    expected = tiny_unet2d(seed=4)  # what from_unet2d combined with the motion modules
    x, t, text = torch.randn(3, 4, 16, 16), torch.tensor([5, 400, 900]), torch.randn(3, 5, 32)
    with torch.no_grad():
        torch.testing.assert_close(image(x, t, text).sample, expected(x, t, text).sample, atol=1e-6, rtol=0)


def test_the_conditioning_embedding_downsamples_as_the_vae_does():
    assert train_controlnet.conditioning_channels(8) == (16, 32, 96, 256)  # SD1.5's
    assert train_controlnet.conditioning_channels(2) == (16, 32)
    with pytest.raises(ValueError, match="not 2, 4 or 8"):
        train_controlnet.conditioning_channels(3)


def test_a_fresh_controlnet_changes_nothing_and_fits_latents_at_half_the_pixels():
    unet = tiny_unet_motion(seed=5)
    image = train_controlnet.image_unet_from_motion_unet(unet)
    controlnet = train_controlnet.controlnet_for(image, vae_downsampling=2).eval()
    x, t, text, pose = torch.randn(1, 4, 3, 16, 16), torch.tensor([500]), torch.randn(1, 5, 32), torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        frames = x[0].permute(1, 0, 2, 3)
        torch.testing.assert_close(train_controlnet.controlled_noise(image, controlnet, frames, t.expand(3),
                                                                     text.expand(3, -1, -1), pose),
                                   image(frames, t.expand(3), text.expand(3, -1, -1)).sample)
        plain = unet(x, t, encoder_hidden_states=text.repeat_interleave(3, 0)).sample
        view = make_view(unet)
        attach_pose_control(view, PoseCondition(controlnet, pose))
        torch.testing.assert_close(view(x, t, encoder_hidden_states=text.repeat_interleave(3, 0)).sample, plain)


def test_frame_batches_hold_a_frame_its_skeleton_and_its_caption():
    frames, poses, captions = train_controlnet.frame_batch(np.random.default_rng(0), 20)
    assert frames.shape == poses.shape == (20, 32, 32, 3) and len(captions) == 20
    assert all(pose.amax() > 0 for pose in poses)  # every frame has its skeleton drawn
    assert captions.count("") == 3 and all(caption == "" or caption.startswith("a ") for caption in captions)


def test_training_moves_the_controlnet_alone(tiny_folder):
    backbone = load_backbone(tiny_folder)
    frozen = {f"{part}.{name}": p.clone() for part in ("unet", "vae", "text_encoder")
              for name, p in getattr(backbone, part).state_dict().items()}
    controlnet = train_controlnet.controlnet_for(train_controlnet.image_unet_from_motion_unet(backbone.unet), 2)
    start = {name: p.clone() for name, p in controlnet.state_dict().items()}
    trained, loss = train_controlnet.train_controlnet(backbone, controlnet, np.random.default_rng(0), steps=2,
                                                      batch=2, lr=1e-3)
    assert loss > 0 and not trained.training and not any(p.requires_grad for p in trained.parameters())
    assert not torch.equal(trained.controlnet_mid_block.weight, start["controlnet_mid_block.weight"])
    for part in ("unet", "vae", "text_encoder"):
        for name, p in getattr(backbone, part).state_dict().items():
            assert torch.equal(p, frozen[f"{part}.{name}"]), f"{part}.{name} changed"


def test_the_script_writes_a_folder_load_controlnet_loads(tiny_folder, tmp_path):
    out = tmp_path / "pose-controlnet"
    assert train_controlnet.main(["--model", str(tiny_folder), "--out", str(out), "--steps", "2", "--batch", "2",
                                  "--seed", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "toy_pose_controlnet.safetensors",
                                                     "training.json"]
    record = json.loads((out / "training.json").read_text())
    assert (record["steps"], record["batch"], record["seed"]) == (2, 2, 1)
    assert record["conditioning_embedding_out_channels"] == [16, 32] and record["final_loss"] > 0
    assert record["seconds"] > 0 and "train_controlnet" in record["command"]
    controlnet = load_controlnet(out / "toy_pose_controlnet.safetensors", configs=out)
    assert controlnet.controlnet_mid_block.weight.abs().max() > 0  # the zero convolution learnt
    with pytest.raises(SystemExit):  # an existing folder is kept unless --overwrite
        train_controlnet.main(["--model", str(tiny_folder), "--out", str(out), "--steps", "1"])


def test_the_shipped_controlnet_loads_and_was_trained_for_the_toy_animatediff_model():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "models" / "toy-pose-controlnet"
    controlnet = load_controlnet(folder / "toy_pose_controlnet.safetensors", configs=folder)
    assert tuple(controlnet.config.conditioning_embedding_out_channels) == (16, 32)
    assert controlnet.config.cross_attention_dim == 64 and tuple(controlnet.config.block_out_channels) == (32, 64)
    assert all(block.weight.abs().max() > 0 for block in controlnet.controlnet_down_blocks)
    record = json.loads((folder / "training.json").read_text())
    assert record["model"] == "toy-animatediff" and record["steps"] == 2400 and record["final_loss"] < 0.02


def test_the_shipped_controlnet_loads_without_its_config_from_the_models_unet():
    """What Load Pose ControlNet does with the file alone in models/controlnet: the config derived from the
    toy AnimateDiff UNet gives the same model as the folder's config.json."""
    from pathlib import Path

    from motion_core.backbones import load_backbone

    models = Path(__file__).resolve().parents[2] / "models"
    folder = models / "toy-pose-controlnet"
    unet_config = dict(load_backbone(models / "toy-animatediff").denoiser_module.config)
    derived = load_controlnet(folder / "toy_pose_controlnet.safetensors", unet_config=unet_config)
    given = load_controlnet(folder / "toy_pose_controlnet.safetensors", configs=folder)
    assert derived.state_dict().keys() == given.state_dict().keys()
    assert all(torch.equal(a, given.state_dict()[name]) for name, a in derived.state_dict().items())
    generator = torch.Generator().manual_seed(0)
    sample, pose = torch.randn(2, 4, 16, 16, generator=generator), torch.rand(2, 3, 32, 32, generator=generator)
    text = torch.randn(2, 7, 64, generator=generator)
    with torch.no_grad():
        a = derived(sample, torch.tensor([5, 900]), text, pose, return_dict=False)
        b = given(sample, torch.tensor([5, 900]), text, pose, return_dict=False)
    for x, y in zip([*a[0], a[1]], [*b[0], b[1]]):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
