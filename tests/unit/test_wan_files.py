"""Wan from ComfyUI's own single files: a transformer (models/diffusion_models), the Wan 2.1 VAE (models/vae)
and the UMT5 text encoder carrying its SentencePiece tokenizer (models/text_encoders), each written by the
tests in its original key layout, loaded offline through the same code users' files go through, give the
models they were written from; the architecture is told from the header; what the pack does not load is
refused by name."""

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
from support.wan_files import (transformer_to_original, umt5_to_comfy, vae_to_original, write_header_only_transformer,
                               write_wan_files)

FP32 = ModelOptions(dtype="fp32", device="cpu")


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


@pytest.mark.parametrize("variant, name", [("t2v-1.3b", "Wan 2.1 T2V 1.3B"), ("t2v-14b", "Wan 2.1 T2V 14B")])
def test_the_shipped_config_is_picked_from_the_published_tensor_shapes(variant, name):
    """At real size, on the meta device: the original-layout names and shapes of each published text-to-video
    transformer pick its shipped config."""
    state = transformer_to_original(meta_transformer(variant))
    configs = transformer_configs(header(state), "wan.safetensors")
    assert configs.transformer == WAN_CONFIGS / variant / "transformer" and configs.variant.startswith(name)
    assert configs.vae == WAN_CONFIGS / "vae" and configs.text_encoder == WAN_CONFIGS / "text_encoder"
    prefixed = transformer_configs(header({"model.diffusion_model." + k: v for k, v in state.items()}), "wan.safetensors")
    assert prefixed == configs


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
    (3072, 30, 48, (), "F16", "is Wan 2.2 TI2V 5B, which needs the 48-channel Wan 2.2 VAE; .* diffusers folder"),
    (1536, 20, 16, (), "F16", "has 20 blocks 1536 wide; Wan 2.1 T2V 1.3B has 30 blocks 1536 wide"),
    (5120, 40, 36, (), "F16", "takes 36 latent channels .* image-to-video or control model"),
    (5120, 40, 36, ("img_emb.proj.0.weight",), "F16", "is a Wan 2.1 image-to-video"),
    (1536, 30, 16, ("vace_blocks.0.after_proj.bias",), "F16", "is a Wan VACE model"),
    (5120, 40, 36, ("motion_encoder.dec.direction.weight",), "BF16", "is a Wan 2.2 Animate model"),
    (1536, 30, 16, (), "F8_E4M3", r"holds fp8 weights, .*download the fp16 or bf16 file instead: wan2.1_t2v_1.3B_fp16"),
    (1536, 30, 16, ("scaled_fp8",), "F16", r"holds fp8 weights \(scaled_fp8\)"),
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
    fp8 = _save(tmp_path / "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                {**umt5_to_comfy(written["text_encoder"], written["spiece"]), "scaled_fp8": torch.zeros(0)})
    with pytest.raises(InputError, match=r"^text_encoder: 'umt5_xxl_fp8_e4m3fn_scaled.safetensors' holds fp8 weights "
                                         r"\(scaled_fp8\), .* umt5_xxl_fp16.safetensors"):
        load(written, text_encoder=fp8)
    wan22 = _save(tmp_path / "wan2.2_vae.safetensors", {"decoder.middle.0.residual.0.gamma": torch.zeros(1),
                                                        "decoder.upsamples.0.upsamples.0.residual.2.weight":
                                                            torch.zeros(1)})
    with pytest.raises(InputError, match=r"^vae: 'wan2.2_vae.safetensors' is the Wan 2.2 VAE \(48 latent channels\)"):
        load(written, vae=wan22)
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
