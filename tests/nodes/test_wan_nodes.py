"""Wan from ComfyUI's own files in Load Video Model: transformers from models/diffusion_models with a VAE
(models/vae) and a text encoder (models/text_encoders); and the files the tests write are the ones
ComfyUI's own Wan and UMT5 modules read, at tiny size with the same outputs and at real size with the
configs the pack ships."""

import json
import shutil

import pytest
import torch

from support.original_files import _save
from support.wan_files import transformer_to_original, vae_to_original, write_header_only_transformer, write_wan_files

TINY = "diffusion_models/tiny-wan.safetensors"
REAL = "diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors"
"""A file with the 1.3B's architecture tensors only (headers are all validation reads)."""
HIGH, LOW = "wan2.2_t2v_high_noise_14B_fp16.safetensors", "wan2.2_t2v_low_noise_14B_fp16.safetensors"
"""Wan 2.2 A14B's two expert files (14B architecture tensors only)."""
TI2V = "diffusion_models/wan2.2_ti2v_5B_fp16.safetensors"
"""A file with Wan 2.2 TI2V-5B's architecture tensors only (48 latent channels)."""


@pytest.fixture(scope="module")
def models_dir(pack, tmp_path_factory):
    import folder_paths

    testing = __import__(f"{pack.__name__}.motion_core.testing", fromlist=["write_tiny_text_to_video_folder"])
    root = tmp_path_factory.mktemp("models")
    written = write_wan_files(root)
    write_header_only_transformer(root / "diffusion_models" / REAL.split("/")[1], 1536, 30)
    write_header_only_transformer(root / "diffusion_models" / TI2V.split("/")[1], 3072, 30, channels=48)
    _save(root / "vae" / "tiny-wan22-vae.safetensors", vae_to_original(testing.tiny_wan22_vae()))
    for expert in (HIGH, LOW):
        write_header_only_transformer(root / "diffusion_models" / expert, 5120, 40)
    shutil.copy(written["files"]["text_encoder"], root / "vae" / "a-text-encoder.safetensors")
    shutil.copy(written["files"]["vae"], root / "text_encoders" / "a-vae.safetensors")
    testing.write_tiny_text_to_video_folder(root / "diffusers" / "tiny-t2v")
    testing.write_tiny_wan_folder(root / "diffusers" / "tiny-wan")
    for name in ("diffusers", "diffusion_models", "vae", "text_encoders"):
        folder_paths.add_model_folder_path(name, str(root / name), is_default=True)
    return written


@pytest.fixture(scope="module")
def loader(pack, models_dir):
    return pack.nodes.model.LoadVideoModel


def test_the_loader_lists_diffusion_models_vaes_and_text_encoders(loader):
    inputs = {item.id: item for item in loader.GET_SCHEMA().inputs}
    assert {"tiny-t2v", TINY, REAL} <= set(inputs["model_name"].options)
    assert inputs["vae_name"].options[0] == "none" and "tiny-wan-vae.safetensors" in inputs["vae_name"].options
    assert inputs["text_encoder_name"].options[0] == "none"
    assert "tiny-umt5.safetensors" in inputs["text_encoder_name"].options
    assert inputs["low_noise_model_name"].options[0] == "none" and LOW in inputs["low_noise_model_name"].options
    assert inputs["low_noise_model_name"].default == "none" and inputs["low_noise_model_name"].optional
    # appended: saved graphs load
    assert list(inputs)[-4:] == ["motion_module", "vae_name", "text_encoder_name", "low_noise_model_name"]


def test_encode_reference_resamples_a_clip_of_known_rate_to_16_fps_and_says_so(pack, loader):
    """With Load Reference Video's video_info, a 24 fps clip reaches Wan at 16 fps (then 4k+1 frames);
    without it the frames are taken as they are."""
    with torch.inference_mode():
        (model,) = loader.execute("tiny-wan", "fp32", "none", "sdpa", 8).args
        frames = torch.rand(20, 32, 32, 3, generator=torch.Generator().manual_seed(0))
        encode = pack.nodes.model.EncodeReference
        resampled = encode.execute(model, frames, 0, 0, {"loaded_fps": 24.0})
        plain = encode.execute(model, frames, 0, 0)
    assert torch.equal(resampled.args[1], frames[[int(1.5 * k) for k in range(13)]])
    assert list(resampled.ui.as_dict()["text"]) == [("resampled 20 frames at 24 fps to 14 at 16 fps, the model's rate; "
                                                     "encoded the first 13 of 14 frames: this model takes 1 + 4k "
                                                     "frames")]
    assert torch.equal(plain.args[1], frames[:17])
    assert list(plain.ui.as_dict()["text"]) == ["encoded the first 17 of 20 frames: this model takes 1 + 4k frames"]


def test_the_loader_says_what_a_wan_file_needs(loader):
    vae, text = "tiny-wan-vae.safetensors", "tiny-umt5.safetensors"
    assert loader.validate_inputs(REAL, "none", vae, text) is True
    assert loader.validate_inputs(REAL).startswith(
        "vae_name: 'wan2.1_t2v_1.3B_fp16.safetensors' is a Wan transformer file: choose the Wan 2.1 VAE file")
    assert loader.validate_inputs(REAL, "none", vae).startswith(
        "text_encoder_name: 'wan2.1_t2v_1.3B_fp16.safetensors' is a Wan transformer file: choose the UMT5-XXL")
    assert loader.validate_inputs(REAL, "none", "a-text-encoder.safetensors", text).startswith(
        "vae_name: 'a-text-encoder.safetensors' is not a Wan VAE")
    assert loader.validate_inputs(REAL, "none", vae, "a-vae.safetensors").startswith(
        "text_encoder_name: 'a-vae.safetensors' is not a UMT5 text encoder in ComfyUI's layout")
    assert loader.validate_inputs(REAL, "none", "missing.safetensors", text).startswith(
        "vae_name: 'missing.safetensors' is not in models/vae")
    message = loader.validate_inputs("tiny-t2v", "none", vae)
    assert message.startswith("vae_name: a ModelScope/ZeroScope-family") and message.endswith(
        "takes no vae; leave it out (none)")
    assert loader.validate_inputs("diffusion_models/missing.safetensors").startswith(
        "model_name: 'missing.safetensors' is not in models/diffusion_models")


def test_the_loader_takes_ti2v_5b_with_the_wan_22_vae_only(loader):
    """Wan 2.2 TI2V-5B's file with the Wan 2.2 VAE passes; a VAE of the other generation, either way round, is
    refused naming vae_name and what to choose."""
    wan21, wan22, text = "tiny-wan-vae.safetensors", "tiny-wan22-vae.safetensors", "tiny-umt5.safetensors"
    assert loader.validate_inputs(TI2V, "none", wan22, text) is True
    assert loader.validate_inputs(TI2V).startswith(
        "vae_name: 'wan2.2_ti2v_5B_fp16.safetensors' is a Wan transformer file: choose the Wan 2.2 VAE file "
        "(models/vae: wan2.2_vae.safetensors")
    assert loader.validate_inputs(TI2V, "none", wan21, text).startswith(
        "vae_name: 'tiny-wan-vae.safetensors' is the Wan 2.1 VAE (16 latent channels); Wan 2.2 TI2V 5B takes the Wan "
        "2.2 VAE (48): choose wan2.2_vae.safetensors")
    assert loader.validate_inputs(REAL, "none", wan22, text).startswith(
        "vae_name: 'tiny-wan22-vae.safetensors' is the Wan 2.2 VAE (48 latent channels); Wan 2.1 T2V 1.3B takes the "
        "Wan 2.1 VAE (16): choose wan_2.1_vae.safetensors")


def test_the_loader_takes_wan_22_a14b_as_its_two_expert_files(loader):
    """model_name the high-noise expert, low_noise_model_name the low-noise one; a pair that cannot be one
    Wan 2.2 A14B is refused naming low_noise_model_name, before the graph runs and when it runs."""
    vae, text, high = "tiny-wan-vae.safetensors", "tiny-umt5.safetensors", f"diffusion_models/{HIGH}"
    assert loader.validate_inputs(high, "none", vae, text, LOW) is True
    assert loader.validate_inputs(REAL, "none", vae, text, LOW).startswith(
        f"low_noise_model_name: '{LOW}' is Wan 2.1 T2V 14B (or a Wan 2.2 T2V A14B expert) but the model "
        "'wan2.1_t2v_1.3B_fp16.safetensors' is Wan 2.1 T2V 1.3B: Wan 2.2 A14B's two experts are of one architecture")
    assert loader.validate_inputs(high, "none", vae, text, HIGH).startswith(
        f"low_noise_model_name: '{HIGH}' is the model itself; choose the low-noise expert")
    assert loader.validate_inputs(f"diffusion_models/{LOW}", "none", vae, text, HIGH).startswith(
        f"low_noise_model_name: '{HIGH}' is named as the high-noise expert and the model '{LOW}' as the low-noise one")
    assert loader.validate_inputs("tiny-t2v", "none", "none", "none", LOW).endswith(
        "takes no low noise model; leave it out (none)")
    assert loader.validate_inputs("tiny-wan", "none", "none", "none", LOW).startswith(
        "low_noise_model_name: 'tiny-wan' is a Wan diffusers folder: a Wan 2.2 A14B folder carries its low-noise "
        "expert itself (transformer_2)")
    assert loader.validate_inputs(high, "none", vae, text, "missing.safetensors").startswith(
        "low_noise_model_name: 'missing.safetensors' is not in models/diffusion_models")
    with pytest.raises(Exception, match="^low_noise_model_name: 'wan2.2_t2v_low_noise_14B_fp16.safetensors' is Wan"):
        loader.execute(REAL, "fp32", "none", "sdpa", 8, "none", vae, text, LOW)
    single, pair = (loader.fingerprint_inputs(high, "none", vae, text, *low) for low in ((), (LOW,)))
    assert single != pair, "ComfyUI's cache tells the pair from the expert alone"


def test_a_file_of_no_published_size_is_refused_naming_the_input(loader):
    """The shipped configs are what users' files load with; the tiny file fits none of them."""
    message = loader.validate_inputs(TINY, "none", "tiny-wan-vae.safetensors", "tiny-umt5.safetensors")
    assert message.startswith("model_name: 'tiny-wan.safetensors' is a Wan transformer 24 wide, which is none of the "
                              "published text-to-video sizes")
    with pytest.raises(Exception, match="^model_name: 'tiny-wan.safetensors' is a Wan transformer 24 wide"):
        loader.execute(TINY, "fp32", "none", "sdpa", 8, "none", "tiny-wan-vae.safetensors", "tiny-umt5.safetensors")


def comfy_modules():
    import comfy.ops
    from comfy.ldm.wan.model import WanModel
    from comfy.ldm.wan.vae import WanVAE
    from comfy.text_encoders.t5 import T5

    return comfy.ops.disable_weight_init, WanModel, WanVAE, T5


def umt5_xxl_config() -> dict:
    from support.comfy_host import host_source

    return json.loads((host_source() / "comfy" / "text_encoders" / "umt5_config_xxl.json").read_text())


def test_comfyuis_own_modules_read_the_written_files_into_the_same_models(pack, models_dir):
    """The files are ComfyUI's layout, not only the inverse of diffusers' converters: ComfyUI's Wan model,
    Wan VAE and UMT5 (with its SPieceTokenizer) load them strictly and compute what the pack's models do."""
    from safetensors.torch import load_file

    from comfy.text_encoders.spiece_tokenizer import SPieceTokenizer

    ops, WanModel, WanVAE, T5 = comfy_modules()
    files, gen = models_dir["files"], torch.Generator().manual_seed(0)
    transformer = WanModel(dim=24, ffn_dim=32, freq_dim=256, text_dim=16, in_dim=16, out_dim=16, num_heads=2,
                           num_layers=2, operations=ops, device="cpu", dtype=torch.float32).eval()
    transformer.load_state_dict(load_file(files["model"]), strict=True)
    vae = WanVAE(dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                 temperal_downsample=[False, True, True]).eval()
    vae.load_state_dict(load_file(files["vae"]), strict=True)
    state = load_file(files["text_encoder"])
    tokenizer = SPieceTokenizer(state.pop("spiece_model"))
    config = umt5_xxl_config() | {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 2, "num_heads": 2,
                                  "vocab_size": models_dir["text_encoder"].config.vocab_size}
    text_encoder = T5(config, torch.float32, "cpu", ops).eval()
    text_encoder.load_state_dict(state, strict=True)

    x, text, z = torch.randn(1, 16, 3, 4, 4, generator=gen), torch.randn(1, 7, 16, generator=gen), torch.randn(
        1, 16, 2, 4, 4, generator=gen)
    ids = torch.tensor([tokenizer("a red square is moving left")["input_ids"]])
    with torch.no_grad():
        # ComfyUI computes the time embedding's sinusoids and RoPE in float64: equal to ~1e-6
        torch.testing.assert_close(transformer(x, torch.tensor([500.0]), text), models_dir["transformer"](
            hidden_states=x, timestep=torch.tensor([500.0]), encoder_hidden_states=text).sample, rtol=0, atol=1e-5)
        # diffusers clamps the decoded video to [-1, 1], ComfyUI's wrapper after the module; their norms and
        # attention round differently (~1e-5 after the tiny VAE's 30 convolutions)
        torch.testing.assert_close(vae.decode(z).clamp(-1, 1), models_dir["vae"].decode(z).sample, rtol=0, atol=3e-5)
        torch.testing.assert_close(text_encoder(ids, torch.ones_like(ids))[0], models_dir["text_encoder"](
            ids, attention_mask=torch.ones_like(ids)).last_hidden_state, rtol=0, atol=1e-6)
    wan_files = __import__(f"{pack.__name__}.motion_core.backbones.wan_files", fromlist=["SentencePieceTokenizer"])
    pack_ids, _ = wan_files.SentencePieceTokenizer(models_dir["spiece"]).tokens(["a red square is moving left"], 512)
    assert pack_ids[0, : ids.shape[1]].tolist() == ids[0].tolist()


@pytest.mark.parametrize("variant, width, ffn, heads, layers, channels", [("t2v-1.3b", 1536, 8960, 12, 30, 16),
                                                                           ("t2v-14b", 5120, 13824, 40, 40, 16),
                                                                           ("ti2v-5b", 3072, 14336, 24, 30, 48)])
def test_the_shipped_configs_have_comfyuis_names_and_shapes_at_real_size(pack, variant, width, ffn, heads, layers,
                                                                         channels):
    """On the meta device: the published transformers, the Wan 2.1 and 2.2 VAEs and UMT5-XXL as ComfyUI builds them
    have exactly the tensors the pack's shipped configs give in the original layout."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from test_wan22_vae_in_comfy import comfy_wan22_vae

    ops, WanModel, WanVAE, T5 = comfy_modules()
    wan_files = __import__(f"{pack.__name__}.motion_core.backbones.wan_files", fromlist=["WanFileConfigs"])
    shipped = wan_files.WanFileConfigs.shipped(variant)

    def shapes(state):
        return {name: tuple(tensor.shape) for name, tensor in state.items()}

    with torch.device("meta"):
        theirs = WanModel(dim=width, ffn_dim=ffn, num_heads=heads, num_layers=layers, in_dim=channels,
                          out_dim=channels, operations=ops)
        ours = WanTransformer3DModel.from_config(WanTransformer3DModel.load_config(shipped.transformer))
        assert shapes(transformer_to_original(ours)) == shapes(theirs.state_dict())
        if variant != "t2v-14b":  # the Wan 2.1 VAE (both T2V models') and the Wan 2.2 VAE (TI2V-5B's)
            ours = AutoencoderKLWan.from_config(AutoencoderKLWan.load_config(shipped.vae))
            theirs = comfy_wan22_vae(160, 256) if channels == 48 else WanVAE(
                dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                temperal_downsample=[False, True, True])  # as comfy/sd.py builds each
            assert shapes(vae_to_original(ours)) == shapes(theirs.state_dict())
        if variant == "t2v-1.3b":  # one text encoder for all
            ours = UMT5EncoderModel(UMT5Config.from_json_file(shipped.text_encoder / "config.json"))
            theirs = T5(umt5_xxl_config(), None, "meta", ops)
            assert shapes(ours.state_dict()) == shapes(theirs.state_dict()) | {
                "encoder.embed_tokens.weight": (256384, 4096)}
