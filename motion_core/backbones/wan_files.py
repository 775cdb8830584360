"""Wan from the single files ComfyUI users hold, offline, with the configs shipped in the pack.

The three files (Comfy-Org's repackaged downloads; ComfyUI's own key layouts):

- the transformer, ``models/diffusion_models`` (``wan2.1_t2v_1.3B_fp16.safetensors``…): the original Wan
  keys (``blocks.0.self_attn.q.weight``, ``head.modulation``), possibly under ``model.diffusion_model.``;
- the VAE, ``models/vae``: the Wan 2.1 VAE (``wan_2.1_vae.safetensors``, 16 latent channels) or, for Wan 2.2
  TI2V-5B, the Wan 2.2 VAE (``wan2.2_vae.safetensors``, 48), each in its original keys
  (``decoder.middle.0.residual.0.gamma``…; the Wan 2.2 VAE's levels nested:
  ``decoder.upsamples.0.upsamples.0.residual.2.weight``, see :func:`wan22_vae_to_diffusers`);
- the text encoder, ``models/text_encoders`` (``umt5_xxl_fp16.safetensors``): UMT5-XXL's encoder under the
  T5 names transformers uses too (``shared.weight``, ``encoder.block.0.layer.0.SelfAttention.q.weight``),
  with the SentencePiece tokenizer as a ``uint8`` tensor ``spiece_model`` (ComfyUI's ``comfy/sd.py``
  hands it to ``comfy/text_encoders/spiece_tokenizer.py``; so does this module, to
  :class:`SentencePieceTokenizer`).

What each file is, and which architecture, is read from its safetensors header (names, dtypes,
shapes) before any weight: the transformer's width picks the shipped config (1536: Wan 2.1 T2V 1.3B,
5120: T2V 14B and each Wan 2.2 A14B expert, 3072: Wan 2.2 TI2V-5B; ``configs/wan``), its block count is
checked against it; the VAE file must be the VAE that config names (told by its layout and latent
channels). Weights are converted by diffusers' own converters (``diffusers.loaders.single_file_utils``;
TI2V-5B's transformer has the T2V keys, which diffusers' converter renames; diffusers converts no Wan 2.2
VAE file, so :func:`wan22_vae_to_diffusers` does) and
loaded into models built on the ``meta`` device (no random initialisation, no second copy), with the
dtypes ``from_pretrained`` gives a diffusers folder (Wan's ``_keep_in_fp32_modules`` stay fp32).

fp8 files (``…_fp8_e4m3fn``, ``…_fp8_scaled``, ``umt5_xxl_fp8_e4m3fn_scaled``) load dequantised to the
model's dtype (:mod:`.fp8`): the memory of fp16/bf16 weights. Refused, by name: image-to-video, VACE and
Animate transformers (other inputs than text-to-video; TI2V-5B is text-to-video when given no image, as it
is here); a VAE of the other Wan generation than the transformer's; other quantised layouts (ComfyUI's
newer ``comfy_quant``, int8, fp4, GGUF).
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError
from .fp8 import check_quantisation, dequantised, take_scales
from .single_files import TensorInfo, read_state_dict, safetensors_header

WAN_CONFIGS = Path(__file__).parent / "configs" / "wan"
"""The published Wan architectures' settings shipped with the pack (no weights)."""
PREFIX = "model.diffusion_model."
WIDTHS = {1536: "t2v-1.3b", 5120: "t2v-14b", 3072: "ti2v-5b"}
"""Transformer width (``patch_embedding`` output channels) -> shipped config folder."""
VARIANT_NAMES = {"t2v-1.3b": "Wan 2.1 T2V 1.3B", "t2v-14b": "Wan 2.1 T2V 14B (or a Wan 2.2 T2V A14B expert)",
                 "ti2v-5b": "Wan 2.2 TI2V 5B"}
NOT_TEXT_TO_VIDEO = (("vace_blocks.", "a Wan VACE model"), ("motion_encoder.", "a Wan 2.2 Animate model"),
                     ("face_adapter.", "a Wan 2.2 Animate model"),
                     ("img_emb.", "a Wan 2.1 image-to-video (or first-last-frame) model"))
"""Tensor-name marks of the Wan variants that take other inputs than a prompt, and what they are."""
DOWNLOADS = {
    "model_name": "wan2.1_t2v_1.3B_fp16.safetensors or wan2.1_t2v_14B_fp16.safetensors (Comfy-Org/"
                  "Wan_2.1_ComfyUI_repackaged, split_files/diffusion_models), or wan2.2_ti2v_5B_fp16.safetensors "
                  "(Comfy-Org/Wan_2.2_ComfyUI_Repackaged, split_files/diffusion_models)",
    "vae": "wan_2.1_vae.safetensors (Comfy-Org/Wan_2.1_ComfyUI_repackaged, split_files/vae)",
    "vae-2.2": "wan2.2_vae.safetensors (Comfy-Org/Wan_2.2_ComfyUI_Repackaged, split_files/vae)",
    "text_encoder": "umt5_xxl_fp16.safetensors (Comfy-Org/Wan_2.1_ComfyUI_repackaged, split_files/text_encoders)",
    "low_noise_model": "wan2.2_t2v_low_noise_14B_fp16.safetensors beside wan2.2_t2v_high_noise_14B_fp16.safetensors "
                       "(Comfy-Org/Wan_2.2_ComfyUI_Repackaged, split_files/diffusion_models)",
}
"""What to download, by input, for messages."""
VAE_MARK = "decoder.middle.0.residual.0.gamma"
WAN22_VAE_MARK = "decoder.upsamples.0.upsamples.0.residual.2.weight"
"""The Wan 2.2 VAE's nested up blocks (how ComfyUI's ``comfy/sd.py`` tells it from the Wan 2.1 VAE)."""
VAE_GENERATIONS = {False: ("Wan 2.1 VAE", "vae"), True: ("Wan 2.2 VAE", "vae-2.2")}
"""By the layout (``is_residual``: the Wan 2.2 VAE's residual levels): the VAE's name and its download."""
TEXT_MARKS = ("shared.weight", "encoder.block.0.layer.0.SelfAttention.q.weight")
SPIECE = "spiece_model"


# --- what a file is, from its header ------------------------------------------------------------------

def transformer_prefix(header) -> str | None:
    """``""`` or ``"model.diffusion_model."``: where a Wan transformer's tensors are in a file; None if it
    holds none (tested on ``head.modulation``, as diffusers' and ComfyUI's detection do)."""
    for prefix in ("", PREFIX):
        if f"{prefix}head.modulation" in header and f"{prefix}patch_embedding.weight" in header:
            return prefix
    return None


@dataclass(frozen=True)
class WanFileConfigs:
    """The diffusers config folders a single-file Wan model loads with (``config.json`` in each;
    ``scheduler_config.json`` in ``scheduler``) and what the transformer is (``variant``, for messages)."""

    transformer: Path
    vae: Path
    text_encoder: Path
    scheduler: Path
    variant: str

    @classmethod
    def in_folder(cls, folder: Path, variant: str) -> WanFileConfigs:
        """The ``configs`` part: one folder with ``transformer``, ``vae``, ``text_encoder``, ``scheduler``."""
        folder = Path(folder)
        missing = [part for part in ("transformer", "vae", "text_encoder", "scheduler") if not (folder / part).is_dir()]
        if missing:
            raise InputError("configs", f"{folder.name!r} lacks the config subfolders {', '.join(missing)}")
        return cls(folder / "transformer", folder / "vae", folder / "text_encoder", folder / "scheduler", variant)

    @classmethod
    def shipped(cls, variant: str) -> WanFileConfigs:
        """A published variant's configs: its own folder's parts (``ti2v-5b``: the Wan 2.2 VAE, flow shift 5),
        else the shared ones (the Wan 2.1 VAE, UMT5-XXL, flow shift 3)."""
        def part(name: str) -> Path:
            own = WAN_CONFIGS / variant / name
            return own if own.is_dir() else WAN_CONFIGS / name

        return cls(part("transformer"), part("vae"), part("text_encoder"), part("scheduler"), VARIANT_NAMES[variant])

    def transformer_config(self) -> dict:
        return json.loads((self.transformer / "config.json").read_text())


def transformer_configs(header: dict[str, TensorInfo], name: str, configs: Path | None = None,
                        input_name: str = "model") -> WanFileConfigs:
    """The configs a Wan transformer file loads with, told from its tensor shapes (``configs``: a
    folder replacing the shipped ones, e.g. for tiny test models); :class:`InputError` for a file that
    is no text-to-video Wan transformer this pack loads."""
    prefix = transformer_prefix(header)
    if prefix is None:
        raise InputError(input_name, f"{name!r} is not a Wan transformer (it has no 'head.modulation' tensor); "
                                     f"choose {DOWNLOADS['model_name']}")
    check_quantisation(header, name, input_name, DOWNLOADS["model_name"])
    for mark, what in NOT_TEXT_TO_VIDEO:
        if any(key.startswith(prefix + mark) for key in header):
            raise InputError(input_name, f"{name!r} is {what}; this pack transfers motion with text-to-video Wan "
                                         f"models: choose {DOWNLOADS['model_name']}")
    width, channels = header[f"{prefix}patch_embedding.weight"].shape[:2]
    blocks = 1 + max((int(key[len(prefix) + 7:].split(".")[0]) for key in header if key.startswith(prefix + "blocks.")),
                     default=-1)
    if configs is not None:
        found = WanFileConfigs.in_folder(configs, f"the transformer of {Path(configs).name!r}")
    elif width in WIDTHS:
        found = WanFileConfigs.shipped(WIDTHS[width])
    else:
        raise InputError(input_name, f"{name!r} is a Wan transformer {width} wide, which is none of the published "
                                     "text-to-video sizes (1536: 1.3B, 5120: 14B, 3072: TI2V-5B); choose "
                                     f"{DOWNLOADS['model_name']}")
    config = found.transformer_config()
    expected = (config["num_attention_heads"] * config["attention_head_dim"], config["num_layers"])
    if (width, blocks) != expected:
        raise InputError(input_name, f"{name!r} has {blocks} blocks {width} wide; {found.variant} has {expected[1]} "
                                     f"blocks {expected[0]} wide: the file is cut or of another architecture")
    if channels != config["in_channels"]:
        raise InputError(input_name, f"{name!r} takes {channels} latent channels where {found.variant} text-to-video "
                                     f"takes {config['in_channels']}: it is an image-to-video or control model; "
                                     f"choose {DOWNLOADS['model_name']}")
    return found


def vae_config(configs: WanFileConfigs) -> dict:
    return json.loads((configs.vae / "config.json").read_text())


def wanted_vae(configs: WanFileConfigs) -> tuple[str, str]:
    """The VAE a transformer's configs take: its name and what to download (``"Wan 2.2 VAE"``, ``wan2.2_vae…``)."""
    name, download = VAE_GENERATIONS[bool(vae_config(configs).get("is_residual"))]
    return name, DOWNLOADS[download]


def check_vae_file(path: Path, configs: WanFileConfigs, input_name: str = "vae") -> None:
    """Refuse a file that is not the VAE ``configs.vae`` describes (header only): the Wan 2.1 or the Wan 2.2
    VAE, told apart by the layout (:data:`WAN22_VAE_MARK`) and the latent channels (``decoder.conv1``'s inputs)."""
    header, name = safetensors_header(path, input_name), Path(path).name
    config, (wanted, download) = vae_config(configs), wanted_vae(configs)
    if VAE_MARK not in header:
        raise InputError(input_name, f"{name!r} is not a Wan VAE (it has no {VAE_MARK!r} tensor); choose {download}")
    check_quantisation(header, name, input_name, download)
    channels = header["decoder.conv1.weight"].shape[1] if "decoder.conv1.weight" in header else None
    found = VAE_GENERATIONS[WAN22_VAE_MARK in header][0]
    if found != wanted:
        raise InputError(input_name, f"{name!r} is the {found} ({channels} latent channels); {configs.variant} takes "
                                     f"the {wanted} ({config['z_dim']}): choose {download}")
    if channels != config["z_dim"]:
        raise InputError(input_name, f"{name!r} has {channels} latent channels; {configs.variant} takes "
                                     f"{config['z_dim']}")


def check_text_encoder_file(path: Path, input_name: str = "text_encoder") -> None:
    """Refuse a file that is not a UMT5 encoder in ComfyUI's layout with its tokenizer (header only)."""
    header, name = safetensors_header(path, input_name), Path(path).name
    if not all(mark in header for mark in TEXT_MARKS):
        raise InputError(input_name, f"{name!r} is not a UMT5 text encoder in ComfyUI's layout (it has no "
                                     f"{TEXT_MARKS[1]!r}); choose {DOWNLOADS['text_encoder']}")
    check_quantisation(header, name, input_name, DOWNLOADS["text_encoder"])
    if SPIECE not in header:
        raise InputError(input_name, f"{name!r} carries no tokenizer (no {SPIECE!r} tensor, which ComfyUI's own UMT5 "
                                     f"files have); choose {DOWNLOADS['text_encoder']}")


# --- loading -------------------------------------------------------------------------------------------

def _empty_weights():
    """Build a model's parameters on the ``meta`` device (buffers stay real), as ``from_pretrained`` does."""
    try:
        from accelerate import init_empty_weights
    except ImportError:  # without accelerate the model is built (and randomly initialised) on the CPU first
        return contextlib.nullcontext()
    return init_empty_weights()


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype, keep_fp32, scales: dict[str, torch.Tensor]) -> None:
    """Cast a state dict in place as ``from_pretrained`` does (``keep_fp32`` modules in fp32, every other
    floating tensor in ``dtype``), dequantising fp8 weights on the way (``scales``: of scaled-fp8 weights,
    by the weights' names; :func:`~.fp8.dequantised`), one tensor at a time."""
    for key in list(state):
        if state[key].is_floating_point():
            target = torch.float32 if any(m in key.split(".") for m in keep_fp32) else dtype
            state[key] = dequantised(state[key], scales.get(key), target)


def _into_model(model: torch.nn.Module, state: dict[str, torch.Tensor], dtype: torch.dtype, keep_fp32,
                name: str, input_name: str, what: str, scales: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Load a converted state dict whose names and shapes must be exactly the model's, cast by :func:`_cast`."""
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [key for key in set(expected) & set(state) if tuple(expected[key].shape) != tuple(state[key].shape)]
    if missing or unexpected or wrong:
        raise InputError(input_name, f"{name!r} does not fit {what}: {len(missing)} tensors missing (e.g. "
                                     f"{missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}), "
                                     f"{len(wrong)} of another shape (e.g. {sorted(wrong)[:2]})")
    _cast(state, dtype, keep_fp32, scales)
    model.load_state_dict(state, assign=True)
    return model.eval()


def _read_converted(path: Path, input_name: str, convert) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A file's tensors converted to diffusers' names by ``convert``, and its scaled-fp8 scales
    (:func:`~.fp8.take_scales`) under the names of their converted weights: diffusers' Wan converters only
    rename tensors, one name at a time, so the scales go through the same converter as their weights."""
    state = read_state_dict(path, input_name)
    scales = take_scales(state)
    return convert(state), convert(scales)


def load_transformer(path: Path, configs: WanFileConfigs, dtype: torch.dtype, input_name: str = "model"):
    """A ``WanTransformer3DModel`` from an original-layout file (checked by :func:`transformer_configs`)."""
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    state, scales = _read_converted(path, input_name, convert_wan_transformer_to_diffusers)
    with _empty_weights():
        model = WanTransformer3DModel.from_config(configs.transformer_config())
    return _into_model(model, state, dtype, WanTransformer3DModel._keep_in_fp32_modules or (), Path(path).name,
                       input_name, configs.variant, scales)


def load_vae(path: Path, configs: WanFileConfigs, input_name: str = "vae"):
    """An ``AutoencoderKLWan`` in fp32 (what Wan's pipeline runs its causal convolutions in): the Wan 2.1 VAE
    through diffusers' converter, the Wan 2.2 VAE (``is_residual`` in ``configs.vae``) through
    :func:`wan22_vae_to_diffusers`."""
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    config = vae_config(configs)
    residual = bool(config.get("is_residual"))
    convert = wan22_vae_to_diffusers if residual else convert_wan_vae_to_diffusers
    state, scales = _read_converted(path, input_name, convert)
    with _empty_weights():
        model = AutoencoderKLWan.from_config(config)
    return _into_model(model, state, torch.float32, (), Path(path).name, input_name,
                       f"the {VAE_GENERATIONS[residual][0]}", scales)


WAN22_VAE_NAMES = (
    # the levels: ``Down_ResidualBlock`` / ``Up_ResidualBlock`` hold their residual blocks then (all levels
    # but the last) one ``Resample`` in one ``nn.Sequential`` (``downsamples`` / ``upsamples``); diffusers
    # keeps them apart (``resnets``, ``downsampler`` / ``upsampler``); the shortcuts (``AvgDown3D``,
    # ``DupUp3D``) have no weights
    (r"^encoder\.downsamples\.(\d+)\.downsamples\.\d+\.(?=resample\.|time_conv\.)",
     r"encoder.down_blocks.\1.downsampler."),
    (r"^encoder\.downsamples\.(\d+)\.downsamples\.(\d+)\.", r"encoder.down_blocks.\1.resnets.\2."),
    (r"^decoder\.upsamples\.(\d+)\.upsamples\.\d+\.(?=resample\.|time_conv\.)",
     r"decoder.up_blocks.\1.upsampler."),
    (r"^decoder\.upsamples\.(\d+)\.upsamples\.(\d+)\.", r"decoder.up_blocks.\1.resnets.\2."),
    # the middles (residual, attention, residual) and heads (norm, SiLU, convolution) as in the Wan 2.1 VAE
    (r"^(encoder|decoder)\.middle\.0\.", r"\1.mid_block.resnets.0."),
    (r"^(encoder|decoder)\.middle\.1\.", r"\1.mid_block.attentions.0."),
    (r"^(encoder|decoder)\.middle\.2\.", r"\1.mid_block.resnets.1."),
    (r"^(encoder|decoder)\.head\.0\.", r"\1.norm_out."), (r"^(encoder|decoder)\.head\.2\.", r"\1.conv_out."),
    (r"^(encoder|decoder)\.conv1\.", r"\1.conv_in."),
    (r"^conv1\.", "quant_conv."), (r"^conv2\.", "post_quant_conv."),
)
"""Original Wan 2.2 VAE name (Wan 2.2's ``wan/modules/vae2_2.py`` ``WanVAE_``, ComfyUI's
``comfy/ldm/wan/vae2_2.py`` ``WanVAE``) -> diffusers ``AutoencoderKLWan`` (``is_residual``), by its module
path; the first pattern that matches applies. The facts of diffusers' ``scripts/convert_wan_to_diffusers.py``
(``convert_vae_22``), which converts the original ``.pth`` file and nothing else."""
RESIDUAL_LAYERS = {"residual.0": "norm1", "residual.2": "conv1", "residual.3": "norm2", "residual.6": "conv2",
                   "shortcut": "conv_shortcut"}
"""A residual block's layers (both Wan VAEs): the original ``ResidualBlock.residual`` ``nn.Sequential``
indices (norm, SiLU, convolution, norm, SiLU, dropout, convolution) and ``shortcut`` -> diffusers'
``WanResidualBlock``."""


def wan22_vae_to_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Wan 2.2 VAE file's tensors under diffusers' ``AutoencoderKLWan`` names (:data:`WAN22_VAE_NAMES`,
    :data:`RESIDUAL_LAYERS`); names of no known layer stay as they are (and are then refused as unexpected)."""
    out = {}
    for name, tensor in state.items():
        for pattern, replacement in WAN22_VAE_NAMES:
            renamed, found = re.subn(pattern, replacement, name)
            if found:
                name = renamed
                break
        name = re.sub(r"(\.resnets\.\d+\.)(residual\.\d|shortcut)\.",
                      lambda match: f"{match[1]}{RESIDUAL_LAYERS[match[2]]}.", name)
        out[name] = tensor
    return out


def load_text_encoder(path: Path, configs: WanFileConfigs, dtype: torch.dtype, input_name: str = "text_encoder"):
    """A transformers ``UMT5EncoderModel`` and the :class:`SentencePieceTokenizer` the file carries.

    ComfyUI's names are transformers' own, less the embedding the encoder ties to ``shared.weight``;
    transformers' ``from_pretrained`` (config and state dict, no folder) ties it and keeps its fp32
    modules as for a folder.
    """
    from transformers import UMT5Config, UMT5EncoderModel

    name = Path(path).name
    state = read_state_dict(path, input_name)
    scales = take_scales(state)
    tokenizer = SentencePieceTokenizer(state.pop(SPIECE).numpy().tobytes(), name, input_name)
    config = UMT5Config.from_json_file(configs.text_encoder / "config.json")
    with _empty_weights():
        expected = UMT5EncoderModel(config).state_dict()
    tied = "encoder.embed_tokens.weight"
    missing = sorted(set(expected) - set(state) - {tied})
    unexpected = sorted(set(state) - set(expected))
    wrong = [key for key in set(expected) & set(state) if tuple(expected[key].shape) != tuple(state[key].shape)]
    if missing or unexpected or wrong:
        raise InputError(input_name, f"{name!r} does not fit UMT5-XXL's encoder: {len(missing)} tensors missing (e.g. "
                                     f"{missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}), "
                                     f"{len(wrong)} of another shape (e.g. {sorted(wrong)[:2]})")
    if len(tokenizer) > config.vocab_size:
        raise InputError(input_name, f"{name!r}: its tokenizer has {len(tokenizer)} tokens but its encoder "
                                     f"{config.vocab_size}; the file's parts do not belong together")
    # transformers keeps UMT5's ``wo`` in fp32 at fp16 only (``PreTrainedModel._get_dtype_plan``); cast so before
    # it sees the state, dequantising fp8 weights tensor by tensor (no fp32 copy of the whole encoder)
    _cast(state, dtype, UMT5EncoderModel._keep_in_fp32_modules if dtype == torch.float16 else (), scales)
    model = UMT5EncoderModel.from_pretrained(None, config=config, state_dict=state, dtype=dtype)
    return model.eval(), tokenizer


# --- the tokenizer -------------------------------------------------------------------------------------

class SentencePieceTokenizer:
    """UMT5's tokenizer from the SentencePiece model a ComfyUI text-encoder file carries.

    As ComfyUI's ``SPieceTokenizer`` (``add_eos``) and transformers' T5 tokenizer: the pieces of a
    prompt, then ``</s>``; truncated to keep the ``</s>``; padded with the pad id (UMT5: pad 0, eos 1).
    """

    def __init__(self, model_proto: bytes, name: str = "the text encoder", input_name: str = "text_encoder"):
        import sentencepiece

        try:
            self.processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        except (RuntimeError, OSError) as err:
            raise InputError(input_name, f"{name!r}: its {SPIECE!r} is not a SentencePiece model ({err})") from err
        self.eos, self.pad = self.processor.eos_id(), max(self.processor.pad_id(), 0)
        if self.eos < 0:
            raise InputError(input_name, f"{name!r}: its SentencePiece model has no end-of-sequence token")

    def __len__(self) -> int:
        return self.processor.get_piece_size()

    def tokens(self, prompts: list[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids, attention_mask)``, each ``(len(prompts), length)`` int64."""
        ids = torch.full((len(prompts), length), self.pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), length), dtype=torch.long)
        for row, pieces in enumerate(self.processor.encode(list(prompts))):
            pieces = pieces[: length - 1] + [self.eos]
            ids[row, : len(pieces)] = torch.tensor(pieces)
            mask[row, : len(pieces)] = 1
        return ids, mask
