"""Wan (flow-matching DiT) through the pipeline every family shares: a tiny diffusers WanPipeline
folder loads offline and trains, inverts, generates and decodes; what Wan cannot take is named."""

import json

import pytest
import torch

from motion_core import pipeline
from motion_core.backbones import ModelOptions, WanBackbone, family_for, load_backbone, motion_sites
from motion_core.errors import InputError
from motion_core.sampling import FlowMatching
from motion_core.testing import moving_square_frames, write_tiny_wan_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_wan_folder(tmp_path_factory.mktemp("wan") / "tiny-wan", flow_shift=5.0)


@pytest.fixture(scope="module")
def backbone(folder):
    return load_backbone(folder, ModelOptions(dtype="fp32", device="cpu"))


def test_the_folder_is_a_wan_model_with_its_schedulers_shift(folder, backbone):
    assert family_for(folder) is WanBackbone and isinstance(backbone.sampling, FlowMatching)
    assert backbone.sampling.shift == 5.0 and backbone.fingerprint.startswith("wan:")
    assert [(site.name, site.layout) for site in motion_sites(backbone.transformer)] == [
        ("blocks.0", "joint"), ("blocks.1", "joint")]
    assert backbone.pixel_multiple() == 16 and backbone.latent_frames(17) == 5


def test_prompts_are_512_umt5_tokens_with_the_padding_zeroed(backbone):
    text = backbone.encode_prompt(["a red square moving left", ""])
    assert text.shape == (2, 512, 16)
    used = (text.abs().sum(-1) > 0).sum(-1).tolist()
    assert used == [6, 1]  # five words and </s>; the empty prompt is </s> alone


def test_frames_wan_cannot_take_are_named(backbone):
    with pytest.raises(InputError, match=r"^frames: 16 frames given; Wan takes 4k\+1 frames .* load 13"):
        backbone.encode_video(moving_square_frames(16, 32, 32))
    with pytest.raises(InputError, match="^frames: 40x32 frames do not fit this model, which needs width and height "
                                         "in multiples of 16"):
        backbone.encode_video(moving_square_frames(9, 40, 32))


def test_encode_reference_keeps_the_longest_start_of_the_clip_wan_takes(backbone):
    frames = moving_square_frames(16, 32, 32)
    latents, encoded = pipeline.encode_reference(backbone, frames, 0, 0)
    assert encoded.shape[0] == 13 and torch.equal(encoded, frames[:13])
    assert latents.samples.shape[2] == backbone.latent_frames(13) == 4
    assert [pipeline.frame_count_fitted(n, 4) for n in (3, 5, 8, 9, 81, 84)] == [3, 5, 5, 9, 81, 81]
    assert pipeline.frame_count_fitted(16, 1) == 16


def test_a_clip_of_known_rate_is_resampled_to_wans_16_fps_before_the_frame_rule(backbone):
    frames = moving_square_frames(20, 32, 32)  # 20 frames at 24 fps: 5/6 s, 14 slots of 1/16 s
    _, encoded = pipeline.encode_reference(backbone, frames, 0, 0, fps=24.0)
    chosen = [int(1.5 * k) for k in range(13)]  # the frame on screen at k/16 s; then 4k+1 = 13 of the 14
    assert torch.equal(encoded, frames[chosen])
    assert pipeline.describe_fitting(backbone, 20, 24.0, 13) == (
        "resampled 20 frames at 24 fps to 14 at 16 fps, the model's rate; encoded the first 13 of 14 frames: this "
        "model takes 1 + 4k frames")
    same, _ = pipeline.encode_reference(backbone, frames[:17], 0, 0, fps=16.0)
    assert same.samples.shape[2] == backbone.latent_frames(17)
    assert pipeline.describe_fitting(backbone, 17, 16.0, 17) is None


def test_a_whole_transfer_runs_on_wan(backbone):
    latents, _ = pipeline.encode_reference(backbone, moving_square_frames(17, 32, 32), 0, 0)
    assert latents.samples.shape == (1, 16, 5, 4, 4)
    trained = pipeline.train_adapter(backbone, latents, "a red square moving right", kind="lora", steps=2)
    assert trained.adapter.backbone == backbone.fingerprint
    inverted = pipeline.invert_reference(backbone, latents, steps=3)
    noise = pipeline.make_noise(inverted, "blend", seed=1)
    generated = pipeline.generate(backbone, noise, "a blue circle", steps=3, cfg=3.0,
                                  adapters=((trained.adapter, 1.0),))
    frames = pipeline.decode(backbone, generated)
    assert frames.shape == (17, 32, 32, 3) and torch.isfinite(frames).all()


def test_a_folder_missing_parts_is_named(folder, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(InputError, match="^model: 'broken' lacks the subfolders vae"):
        load_backbone(broken)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["transformer"] == ["diffusers", "WanTransformer3DModel"]
