"""motion_core.backbones.unet3d: loading a real diffusers folder, encoding, decoding, bad folders."""

import json
import shutil

import pytest
import torch

from motion_core.backbones import ModelOptions, load_backbone
from motion_core.backbones.base import config_fingerprint
from motion_core.errors import InputError
from motion_core.testing import write_tiny_text_to_video_folder


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return write_tiny_text_to_video_folder(tmp_path_factory.mktemp("models") / "tiny-t2v")


@pytest.fixture(scope="module")
def backbone(model_folder):
    return load_backbone(model_folder)


def test_loads_every_part_frozen_in_the_asked_dtype(model_folder):
    backbone = load_backbone(model_folder, ModelOptions(dtype="bf16", device="cpu"))
    assert backbone.dtype == torch.bfloat16
    for module in (backbone.unet, backbone.vae, backbone.text_encoder):
        assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in module.parameters())
    assert backbone.family == "unet3d" and backbone.fingerprint.startswith("unet3d:")


def test_weights_loaded_under_inference_mode_can_still_train(model_folder):
    """ComfyUI loads models inside torch.inference_mode(); training views need normal tensors."""
    with torch.inference_mode():
        backbone = load_backbone(model_folder)
    assert not any(p.is_inference() for p in backbone.unet.parameters())


def test_prompt_and_video_round_trip_shapes(backbone):
    text = backbone.encode_prompt(["a red circle moving left", ""])
    assert text.shape == (2, 77, 32)
    assert not torch.equal(text[0], text[1])
    frames = torch.rand(8, 32, 48, 3)
    latents = backbone.encode_video(frames)
    assert latents.shape == (1, 4, 8, 16, 24)
    decoded = backbone.decode_latents(latents)
    assert decoded.shape == (8, 32, 48, 3) and 0 <= decoded.min() and decoded.max() <= 1


def test_encoding_a_reference_reports_each_frame_resized_then_each_part_encoded(model_folder):
    """Encode Reference shows this progress and honours a cancel at each report (found by the fuzz
    tier: at width 8192 the node ran 80 s after a cancel)."""
    from motion_core.pipeline import encode_reference

    backbone = load_backbone(model_folder, ModelOptions(vae_decode_chunk=4))
    calls = []
    latents, fitted = encode_reference(backbone, torch.rand(6, 20, 20, 3), 32, 32,
                                       progress=lambda done, total: calls.append((done, total)))
    assert fitted.shape == (6, 32, 32, 3) and latents.samples.shape == (1, 4, 6, 16, 16)
    assert calls == [(1, 12), (2, 12), (3, 12), (4, 12), (5, 12), (6, 12), (10, 12), (12, 12)]


def test_frames_larger_than_an_encoding_part_are_encoded_one_by_one_as_all_at_once(model_folder, monkeypatch):
    """A cancel waits for one encoding part, so a part never holds more than ``ENCODE_PART_PIXELS``
    (here lowered to one 32 x 32 frame) whatever ``vae_decode_chunk`` allows; the latents are the same."""
    from motion_core.backbones import latent_unet

    backbone = load_backbone(model_folder, ModelOptions(vae_decode_chunk=4))
    frames = torch.rand(3, 32, 32, 3)
    together = backbone.encode_video(frames)
    monkeypatch.setattr(latent_unet, "ENCODE_PART_PIXELS", 32 * 32)
    calls = []
    apart = backbone.encode_video(frames, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert torch.allclose(apart, together, atol=1e-5)


def test_sliced_decode_equals_whole_decode(model_folder):
    latents = torch.randn(1, 4, 6, 8, 8)
    whole = load_backbone(model_folder, ModelOptions(vae_decode_chunk=0)).decode_latents(latents)
    calls = []
    sliced = load_backbone(model_folder, ModelOptions(vae_decode_chunk=4)).decode_latents(
        latents, progress=lambda done, total: calls.append((done, total)))
    assert torch.allclose(whole, sliced, atol=1e-5)
    assert calls == [(4, 6), (6, 6)]


def test_fingerprint_follows_architecture_not_weights(tmp_path, backbone):
    other = load_backbone(write_tiny_text_to_video_folder(tmp_path / "same-arch", seed=5))
    assert not torch.equal(next(other.unet.parameters()), next(backbone.unet.parameters()))
    assert other.fingerprint == backbone.fingerprint
    changed = dict(backbone.unet.config) | {"attention_head_dim": 16}
    assert config_fingerprint("unet3d", changed) != backbone.fingerprint
    assert config_fingerprint("unet3d", dict(backbone.unet.config)) == backbone.fingerprint


@pytest.mark.parametrize("count, size, message", [
    (1, (32, 32), "motion needs at least 2 frames"),
    (8, (30, 32), "multiples of 4"),
])
def test_frames_the_model_cannot_take(backbone, count, size, message):
    with pytest.raises(InputError, match=f"^frames: .*{message}"):
        backbone.encode_video(torch.rand(count, *size, 3))


def test_a_stable_diffusion_folder_asks_for_a_motion_module(model_folder, tmp_path):
    folder = tmp_path / "sd15"
    shutil.copytree(model_folder, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index |= {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(InputError, match="^motion_module: 'sd15' is a Stable Diffusion folder: choose a motion "
                                         "module"):
        load_backbone(folder)
    index |= {"_class_name": "FluxPipeline", "unet": None, "transformer": ["diffusers", "FluxTransformer2DModel"]}
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(InputError, match="^model: 'sd15' is not a model this pack can load"):
        load_backbone(folder)


def test_folder_without_model_index_lists_its_content(tmp_path):
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "model.ckpt").write_bytes(b"x")
    with pytest.raises(InputError, match=r"'loose' is not a model this pack can load \(it holds model.ckpt\)"):
        load_backbone(tmp_path / "loose")


def test_pickle_weights_are_not_loaded(model_folder, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(model_folder, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_name("diffusion_pytorch_model.bin"))
    with pytest.raises(InputError, match=r"^model: 'pickled': unet/ has no .safetensors weights "
                                         r"\(it holds config.json, diffusion_pytorch_model.bin\); only safetensors"):
        load_backbone(folder)


def test_bad_options_are_named(model_folder):
    with pytest.raises(InputError, match="^dtype: 'fp8'"):
        load_backbone(model_folder, ModelOptions(dtype="fp8"))
    with pytest.raises(InputError, match="^offload: 'disk'"):
        load_backbone(model_folder, ModelOptions(offload="disk"))
