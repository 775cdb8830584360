"""Wan from ComfyUI's own single files: a transformer (models/diffusion_models), the Wan 2.1 VAE or, for Wan
2.2 TI2V-5B, the Wan 2.2 VAE (models/vae) and the UMT5 text encoder carrying its SentencePiece tokenizer
(models/text_encoders), each written by the tests in its original key layout, loaded offline through the same
code users' files go through, give the models they were written from; the architecture is told from the
header; what the pack does not load is refused by name."""

import pytest
import torch

from motion_core import pipeline
from motion_core.backbones import ModelOptions, WanBackbone, check_model, family_for, load_backbone
from motion_core.backbones.single_files import TensorInfo
from motion_core.backbones.wan_files import (WAN_CONFIGS, SentencePieceTokenizer, load_text_encoder, load_transformer,
                                             transformer_configs)
from motion_core.errors import InputError
from motion_core.testing import TINY_WAN_TEXT_DIM, moving_square_frames
from support.original_files import _save
from support.wan_files import (as_fp8, dequantised_file, linear_weights, original_name, transformer_to_original,
                               umt5_to_comfy, vae_to_original, write_header_only_transformer, write_wan_files)

FP32 = ModelOptions(dtype="fp32", device="cpu")
FP8_ERROR = {"fp8_e4m3fn": 2 ** -4, "fp8_e5m2": 2 ** -3, "fp8_scaled": 2 ** -4}
"""The largest relative rounding error of one value in each fp8 format (e4m3: 3 mantissa bits, e5m2: 2): an fp8
file's outputs are the full-precision file's within it (measured on the tiny models: 2.7-5.3 % for e4m3,
7-10 % for e5m2)."""


pytestmark = pytest.mark.usefixtures("offline_hub")


@pytest.fixture(scope="module")
def written(offline_hub, tmp_path_factory):
    return write_wan_files(tmp_path_factory.mktemp("wan-files"))


@pytest.fixture(scope="module")
def backbone(written):
    return load(written)


def parts_of(written, **changes):
    parts = {name: written["files"][name] for name in ("vae", "text_encoder", "configs")} | changes
    return {name: path for name, path in parts.items() if path is not None}


def load(written, model=None, options=FP32, **changes):
    return load_backbone(model or written["files"]["model"], options, "model_name", parts_of(written, **changes))


def header(state: dict[str, torch.Tensor], dtype: str = "F16") -> dict[str, TensorInfo]:
    return {name: TensorInfo(dtype, tuple(tensor.shape)) for name, tensor in state.items()}


def shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(tensor.shape) for name, tensor in state.items()}


def meta_transformer(variant: str):
    from diffusers import WanTransformer3DModel

    with torch.device("meta"):
        return WanTransformer3DModel.from_config(WanTransformer3DModel.load_config(WAN_CONFIGS / variant / "transformer"))


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_the_writers_are_the_inverse_of_diffusers_converters(written, prefix):
    """What the tests write, diffusers' own converters turn back into the models it was written from."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from diffusers.loaders.single_file_utils import (convert_wan_transformer_to_diffusers,
                                                     convert_wan_vae_to_diffusers)

    transformer = WanTransformer3DModel.from_config(written["transformer"].config).eval()
    transformer.load_state_dict(convert_wan_transformer_to_diffusers(
        transformer_to_original(written["transformer"], prefix)), strict=True)
    vae = AutoencoderKLWan.from_config(written["vae"].config).eval()
    vae.load_state_dict(convert_wan_vae_to_diffusers(vae_to_original(written["vae"])), strict=True)
    gen = torch.Generator().manual_seed(0)
    x, text = torch.randn(1, 16, 3, 4, 4, generator=gen), torch.randn(1, 7, TINY_WAN_TEXT_DIM, generator=gen)
    pixels = torch.rand(1, 3, 5, 16, 16, generator=gen) * 2 - 1
    with torch.no_grad():
        for model in (transformer, written["transformer"]):
            model.eval()
        got = transformer(hidden_states=x, timestep=torch.tensor([500.0]), encoder_hidden_states=text).sample
        want = written["transformer"](hidden_states=x, timestep=torch.tensor([500.0]), encoder_hidden_states=text).sample
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        torch.testing.assert_close(vae(pixels).sample, written["vae"](pixels).sample, rtol=0, atol=1e-6)
    assert any(name.startswith(prefix + "blocks.0.self_attn.q.") for name in transformer_to_original(transformer, prefix))


def test_the_files_load_offline_into_the_models_they_were_written_from(written, backbone):
    assert family_for(written["files"]["model"]) is WanBackbone and isinstance(backbone, WanBackbone)
    gen = torch.Generator().manual_seed(1)
    x, text = torch.randn(1, 16, 3, 4, 4, generator=gen), torch.randn(1, 7, TINY_WAN_TEXT_DIM, generator=gen)
    latents, pixels = torch.randn(1, 16, 2, 4, 4, generator=gen), torch.rand(1, 3, 5, 16, 16, generator=gen) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(backbone.call_denoiser(backbone.transformer, x, torch.tensor([300.0]), text),
                                   backbone.call_denoiser(written["transformer"], x, torch.tensor([300.0]), text),
                                   rtol=0, atol=1e-6)
        torch.testing.assert_close(backbone.vae.decode(latents).sample, written["vae"].decode(latents).sample,
                                   rtol=0, atol=1e-6)
        torch.testing.assert_close(backbone.vae.encode(pixels).latent_dist.mode(),
                                   written["vae"].encode(pixels).latent_dist.mode(), rtol=0, atol=1e-6)
        ids, mask = backbone.tokenizer.tokens(["a red square is moving left"], 512)
        torch.testing.assert_close(backbone.text_encoder(ids, attention_mask=mask).last_hidden_state,
                                   written["text_encoder"](ids, attention_mask=mask).last_hidden_state,
                                   rtol=0, atol=1e-6)
    assert backbone.sampling.shift == 3.0 and backbone.fingerprint.startswith("wan:")


def test_the_tokenizer_is_the_files_sentencepiece_model_as_comfyui_uses_it(written, backbone):
    """ComfyUI's SPieceTokenizer: the pieces with </s> (id 1) appended, padded with 0 to 512; truncation
    keeps the </s>."""
    import sentencepiece

    pieces = sentencepiece.SentencePieceProcessor(model_proto=written["spiece"]).encode("a red square is moving left")
    ids, mask = backbone.tokenizer.tokens(["a red square is moving left", ""], 512)
    assert ids.shape == mask.shape == (2, 512)
    assert ids[0, : len(pieces) + 1].tolist() == [*pieces, 1] and ids[0, len(pieces) + 1:].eq(0).all()
    assert mask.sum(-1).tolist() == [len(pieces) + 1, 1] and ids[1, 0] == 1
    short, _ = backbone.tokenizer.tokens(["a red square is moving left"], 4)
    assert short.tolist() == [[*pieces[:3], 1]]
    text = backbone.encode_prompt(["a red square is moving left", ""])
    assert text.shape == (2, 512, TINY_WAN_TEXT_DIM)
    assert (text.abs().sum(-1) > 0).sum(-1).tolist() == [len(pieces) + 1, 1]  # padding zeroed, as Wan's pipeline


def test_the_files_load_in_the_dtypes_a_diffusers_folder_gives(written, tmp_path):
    """Wan keeps its time embedding, norms and modulation in fp32 (and UMT5 its ``wo``) at half precision:
    the same from a file as from a folder."""
    from diffusers import WanTransformer3DModel
    from transformers import UMT5EncoderModel

    from motion_core.backbones.wan_files import WanFileConfigs

    written["transformer"].save_pretrained(tmp_path / "transformer")
    written["text_encoder"].save_pretrained(tmp_path / "text_encoder")
    configs = WanFileConfigs.in_folder(written["files"]["configs"], "tiny")
    folder = {"transformer": WanTransformer3DModel.from_pretrained(tmp_path / "transformer", torch_dtype=torch.float16),
              "text_encoder": UMT5EncoderModel.from_pretrained(tmp_path / "text_encoder", dtype=torch.float16)}
    files = {"transformer": load_transformer(written["files"]["model"], configs, torch.float16),
             "text_encoder": load_text_encoder(written["files"]["text_encoder"], configs, torch.float16)[0]}
    for part, model in files.items():
        dtypes = {name: tensor.dtype for name, tensor in model.state_dict().items()}
        assert dtypes == {name: tensor.dtype for name, tensor in folder[part].state_dict().items()}, part
        assert torch.float32 in dtypes.values() and torch.float16 in dtypes.values()


def test_a_transfer_runs_on_the_single_files(backbone):
    latents, _ = pipeline.encode_reference(backbone, moving_square_frames(17, 32, 32), 0, 0)
    assert latents.samples.shape == (1, 16, 5, 4, 4)
    trained = pipeline.train_adapter(backbone, latents, "a red square is moving right", kind="lora", steps=1)
    noise = pipeline.make_noise(pipeline.invert_reference(backbone, latents, steps=2), "blend", seed=1)
    generated = pipeline.generate(backbone, noise, "a blue circle", steps=2, cfg=3.0, adapters=((trained.adapter, 1.0),))
    frames = pipeline.decode(backbone, generated)
    assert frames.shape == (17, 32, 32, 3) and torch.isfinite(frames).all()


@pytest.mark.parametrize("variant, name, vae, shift", [("t2v-1.3b", "Wan 2.1 T2V 1.3B", "vae", 3.0),
                                                       ("t2v-14b", "Wan 2.1 T2V 14B", "vae", 3.0),
                                                       ("ti2v-5b", "Wan 2.2 TI2V 5B", "ti2v-5b/vae", 5.0)])
def test_the_shipped_config_is_picked_from_the_published_tensor_shapes(variant, name, vae, shift):
    """At real size, on the meta device: the original-layout names and shapes of each published text-to-video
    transformer pick its shipped configs (TI2V-5B: the Wan 2.2 VAE and Wan 2.2's flow shift 5, ``wan_ti2v_5B.py``
    ``sample_shift``), and diffusers' converter turns them into exactly the model's names and shapes (TI2V-5B's
    transformer has the text-to-video keys: nothing new to convert)."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    from motion_core.backbones.wan import files_scheduler_config

    model = meta_transformer(variant)
    state = transformer_to_original(model)
    configs = transformer_configs(header(state), "wan.safetensors")
    assert configs.transformer == WAN_CONFIGS / variant / "transformer" and configs.variant.startswith(name)
    assert configs.vae == WAN_CONFIGS / vae and configs.text_encoder == WAN_CONFIGS / "text_encoder"
    assert files_scheduler_config(configs, pair=False, shipped=True)["flow_shift"] == shift
    prefixed = {"model.diffusion_model." + k: v for k, v in state.items()}
    assert transformer_configs(header(prefixed), "wan.safetensors") == configs
    converted = convert_wan_transformer_to_diffusers(dict(state))
    assert shapes(converted) == shapes(model.state_dict())


def test_the_shipped_vae_config_is_the_layout_diffusers_converter_reads():
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    with torch.device("meta"):
        vae = AutoencoderKLWan.from_config(AutoencoderKLWan.load_config(WAN_CONFIGS / "vae"))
    converted = convert_wan_vae_to_diffusers(vae_to_original(vae))
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    assert vae.config.z_dim == 16 and len(vae.config.latents_mean) == 16


def test_the_header_alone_tells_a_real_size_file(tmp_path):
    """check_model reads only the safetensors header: a file with the 1.3B's architecture tensors passes up
    to the parts it needs."""
    path = write_header_only_transformer(tmp_path / "wan2.1_t2v_1.3B_fp16.safetensors", 1536, 30)
    assert family_for(path) is WanBackbone
    with pytest.raises(InputError, match="^vae: 'wan2.1_t2v_1.3B_fp16.safetensors' is a Wan transformer file: "
                                         "choose the Wan 2.1 VAE file"):
        check_model(path)


@pytest.mark.parametrize("width, blocks, channels, extra, dtype, message", [
    (3072, 30, 16, (), "F16", "takes 16 latent channels where Wan 2.2 TI2V 5B text-to-video takes 48"),
    (1536, 20, 16, (), "F16", "has 20 blocks 1536 wide; Wan 2.1 T2V 1.3B has 30 blocks 1536 wide"),
    (5120, 40, 36, (), "F16", "takes 36 latent channels .* image-to-video or control model"),
    (5120, 40, 36, ("img_emb.proj.0.weight",), "F16", "is a Wan 2.1 image-to-video"),
    (1536, 30, 16, ("vace_blocks.0.after_proj.bias",), "F16", "is a Wan VACE model"),
    (5120, 40, 36, ("motion_encoder.dec.direction.weight",), "BF16", "is a Wan 2.2 Animate model"),
    (1536, 30, 16, ("blocks.0.ffn.0.comfy_quant",), "F8_E4M3",
     r"is quantised in ComfyUI's newer per-layer format \('blocks.0.ffn.0.comfy_quant': comfy_quant / weight_scale\), "
     r"which this pack does not load; download the fp16, bf16 or fp8 \(fp8_e4m3fn, fp8_scaled\) file instead: "
     r"wan2.1_t2v_1.3B_fp16"),
    (1536, 30, 16, ("blocks.0.ffn.0.weight_scale",), "F8_E4M3", "is quantised in ComfyUI's newer per-layer format"),
    (1536, 30, 16, (), "I8", r"is quantised \('patch_embedding.weight' is I8\), which this pack does not load"),
    (1536, 30, 16, (), "F8_E8M0", r"is quantised \('patch_embedding.weight' is F8_E8M0\)"),
    (1536, 30, 16, ("blocks.0.norm3.scale_weight",), "F8_E4M3",
     "is scaled \\('blocks.0.norm3.scale_weight'\\) without ComfyUI's 'scaled_fp8' marker"),
    (1536, 30, 16, ("blocks.0.norm3.weight", "blocks.0.norm3.scale_weight", "scaled_fp8"), "F16",
     r"is scaled in an unknown way \('blocks.0.norm3.scale_weight' of shape \(1,\), beside a F16 weight\)"),
    (1536, 30, 16, ("blocks.0.norm3.scale_weight", "scaled_fp8"), "F8_E4M3",
     r"is scaled in an unknown way \('blocks.0.norm3.scale_weight' of shape \(1,\), with no weight beside it\)"),
    (2048, 30, 16, (), "F16", "is a Wan transformer 2048 wide, which is none of the published text-to-video sizes"),
])
def test_what_the_pack_does_not_load_is_refused_by_name(width, blocks, channels, extra, dtype, message):
    state = {"patch_embedding.weight": (width, channels, 1, 2, 2), "head.modulation": (1, 2, width),
             **{f"blocks.{i}.norm3.bias": (width,) for i in range(blocks)}, **{name: (1,) for name in extra}}
    with pytest.raises(InputError, match="^model_name: 'wan.safetensors' " + message):
        transformer_configs({name: TensorInfo(dtype, shape) for name, shape in state.items()}, "wan.safetensors",
                            input_name="model_name")


def test_missing_and_wrong_parts_are_named(written, tmp_path):
    files = written["files"]
    with pytest.raises(InputError, match="^text_encoder: 'tiny-wan.safetensors' is a Wan transformer file: choose the "
                                         "UMT5-XXL text encoder file"):
        load(written, text_encoder=None)
    with pytest.raises(InputError, match="^text_encoder: 'tiny-wan-vae.safetensors' is not a UMT5 text encoder in "
                                         "ComfyUI's layout"):
        load(written, text_encoder=files["vae"])
    with pytest.raises(InputError, match="^vae: 'tiny-umt5.safetensors' is not a Wan VAE .* wan_2.1_vae.safetensors"):
        load(written, vae=files["text_encoder"])
    without = _save(tmp_path / "umt5-no-tokenizer.safetensors",
                    {k: v for k, v in umt5_to_comfy(written["text_encoder"], written["spiece"]).items() if k != "spiece_model"})
    with pytest.raises(InputError, match="^text_encoder: 'umt5-no-tokenizer.safetensors' carries no tokenizer"):
        load(written, text_encoder=without)
    mixed = _save(tmp_path / "umt5_xxl_fp8_mixed.safetensors",
                  {**umt5_to_comfy(written["text_encoder"], written["spiece"]),
                   "encoder.block.0.layer.0.SelfAttention.q.comfy_quant": torch.zeros(4, dtype=torch.uint8)})
    with pytest.raises(InputError, match=r"^text_encoder: 'umt5_xxl_fp8_mixed.safetensors' is quantised in ComfyUI's "
                                         r"newer per-layer format .* umt5_xxl_fp16.safetensors"):
        load(written, text_encoder=mixed)
    gguf = tmp_path / "umt5-xxl-encoder-Q8_0.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00")
    with pytest.raises(InputError, match=r"^text_encoder: 'umt5-xxl-encoder-Q8_0.gguf' is a GGUF file \(quantised "
                                         r"weights for ComfyUI-GGUF\), which this pack does not load; choose the "
                                         r"model's .safetensors file \(fp16, bf16, or fp8"):
        load(written, text_encoder=gguf)
    with pytest.raises(InputError, match=r"^model_name: 'umt5-xxl-encoder-Q8_0.gguf' is a GGUF file"):
        load(written, model=gguf)
    with pytest.raises(InputError, match="^model_name: 'tiny-wan-vae.safetensors' is not a model this pack can load"):
        load(written, model=files["vae"])


def test_the_shipped_configs_are_what_users_files_load_with(written):
    """Without the configs part the tiny files meet the shipped (real-size) configs: refused, naming the input."""
    with pytest.raises(InputError, match="^model_name: 'tiny-wan.safetensors' is a Wan transformer 24 wide, which is "
                                         "none of the published"):
        load(written, configs=None)


def test_a_folder_takes_no_file_parts(written, tmp_path):
    from motion_core.testing import write_tiny_wan_folder

    folder = write_tiny_wan_folder(tmp_path / "tiny-wan")
    with pytest.raises(InputError, match="^vae: 'tiny-wan' is a Wan diffusers folder with its own VAE, text encoder "
                                         "and configs; choose none"):
        check_model(folder, parts={"vae": written["files"]["vae"]})


def test_a_text_encoder_of_another_size_or_vocabulary_is_refused(written, tmp_path):
    import shutil

    from motion_core.testing import tiny_umt5

    small = _save(tmp_path / "small-umt5.safetensors", umt5_to_comfy(tiny_umt5(8), written["spiece"]))
    with pytest.raises(InputError, match=r"^text_encoder: 'small-umt5.safetensors' does not fit UMT5-XXL's encoder: "
                                         r"0 tensors missing .* 1 of another shape \(e.g. \['shared.weight'\]\)"):
        load(written, text_encoder=small)
    configs = shutil.copytree(written["files"]["configs"], tmp_path / "configs")
    tiny_umt5(8).config.to_json_file(configs / "text_encoder" / "config.json")
    tokens = len(SentencePieceTokenizer(written["spiece"]))
    with pytest.raises(InputError, match=f"^text_encoder: 'small-umt5.safetensors': its tokenizer has {tokens} tokens "
                                         "but its encoder 8; the file's parts do not belong together"):
        load(written, text_encoder=small, configs=configs)


# --- Wan 2.2 TI2V-5B with the Wan 2.2 VAE ----------------------------------------------------------------

@pytest.fixture(scope="module")
def written22(offline_hub, tmp_path_factory):
    """TI2V-5B's kind at tiny size: the Wan 2.2 VAE's layout (residual levels, patch 2, 48 channels, 16x) and a
    transformer of 48 channels, written as ComfyUI's files."""
    return write_wan_files(tmp_path_factory.mktemp("wan22-files"), wan22=True)


@pytest.fixture(scope="module")
def backbone22(written22):
    return load(written22)


def test_the_wan22_vae_file_loads_into_the_model_it_was_written_from(written22, backbone22):
    """Every tensor of the written file lands on the diffusers model's own (no converter of diffusers reads this
    layout: the pack's ``wan22_vae_to_diffusers``), and the model encodes and decodes as the original."""
    from safetensors.torch import load_file

    vae, original = backbone22.vae, written22["vae"]
    assert vae.config.is_residual and vae.config.patch_size == 2 and vae.config.z_dim == 48
    assert set(load_file(written22["files"]["vae"])) == set(vae_to_original(original))
    mine, theirs = vae.state_dict(), original.state_dict()
    assert set(mine) == set(theirs) and all(torch.equal(mine[name], theirs[name]) for name in theirs)
    gen = torch.Generator().manual_seed(3)
    pixels, latents = torch.rand(1, 3, 9, 32, 32, generator=gen) * 2 - 1, torch.randn(1, 48, 3, 2, 2, generator=gen)
    with torch.no_grad():
        encoded = vae.encode(pixels).latent_dist.mode()
        assert encoded.shape == (1, 48, 3, 2, 2)
        torch.testing.assert_close(encoded, original.encode(pixels).latent_dist.mode(), rtol=0, atol=0)
        torch.testing.assert_close(vae.decode(latents).sample, original.decode(latents).sample, rtol=0, atol=0)


def test_ti2v_files_follow_the_wan22_vae_in_frames_sizes_rate_and_latents(written22, backbone22):
    """16x in space (frames in multiples of 32 with the transformer's patch 2), 4x in time (4k+1 frames), 48
    normalised channels with the VAE's own mean and std, ComfyUI's ``Wan22`` previews, TI2V-5B's 24 fps."""
    assert (backbone22.latent_scale(), backbone22.pixel_multiple(), backbone22.latent_frames(17)) == (16, 32, 5)
    assert backbone22.frame_rate == 24.0 and backbone22.latent_format == "Wan22"
    with pytest.raises(InputError, match="^frames: 48x48 frames do not fit this model, which needs width and height "
                                         "in multiples of 32"):
        backbone22.check_frames(torch.zeros(5, 48, 48, 3))
    frames = moving_square_frames(17, 64, 32)
    latents = backbone22.encode_video(frames)
    assert latents.shape == (1, 48, 5, 2, 4)
    with torch.no_grad():
        raw = backbone22.vae.encode(frames.permute(3, 0, 1, 2)[None] * 2 - 1).latent_dist.mode()
    mean, std = (torch.tensor(backbone22.vae.config[key]).reshape(1, 48, 1, 1, 1) for key in ("latents_mean",
                                                                                             "latents_std"))
    torch.testing.assert_close(latents, (raw - mean) / std, rtol=0, atol=1e-6)
    assert backbone22.decode_latents(latents).shape == (17, 32, 64, 3)


def test_ti2v_without_an_image_is_text_to_video(backbone22):
    """TI2V-5B takes a timestep per token (the first frame's 0 when an image is given); with none, Wan 2.2's own
    ``t2v`` (``masks_like(…, zero=False)``: all ones) and diffusers' ``WanPipeline(expand_timesteps=True)`` give
    every token the sample's timestep, which is what the pack's one timestep per sample computes."""
    gen = torch.Generator().manual_seed(4)
    x, text = torch.randn(2, 48, 3, 4, 4, generator=gen), torch.randn(2, 7, TINY_WAN_TEXT_DIM, generator=gen)
    t = torch.tensor([300.0, 800.0])
    with torch.no_grad():
        ours = backbone22.call_denoiser(backbone22.transformer, x, t, text)
        per_token = backbone22.transformer(hidden_states=x, timestep=t[:, None].expand(2, 3 * 2 * 2),
                                           encoder_hidden_states=text).sample
    torch.testing.assert_close(ours, per_token, rtol=0, atol=1e-5)


def test_a_transfer_runs_on_the_ti2v_files(backbone22):
    latents, _ = pipeline.encode_reference(backbone22, moving_square_frames(17, 32, 32), 0, 0)
    assert latents.samples.shape == (1, 48, 5, 2, 2)
    trained = pipeline.train_adapter(backbone22, latents, "a red square is moving right", kind="lora", steps=1)
    noise = pipeline.make_noise(pipeline.invert_reference(backbone22, latents, steps=2), "blend", seed=1)
    generated = pipeline.generate(backbone22, noise, "a blue circle", steps=2, cfg=3.0,
                                  adapters=((trained.adapter, 1.0),))
    frames = pipeline.decode(backbone22, generated)
    assert frames.shape == (17, 32, 32, 3) and torch.isfinite(frames).all()


def test_the_shipped_wan22_vae_config_is_the_published_vae():
    """At real size on the meta device: the layout the pack's converter reads is the model's, with the published
    settings (Wan 2.2's ``Wan2_2_VAE``: z_dim 48, encoder width 160, decoder 256; ``wan_ti2v_5B.py``
    ``vae_stride`` (4, 16, 16)) and Wan 2.2's own 48 latent means and stds (the same in Wan 2.2's ``vae2_2.py``,
    diffusers' ``convert_wan_to_diffusers.py`` and ComfyUI's ``latent_formats.Wan22``)."""
    from diffusers import AutoencoderKLWan

    from motion_core.backbones.wan_files import wan22_vae_to_diffusers

    with torch.device("meta"):
        vae = AutoencoderKLWan.from_config(AutoencoderKLWan.load_config(WAN_CONFIGS / "ti2v-5b" / "vae"))
    assert shapes(wan22_vae_to_diffusers(vae_to_original(vae))) == shapes(vae.state_dict())
    config = vae.config
    assert (config.z_dim, config.base_dim, config.decoder_base_dim, config.patch_size) == (48, 160, 256, 2)
    assert (config.scale_factor_temporal, config.scale_factor_spatial, vae.spatial_compression_ratio) == (4, 16, 16)
    assert len(config.latents_mean) == len(config.latents_std) == 48
    assert config.latents_mean[:2] == [-0.2289, -0.0052] and config.latents_std[-2:] == [0.7468, 0.7744]


def test_a_vae_of_the_other_wan_generation_is_refused_by_name(written, written22, tmp_path):
    """Each transformer takes its own VAE: TI2V-5B the Wan 2.2 VAE, every other one the Wan 2.1 VAE (with the
    shipped configs at real size, and with a configs part)."""
    ti2v = write_header_only_transformer(tmp_path / "wan2.2_ti2v_5B_fp16.safetensors", 3072, 30, channels=48)
    t2v = write_header_only_transformer(tmp_path / "wan2.1_t2v_1.3B_fp16.safetensors", 1536, 30)
    vae21, vae22 = written["files"]["vae"], written22["files"]["vae"]
    text = written["files"]["text_encoder"]
    with pytest.raises(InputError, match=r"^vae: 'tiny-wan-vae.safetensors' is the Wan 2.1 VAE \(16 latent channels\); "
                                         r"Wan 2.2 TI2V 5B takes the Wan 2.2 VAE \(48\): choose wan2.2_vae.safetensors "
                                         r"\(Comfy-Org/Wan_2.2_ComfyUI_Repackaged, split_files/vae\)$"):
        check_model(ti2v, parts={"vae": vae21, "text_encoder": text})
    with pytest.raises(InputError, match=r"^vae: 'tiny-wan22-vae.safetensors' is the Wan 2.2 VAE \(48 latent "
                                         r"channels\); Wan 2.1 T2V 1.3B takes the Wan 2.1 VAE \(16\): choose "
                                         r"wan_2.1_vae.safetensors"):
        check_model(t2v, parts={"vae": vae22, "text_encoder": text})
    with pytest.raises(InputError, match=r"^vae: 'tiny-wan22-vae.safetensors' is the Wan 2.2 VAE .* the Wan 2.1 VAE"):
        load(written, vae=vae22)
    with pytest.raises(InputError, match=r"^vae: 'tiny-wan-vae.safetensors' is the Wan 2.1 VAE .* the Wan 2.2 VAE"):
        load(written22, vae=vae21)
    check_model(ti2v, parts={"vae": vae22, "text_encoder": text})  # the right pair passes (headers only)


# --- fp8 files: dequantised on load -----------------------------------------------------------------

FP8_LAYOUTS = ("fp8_e4m3fn", "fp8_e5m2", "fp8_scaled")


@pytest.fixture(scope="module")
def fp8_files(written, tmp_path_factory):
    """The tiny models written as ComfyUI's fp8 files, by layout: the transformer, the text encoder and (plain
    fp8 only; ComfyUI scales linear layers, the VAE has none) the VAE. The scaled transformer keeps its
    tensors (and the marker) under ``model.diffusion_model.``, as some files do."""
    root, files = tmp_path_factory.mktemp("wan-fp8"), {}
    transformer, text_encoder = written["transformer"], written["text_encoder"]
    comfy_text = umt5_to_comfy(text_encoder, written["spiece"])
    for layout in FP8_LAYOUTS:
        fp8 = torch.float8_e5m2 if layout == "fp8_e5m2" else torch.float8_e4m3fn
        if layout == "fp8_scaled":
            prefix = "model.diffusion_model."
            model = as_fp8(transformer_to_original(transformer, prefix), fp8, prefix=prefix,
                           scaled=linear_weights(transformer, lambda name: prefix + original_name(name)))
            text = as_fp8(comfy_text, fp8, scaled=linear_weights(text_encoder))
            vae = None
        else:
            model, text = as_fp8(transformer_to_original(transformer), fp8), as_fp8(comfy_text, fp8)
            vae = _save(root / f"tiny-wan-vae_{layout}.safetensors", as_fp8(vae_to_original(written["vae"]), fp8))
        files[layout] = {"model": _save(root / f"tiny-wan_{layout}.safetensors", model), "vae": vae,
                         "text_encoder": _save(root / f"tiny-umt5_{layout}.safetensors", text)}
    return files


def without_prefix(state: dict[str, torch.Tensor], prefix: str = "model.diffusion_model.") -> dict[str, torch.Tensor]:
    return {name.removeprefix(prefix): tensor for name, tensor in state.items()}


def test_the_fp8_files_are_what_users_download(fp8_files):
    """As ComfyUI's files: fp8 tensors; the scaled ones with one fp32 scale per linear layer and the marker."""
    from safetensors import safe_open

    with safe_open(fp8_files["fp8_scaled"]["model"], "pt") as handle:
        names = set(handle.keys())
        assert handle.get_slice("model.diffusion_model.blocks.0.self_attn.q.weight").get_dtype() == "F8_E4M3"
        assert handle.get_slice("model.diffusion_model.blocks.0.self_attn.q.scale_weight").get_dtype() == "F32"
        assert handle.get_slice("model.diffusion_model.patch_embedding.weight").get_dtype() == "F32"  # a Conv3d
    assert "model.diffusion_model.scaled_fp8" in names and "model.diffusion_model.blocks.1.ffn.2.scale_input" in names
    with safe_open(fp8_files["fp8_scaled"]["text_encoder"], "pt") as handle:
        names = set(handle.keys())
        assert "scaled_fp8" in names and "encoder.block.0.layer.1.DenseReluDense.wo.scale_weight" in names
        assert handle.get_slice("shared.weight").get_dtype() == "F32"  # an embedding: not scaled
    with safe_open(fp8_files["fp8_e5m2"]["model"], "pt") as handle:
        assert handle.get_slice("blocks.0.self_attn.q.weight").get_dtype() == "F8_E5M2"


@pytest.mark.parametrize("layout", FP8_LAYOUTS)
def test_fp8_files_load_dequantised_and_compute_what_the_full_precision_files_do(written, backbone, fp8_files, layout):
    """Each weight is its dequantised value exactly (``W8 * scale_weight``, or the fp8 value upcast); the outputs
    are the full-precision files' up to fp8 rounding."""
    files = fp8_files[layout]
    loaded = load(written, model=files["model"], text_encoder=files["text_encoder"],
                  vae=files["vae"] or written["files"]["vae"])
    want = without_prefix(dequantised_file(files["model"]))
    got = transformer_to_original(loaded.transformer)
    assert set(got) == set(want)
    for name in want:
        assert torch.equal(got[name], want[name]), name
    want = dequantised_file(files["text_encoder"])
    got = {k: v for k, v in umt5_to_comfy(loaded.text_encoder, written["spiece"]).items() if k != "spiece_model"}
    assert set(got) == set(want) and all(torch.equal(got[name], want[name]) for name in want)
    if files["vae"] is not None:
        want, got = dequantised_file(files["vae"]), vae_to_original(loaded.vae)
        assert set(got) == set(want) and all(torch.equal(got[name], want[name]) for name in want)
    query = loaded.transformer.blocks[0].attn1.to_q.weight
    assert not torch.equal(query, backbone.transformer.blocks[0].attn1.to_q.weight), "fp8 values, not the originals"

    gen = torch.Generator().manual_seed(2)
    x, text = torch.randn(2, 16, 3, 4, 4, generator=gen), torch.randn(2, 7, TINY_WAN_TEXT_DIM, generator=gen)
    with torch.no_grad():
        ours = loaded.call_denoiser(loaded.transformer, x, torch.tensor([300.0, 900.0]), text)
        full = backbone.call_denoiser(backbone.transformer, x, torch.tensor([300.0, 900.0]), text)
        prompts = [model.encode_prompt(["a red square is moving left"]) for model in (loaded, backbone)]
    for fp8, reference in ((ours, full), prompts):
        error = float((fp8 - reference).norm() / reference.norm())
        assert 0 < error < FP8_ERROR[layout], (layout, error)


def test_fp8_files_load_in_the_dtypes_and_to_the_values_of_the_compute_precision(written, fp8_files):
    """At fp16 each weight is its dequantised value rounded once to the dtype the full-precision file gives it
    (Wan's fp32 modules and UMT5's ``wo`` stay fp32: there the dequantised value itself)."""
    from motion_core.backbones.wan_files import WanFileConfigs

    configs = WanFileConfigs.in_folder(written["files"]["configs"], "tiny")
    files = fp8_files["fp8_scaled"]
    loaded = {"transformer": load_transformer(files["model"], configs, torch.float16),
              "text_encoder": load_text_encoder(files["text_encoder"], configs, torch.float16)[0]}
    full = {"transformer": load_transformer(written["files"]["model"], configs, torch.float16),
            "text_encoder": load_text_encoder(written["files"]["text_encoder"], configs, torch.float16)[0]}
    originals = {"transformer": transformer_to_original,
                 "text_encoder": lambda model: umt5_to_comfy(model, written["spiece"])}
    wanted = {"transformer": without_prefix(dequantised_file(files["model"])),
              "text_encoder": dequantised_file(files["text_encoder"])}
    for part, model in loaded.items():
        got, reference = originals[part](model), originals[part](full[part])
        assert {k: v.dtype for k, v in got.items()} == {k: v.dtype for k, v in reference.items()}, part
        for name, want in wanted[part].items():
            assert torch.equal(got[name], want.to(got[name].dtype)), (part, name)
    assert loaded["text_encoder"].encoder.block[0].layer[1].DenseReluDense.wo.weight.dtype == torch.float32
    assert loaded["transformer"].condition_embedder.time_embedder.linear_1.weight.dtype == torch.float32
