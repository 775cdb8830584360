"""Write diffusers / transformers Wan models as the single files ComfyUI users hold: the transformer in the
original Wan keys (``models/diffusion_models``), the Wan 2.1 or 2.2 VAE in its original keys (``models/vae``),
the UMT5 encoder in ComfyUI's T5 keys with its SentencePiece model as a ``uint8`` tensor
``spiece_model`` (``models/text_encoders``).

The key layouts are those of ComfyUI's own modules (``comfy/ldm/wan/model.py``, ``comfy/ldm/wan/vae.py``,
``comfy/ldm/wan/vae2_2.py``, ``comfy/text_encoders/t5.py``), which are the original Wan code's; these writers
are the inverse of diffusers' converters (``diffusers.loaders.single_file_utils``; the pack's
``wan22_vae_to_diffusers`` for the Wan 2.2 VAE, which diffusers does not convert). ``tests/unit/test_wan_files.py``
proves them through those converters, ``tests/nodes/test_wan_nodes.py`` and ``tests/nodes/test_wan22_vae_in_comfy.py``
through ComfyUI's own modules.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import torch

from motion_core.backbones.wan_files import RESIDUAL_LAYERS
from motion_core.testing import TINY_WAN_WORDS, tiny_umt5, tiny_wan22_vae, tiny_wan_transformer, tiny_wan_vae
from support.original_files import _made, _save

TRANSFORMER_NAMES = (
    (".condition_embedder.time_embedder.linear_1.", ".time_embedding.0."),
    (".condition_embedder.time_embedder.linear_2.", ".time_embedding.2."),
    (".condition_embedder.text_embedder.linear_1.", ".text_embedding.0."),
    (".condition_embedder.text_embedder.linear_2.", ".text_embedding.2."),
    (".condition_embedder.time_proj.", ".time_projection.1."),
    (".proj_out.", ".head.head."),
    (".attn1.", ".self_attn."), (".attn2.", ".cross_attn."),
    (".to_out.0.", ".o."), (".to_q.", ".q."), (".to_k.", ".k."), (".to_v.", ".v."),
    (".ffn.net.0.proj.", ".ffn.0."), (".ffn.net.2.", ".ffn.2."),
    # diffusers' norm2 is the cross-attention norm (original norm3); its norm3 (the FFN's) has no weights
    (".norm2.", ".norm3."),
)
"""diffusers ``WanTransformer3DModel`` name part -> original Wan name part."""

RESIDUAL = {f"{new}.": f"{old}." for old, new in RESIDUAL_LAYERS.items()}
"""diffusers ``WanResidualBlock`` layer -> original ``ResidualBlock`` layer (``nn.Sequential`` indices)."""

VAE_NAMES = {"encoder.conv_in": "encoder.conv1", "decoder.conv_in": "decoder.conv1", "quant_conv": "conv1",
             "post_quant_conv": "conv2", "encoder.norm_out.gamma": "encoder.head.0.gamma",
             "decoder.norm_out.gamma": "decoder.head.0.gamma", "encoder.conv_out": "encoder.head.2",
             "decoder.conv_out": "decoder.head.2"}


def transformer_to_original(transformer, prefix: str = "") -> dict[str, torch.Tensor]:
    """A diffusers ``WanTransformer3DModel``'s tensors under the original Wan keys (``blocks.0.self_attn.q.weight``,
    ``head.modulation``…), each under ``prefix`` (Comfy-Org's files: none; some: ``model.diffusion_model.``)."""
    return {prefix + original_name(name): tensor.clone() for name, tensor in transformer.state_dict().items()}


def original_name(name: str) -> str:
    """A ``WanTransformer3DModel`` tensor's original Wan name."""
    if name == "scale_shift_table":
        return "head.modulation"
    if name.endswith(".scale_shift_table"):
        return name[: -len("scale_shift_table")] + "modulation"
    name = "." + name
    for new, old in TRANSFORMER_NAMES:
        name = name.replace(new, old)
    return name[1:]


def vae_to_original(vae) -> dict[str, torch.Tensor]:
    """A diffusers ``AutoencoderKLWan``'s tensors under the original Wan VAE keys: middles as ``middle.0/1/2``,
    heads as ``head.0/2``; in the Wan 2.1 layout encoder levels flat in ``encoder.downsamples``, decoder levels
    flat in ``decoder.upsamples`` (``num_res_blocks + 1`` residual blocks then the upsampler per level); in the
    Wan 2.2 layout (``is_residual``) each level one module of its own, ``encoder.downsamples.<level>.downsamples.<i>``
    (``num_res_blocks`` residual blocks, then the downsampler) and ``decoder.upsamples.<level>.upsamples.<i>``
    (``num_res_blocks + 1``, then the upsampler)."""
    per_level, nested = vae.config.num_res_blocks + 2, bool(vae.config.is_residual)
    out = {}
    for name, tensor in vae.state_dict().items():
        layer, _, kind = name.rpartition(".")
        if layer in VAE_NAMES or name in VAE_NAMES:
            original = VAE_NAMES[name] if name in VAE_NAMES else f"{VAE_NAMES[layer]}.{kind}"
        elif nested and (match := re.fullmatch(
                r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(?:resnets\.(\d+)|\2sampler)\.(.+)", name)):
            part, way, level, index, rest = match.groups()
            slot = vae.config.num_res_blocks + (way == "up") if index is None else index
            original = f"{part}.{way}samples.{level}.{way}samples.{slot}.{rest if index is None else _residual(rest)}"
        elif match := re.fullmatch(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d)\.(.+)", name):
            part, group, index, rest = match.groups()
            slot = 1 if group == "attentions" else 2 * int(index)
            original = f"{part}.middle.{slot}.{_residual(rest) if group == 'resnets' else rest}"
        elif match := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.(.+)", name):
            index, rest = match.groups()
            original = f"encoder.downsamples.{index}.{_residual(rest)}"
        elif match := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", name):
            level, index, rest = match.groups()
            original = f"decoder.upsamples.{int(level) * per_level + int(index)}.{_residual(rest)}"
        elif match := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.+)", name):
            level, rest = match.groups()
            original = f"decoder.upsamples.{int(level) * per_level + per_level - 1}.{rest}"
        else:
            raise KeyError(f"no original Wan VAE name for {name}")
        out[original] = tensor.clone()
    return out


def _residual(rest: str) -> str:
    for new, old in RESIDUAL.items():
        if rest.startswith(new):
            return old + rest[len(new):]
    return rest  # resample.1.*, time_conv.*: the same in both layouts


def umt5_to_comfy(text_encoder, spiece_model: bytes) -> dict[str, torch.Tensor]:
    """A transformers ``UMT5EncoderModel``'s tensors as ComfyUI's UMT5 files hold them: the same T5 names
    less the encoder's tied embedding, plus the tokenizer as ``spiece_model`` (``uint8``)."""
    out = {name: tensor.clone() for name, tensor in text_encoder.state_dict().items()
           if name != "encoder.embed_tokens.weight"}
    out["spiece_model"] = torch.tensor(list(spiece_model), dtype=torch.uint8)  # as ComfyUI serialises it
    return out


def linear_weights(model, rename=lambda name: name) -> set[str]:
    """The names (``rename``d, e.g. by :func:`original_name`) of ``model``'s ``nn.Linear`` weights: the layers
    ComfyUI's ``scaled_fp8_ops`` scales (its ``Linear`` only; convolutions, norms and embeddings are not)."""
    return {rename(f"{name}.weight") for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}


def as_fp8(state: dict[str, torch.Tensor], fp8: torch.dtype = torch.float8_e4m3fn, scaled=(),
           prefix: str = "") -> dict[str, torch.Tensor]:
    """A ComfyUI-layout state dict as the fp8 files hold it. With ``scaled`` (the names of the linear
    weights, :func:`linear_weights`): ComfyUI's scaled-fp8 layout, each of those weights quantised per
    tensor as ComfyUI's fp8 layout does (``scale = max|W| / max fp8``, ``W8 = fp8(W / scale)``) with its
    ``<layer>.scale_weight`` (fp32, 0-d) and a ``<layer>.scale_input`` of 1, and its bias in fp8 unscaled (0.3.75's
    ``scaled_fp8_ops`` builds the whole layer in fp8, so its files hold biases so), the rest unchanged, and the
    ``scaled_fp8`` marker (an empty fp8 tensor, as ComfyUI saves it) under ``prefix``. Without: every
    floating tensor of two or more dimensions stored as ``fp8`` (``…_fp8_e4m3fn`` files)."""
    biases = {name[: -len("weight")] + "bias" for name in scaled}
    out = {}
    for name, tensor in state.items():
        if name in scaled:
            layer = name[: -len(".weight")]
            scale = tensor.abs().amax().float() / torch.finfo(fp8).max
            out[name] = (tensor.float() / scale).to(fp8)
            out[f"{layer}.scale_weight"], out[f"{layer}.scale_input"] = scale, torch.ones(())
        elif name in biases or (not scaled and tensor.is_floating_point() and tensor.ndim >= 2):
            out[name] = tensor.to(fp8)
        else:
            out[name] = tensor
    if scaled:
        out[prefix + "scaled_fp8"] = torch.empty(0, dtype=fp8)
    return out


def dequantised_file(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of an fp8 file as their fp32 values: ``W8 * scale_weight`` for scaled weights, every other
    tensor as it is (fp8 upcast); without ComfyUI's markers and scales (the expectation, computed here)."""
    from safetensors.torch import load_file

    state = load_file(path)
    out = {}
    for name, tensor in state.items():
        if name.endswith(("scaled_fp8", ".scale_weight", ".scale_input")) or name == "spiece_model":
            continue
        scale = state.get(name[: -len("weight")] + "scale_weight") if name.endswith(".weight") else None
        out[name] = tensor.float() * scale if scale is not None else tensor.float()
    return out


def train_sentencepiece(words=TINY_WAN_WORDS, vocab_size: int = 60) -> bytes:
    """A SentencePiece unigram model of toy sentences, trained offline, as UMT5's is set up: pad 0,
    eos 1, unk 2, no bos. Returns the serialised model (what ComfyUI stores in ``spiece_model``)."""
    import sentencepiece

    colours, shapes, ways = words[2:6], words[6:10], words[11:15]
    sentences = [f"a {colour} {shape} is moving {way}" for colour in colours for shape in shapes for way in ways]
    sentences += ["the shape is turning", "a star orbit", "a triangle is turning left"]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, character_coverage=1.0, num_threads=1,
        minloglevel=2)
    return model.getvalue()


def write_wan_files(root: Path, seed: int = 0, prefix: str = "", wan22: bool = False) -> dict:
    """Tiny random Wan models written as ComfyUI's files under ``root``: ``diffusion_models/tiny-wan.safetensors``,
    ``vae/tiny-wan-vae.safetensors``, ``text_encoders/tiny-umt5.safetensors`` and the ``configs`` part their
    sizes need (``configs/``; the scheduler: UniPC, flow shift 3). With ``wan22``: TI2V-5B's kind, the VAE in
    the Wan 2.2 layout (:func:`~motion_core.testing.tiny_wan22_vae`, 48 latent channels, 16x) and a transformer
    of 48 channels, named ``tiny-wan22…``. Returns the models, the SentencePiece model and the paths."""
    root, stem = Path(root), "tiny-wan22" if wan22 else "tiny-wan"
    spiece = train_sentencepiece()
    import sentencepiece

    vocab = sentencepiece.SentencePieceProcessor(model_proto=spiece).get_piece_size()
    vae = tiny_wan22_vae(seed) if wan22 else tiny_wan_vae(seed)
    transformer = tiny_wan_transformer(seed, vae.config.z_dim)
    torch.manual_seed(seed)
    text_encoder = tiny_umt5(vocab + 4)  # a little larger than the tokenizer, as UMT5-XXL's (256384 > 256300)
    files = {
        "model": _save(root / "diffusion_models" / f"{stem}.safetensors", transformer_to_original(transformer, prefix)),
        "vae": _save(root / "vae" / f"{stem}-vae.safetensors", vae_to_original(vae)),
        "text_encoder": _save(root / "text_encoders" / "tiny-umt5.safetensors", umt5_to_comfy(text_encoder, spiece)),
        "configs": write_wan_configs(root / "configs", transformer, vae, text_encoder),
    }
    return {"transformer": transformer, "vae": vae, "text_encoder": text_encoder, "spiece": spiece, "files": files}


def write_wan_configs(folder: Path, transformer, vae, text_encoder, flow_shift: float = 3.0) -> Path:
    """The ``configs`` part for non-standard sizes: each model's config and a flow scheduler's."""
    from diffusers import UniPCMultistepScheduler

    folder = Path(folder)
    transformer.save_config(folder / "transformer")
    vae.save_config(folder / "vae")
    text_encoder.config.to_json_file(_made(folder / "text_encoder") / "config.json")
    UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                            flow_shift=flow_shift).save_config(folder / "scheduler")
    return folder


def write_header_only_transformer(path: Path, width: int, blocks: int, channels: int = 16, extra=(),
                                  dtype: torch.dtype = torch.float16) -> Path:
    """A file with the tensors a Wan transformer's architecture is told from, at real size, and nothing
    else (``patch_embedding``, ``head.modulation``, one tensor per block, ``extra`` names): for the checks
    that read headers only, at the sizes of the published models, in kilobytes."""
    state = {"patch_embedding.weight": torch.zeros(width, channels, 1, 2, 2, dtype=dtype),
             "head.modulation": torch.zeros(1, 2, width, dtype=dtype)}
    state.update({f"blocks.{i}.norm3.bias": torch.zeros(1, dtype=dtype) for i in range(blocks)})
    state.update({name: torch.zeros(1, dtype=dtype) for name in extra})
    return _save(path, state)

