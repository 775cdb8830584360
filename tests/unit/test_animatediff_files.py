"""AnimateDiff from the files users hold: an SD1.5 checkpoint and a motion module, each one file in its
original key layout, loaded offline through the same code users' files go through, give the models
they were written from."""

import pickle

import pytest
import torch

from motion_core.backbones import AnimateDiffBackbone, ModelOptions, family_for, load_backbone, motion_sites
from motion_core.backbones.animatediff import motion_module_info, read_state_dict
from motion_core.errors import InputError
from motion_core.testing import (TINY_TEXT_DIM, tiny_clip_parts, tiny_motion_adapter, tiny_scheduler, tiny_unet2d,
                                 write_tiny_text_to_video_folder)
from support.original_files import (motion_adapter_to_original, sinusoidal_positions, write_configs,
                                          write_motion_module, write_sd15_checkpoint)

FP32 = ModelOptions(dtype="fp32", device="cpu")


pytestmark = pytest.mark.usefixtures("offline_hub")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The tiny models and their single files (checkpoint, motion module) plus tokenizer and configs."""
    folder = tmp_path_factory.mktemp("animatediff-files")
    tokenizer, text_encoder, vae = tiny_clip_parts(folder)
    unet, adapter = tiny_unet2d(), tiny_motion_adapter()
    files = {
        "checkpoint": write_sd15_checkpoint(folder / "checkpoints" / "tiny-sd15.safetensors", unet, vae, text_encoder),
        "motion_module": write_motion_module(folder / "animatediff_models" / "tiny_mm_v2.safetensors", adapter),
        "tokenizer": folder / "tokenizer_source",
        "configs": write_configs(folder / "configs", unet, vae, text_encoder, adapter, tiny_scheduler("linear")),
    }
    return {"unet": unet, "adapter": adapter, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer,
            "files": files, "folder": folder}


def parts_of(written, **changes):
    files = {**written["files"], **changes}
    return {name: files[name] for name in ("motion_module", "tokenizer", "configs")}


def load(written, checkpoint=None, **changes):
    return load_backbone(checkpoint or written["files"]["checkpoint"], FP32, input_name="model_name",
                         parts=parts_of(written, **changes))


def test_the_original_files_load_offline_into_the_models_they_were_written_from(written):
    from diffusers import UNetMotionModel

    backbone = load(written)
    assert isinstance(backbone, AnimateDiffBackbone) and backbone.motion_module.version == "v2"
    expected = UNetMotionModel.from_unet2d(written["unet"], written["adapter"]).eval()
    gen = torch.Generator().manual_seed(0)
    x, text = torch.randn(1, 4, 8, 8, 8, generator=gen), torch.randn(1, 7, TINY_TEXT_DIM, generator=gen)
    with torch.no_grad():
        got = backbone.call_denoiser(backbone.unet, x, torch.tensor([300]), text)
        want = expected(x, torch.tensor([300]), encoder_hidden_states=text.repeat_interleave(8, 0)).sample
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        latents = torch.randn(2, 4, 8, 8, generator=gen)
        torch.testing.assert_close(backbone.vae.decode(latents).sample, written["vae"].decode(latents).sample,
                                   rtol=0, atol=1e-6)
        tokens = written["tokenizer"](["the red square"], return_tensors="pt").input_ids
        torch.testing.assert_close(backbone.text_encoder(tokens)[0], written["text_encoder"](tokens)[0],
                                   rtol=0, atol=1e-6)
    assert backbone.scheduler_config["beta_schedule"] == "linear"  # AnimateDiff's schedule, not SD's


def test_pickle_format_files_load_the_same_without_running_pickled_code(written, tmp_path):
    checkpoint = write_sd15_checkpoint(tmp_path / "tiny-sd15.ckpt", written["unet"], written["vae"],
                                       written["text_encoder"])
    module = write_motion_module(tmp_path / "mm.ckpt", written["adapter"])
    from_pickles, from_safetensors = load(written, checkpoint, motion_module=module), load(written)
    state = from_safetensors.unet.state_dict()
    assert all(torch.equal(tensor, state[name]) for name, tensor in from_pickles.unet.state_dict().items())

    class Payload:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    hostile = tmp_path / "hostile.ckpt"
    hostile.write_bytes(pickle.dumps({"state_dict": Payload()}))
    with pytest.raises(InputError, match=r"^motion_module: 'hostile.ckpt' could not be read safely .*never pickled"):
        load(written, motion_module=hostile)


@pytest.mark.parametrize("mid_block, frames, positional, version", [
    (True, 32, True, "v2"), (False, 24, True, "v1"), (False, 32, True, "v3"), (False, 32, False, "animatelcm"),
])
def test_the_motion_module_version_is_told_from_its_tensors(mid_block, frames, positional, version):
    adapter = tiny_motion_adapter(use_motion_mid_block=mid_block, motion_max_seq_length=frames)
    info = motion_module_info(motion_adapter_to_original(adapter, positional))
    assert info.version == version
    assert info.frames == (frames if positional else 64)
    assert info.config["block_out_channels"] == [16, 32] and info.config["use_motion_mid_block"] == mid_block


def test_the_written_positional_encoding_is_the_one_diffusers_computes():
    """diffusers recomputes the encodings it skips when converting: the formula must be the original's."""
    adapter = tiny_motion_adapter()
    computed = adapter.state_dict()["down_blocks.0.motion_modules.0.transformer_blocks.0.pos_embed.pe"]
    torch.testing.assert_close(computed, sinusoidal_positions(32, 16))


def test_frames_beyond_the_positional_encoding_are_refused(written, tmp_path):
    module = write_motion_module(tmp_path / "v1.safetensors",
                                 tiny_motion_adapter(use_motion_mid_block=False, motion_max_seq_length=24))
    backbone = load(written, motion_module=module)
    assert backbone.motion_module.version == "v1" and backbone.max_frames() == 24
    with pytest.raises(InputError, match="^frames: 25 frames given; this model's motion module takes at most 24"):
        backbone.encode_video(torch.rand(25, 32, 32, 3))
    assert backbone.encode_video(torch.rand(24, 32, 32, 3)).shape == (1, 4, 24, 16, 16)


def test_the_motion_sites_are_the_motion_modules(written):
    backbone = load(written)
    sites = motion_sites(backbone.unet)
    assert [site.name for site in sites] == [
        "down_blocks.0.motion_modules.0", "down_blocks.1.motion_modules.0", "mid_block.motion_modules.0",
        "up_blocks.0.motion_modules.0", "up_blocks.0.motion_modules.1", "up_blocks.1.motion_modules.0",
        "up_blocks.1.motion_modules.1"]
    assert {(site.family, site.layout) for site in sites} == {("animatediff", "frames")}
    assert [site.level for site in sites] == [0, 1, 1, 1, 1, 0, 0]


def test_what_is_missing_is_named(written, tmp_path):
    checkpoint = written["files"]["checkpoint"]
    with pytest.raises(InputError, match="^motion_module: 'tiny-sd15.safetensors' is a Stable Diffusion 1.5 "
                                         "checkpoint: choose a motion module"):
        load_backbone(checkpoint, FP32, parts={"tokenizer": written["files"]["tokenizer"]})
    with pytest.raises(InputError, match="^tokenizer: a single-file checkpoint needs the SD1.5 CLIP tokenizer folder "
                                         r"\(no folder was given\); ComfyUI ships it in comfy/sd1_tokenizer"):
        load(written, tokenizer=None)
    (tmp_path / "no-vocab").mkdir()
    with pytest.raises(InputError, match="^tokenizer: .*'no-vocab' has no vocab.json"):
        load(written, tokenizer=tmp_path / "no-vocab")
    with pytest.raises(InputError, match="^motion_module: the file holds no AnimateDiff motion modules"):
        load(written, motion_module=checkpoint)
    with pytest.raises(InputError, match="^model_name: 'tiny_mm_v2.safetensors' is not a model this pack can load"):
        load(written, checkpoint=written["files"]["motion_module"])


def test_a_tokenizer_that_does_not_fit_the_text_encoder_is_refused(written, tmp_path):
    """transformers 5 gives a 2-token tokenizer for an incomplete folder without error; a tokenizer of
    another size would feed the text encoder ids it has no embeddings for."""
    from motion_core.testing import write_tiny_tokenizer
    from motion_core.toy.model import write_bpe_tokenizer

    write_bpe_tokenizer(tmp_path / "bigger", (("t", "h"), ("th", "e</w>"), ("a", "n"), ("an", "d</w>"), ("r", "e")))
    with pytest.raises(InputError, match="^tokenizer: the tokenizer has 519 tokens but the text encoder 518"):
        load(written, tokenizer=tmp_path / "bigger")
    write_tiny_tokenizer(tmp_path / "same")
    assert load(written, tokenizer=tmp_path / "same").tokenizer.vocab_size == 518


def test_the_registry_tells_the_families_apart(written, tmp_path):
    unet3d_folder = write_tiny_text_to_video_folder(tmp_path / "zeroscope")
    assert family_for(unet3d_folder).family == "unet3d"
    assert family_for(written["files"]["checkpoint"]).family == "animatediff"
    assert read_state_dict(written["files"]["motion_module"], "motion_module")
