"""Wan 2.1 / 2.2 text-to-video: a flow-matching DiT with full 3-D self-attention (docs/METHODS.md §8).

What loads, safetensors only, offline:

- a diffusers ``WanPipeline`` folder (``model_index.json`` naming a ``WanTransformer3DModel``
  transformer, an ``AutoencoderKLWan``, a ``UMT5EncoderModel`` and its tokenizer, a flow scheduler);
- ComfyUI's single files (:mod:`.wan_files`): the transformer (``models/diffusion_models``: Wan 2.1 T2V
  1.3B / 14B, a Wan 2.2 A14B expert, Wan 2.2 TI2V-5B) as the main path, with the :attr:`WanBackbone.parts`
  ``vae`` (``models/vae``: the Wan 2.1 VAE, or the Wan 2.2 VAE for TI2V-5B) and ``text_encoder``
  (``models/text_encoders``, carrying its SentencePiece tokenizer), with the configs shipped in the
  pack (``configs/wan``; the ``configs`` part replaces them, e.g. for tiny test models).

Wan 2.2 A14B is two transformers of the 14B architecture: a diffusers folder naming ``transformer``
(the high-noise expert) and ``transformer_2`` (the low-noise one) with ``boundary_ratio`` (T2V
0.875), or ComfyUI's two expert files (the high-noise one as the main path, the low-noise one as the
part ``low_noise_model``, with the T2V boundary :data:`T2V_A14B_BOUNDARY_RATIO`), loads as one
:class:`WanExperts` denoiser, which sends each sample to the expert of its timestep
(``t >= boundary_ratio·1000``: high). Both experts' blocks are motion sites (``high.blocks.<i>``,
``low.blocks.<i>``), so an adapter spans both; training on a timestep range inside one expert's
(e.g. ``timestep_low`` 0.875) trains that expert's part only.

The family: rectified flow (:class:`~motion_core.sampling.FlowMatching`, ``v = eps - x0``) with the
shift of the folder's scheduler (``flow_shift``, or ``shift``; Wan 2.1 480p: 3.0); the transformer's
timestep is ``1000·σ``. Motion sites are the transformer's blocks, layout ``joint``: each block's
``attn1`` attends over every frame × height × width token (frame-major order; 3-D RoPE gives each
token its frame); ``attn2`` is cross-attention to the text and is not a motion site. The VAE
compresses time 4× (``frames = 4k + 1``) and space by its ``scale_factor_spatial`` (the Wan 2.1 VAE 8×,
16 channels; the Wan 2.2 VAE 16×, 48 channels, TI2V-5B's); latents are normalised by the VAE's
``latents_mean`` / ``latents_std``. TI2V-5B runs as text-to-video: with no image its per-token timesteps are
all the sample's one (Wan 2.2's ``textimage2video.py`` ``t2v``: ``masks_like(…, zero=False)``, all ones), so
it is called as the other Wan transformers are. Prompts are UMT5 embeddings of 512 tokens with the padding zeroed,
as Wan's pipeline makes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from einops import rearrange
from torch import nn

from ..errors import InputError
from ..sampling import FlowMatching
from .base import (ModelOptions, Parts, VideoBackbone, describe_contents, module_dtype, on_device_while, part_class,
                   save_pipeline_folder)
from .sites import MotionSite
from .wan_files import WAN_CONFIGS  # noqa: F401  (re-exported: the shipped configs)
from .wan_files import (DOWNLOADS, WanFileConfigs, check_text_encoder_file, check_vae_file, load_text_encoder,
                        load_transformer, load_vae, safetensors_header, transformer_configs, transformer_prefix,
                        wanted_vae)

SUPPORTED = ("a Wan 2.1 / 2.2 text-to-video diffusers folder (model_index.json naming a WanTransformer3DModel "
             "transformer, with transformer, vae, text_encoder, tokenizer and scheduler subfolders), or ComfyUI's Wan "
             "text-to-video transformer file (models/diffusion_models) with its VAE and UMT5 text encoder files")
PARTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
FILE_PARTS = {
    "vae": "the Wan VAE file (models/vae: wan_2.1_vae.safetensors; for Wan 2.2 TI2V-5B wan2.2_vae.safetensors), "
           "for a Wan transformer file",
    "text_encoder": "the UMT5-XXL text encoder file with its tokenizer (models/text_encoders: "
                    "umt5_xxl_fp16.safetensors), for a Wan transformer file",
    "configs": "a folder of diffusers configs (transformer, vae, text_encoder, scheduler) replacing the Wan ones "
               "shipped with the pack (for non-standard sizes)",
    "low_noise_model": "Wan 2.2 A14B's low-noise expert file (models/diffusion_models: "
                       "wan2.2_t2v_low_noise_14B_fp16.safetensors), with the high-noise expert file as the model",
}
PIPELINE_CLASS = "WanPipeline"
TEXT_TOKENS = 512
"""Prompt length Wan's text encoder is run at (its pipeline's ``max_sequence_length``)."""
TIME_COMPRESSION = 4
"""Wan's VAE encodes a clip's first frame alone, then chunks of 4 frames (diffusers' ``AutoencoderKLWan``
and Wan's own code), so it takes ``4k + 1`` frames; the real VAEs compress each chunk to one latent
frame. A VAE's own temporal factor (``scale_factor_temporal``: 4, or 1 in the toy Wan model) says how
many latent frames a chunk gives."""
T2V_A14B_FLOW_SHIFT = 12.0
"""The flow shift Wan 2.2 T2V A14B samples with (Wan 2.2's ``wan/configs/wan_t2v_A14B.py``,
``sample_shift = 12.0``; Wan 2.1 480p's is 3.0, the shipped scheduler config's): a pair of expert
files gets it, since the files carry no scheduler."""
NUM_TRAIN_TIMESTEPS = 1000
"""The transformer's timestep is ``1000·σ``; Wan 2.2's ``boundary_ratio`` is a fraction of it."""
T2V_A14B_BOUNDARY_RATIO = 0.875
"""Where Wan 2.2 T2V A14B hands over from the high-noise to the low-noise expert, as a fraction of the
training timesteps: Wan 2.2's own ``wan/configs/wan_t2v_A14B.py`` (``boundary = 0.875``; ``text2video.py``
runs the high-noise expert while ``t >= boundary·num_train_timesteps``), the ``boundary_ratio`` of the
Wan2.2-T2V-A14B-Diffusers ``model_index.json``. The expert files carry no such number; I2V A14B's, 0.9,
does not apply (image-to-video files are refused)."""
TI2V_5B_FRAME_RATE = 24.0
"""The frame rate Wan 2.2 TI2V-5B was trained at and samples (Wan 2.2's ``wan/configs/wan_ti2v_5B.py``,
``sample_fps = 24``); the other Wan models' is 16. TI2V-5B is the model of the Wan 2.2 VAE, so a backbone
with that VAE takes it."""
LATENT_FORMATS = {(False, 16): "Wan21", (True, 48): "Wan22"}
"""ComfyUI's latent format of each Wan VAE (by ``is_residual``, the Wan 2.2 VAE's layout, and its latent
channels), for previews: ``comfy/latent_formats.py`` ``Wan21`` (16 channels) and ``Wan22`` (48
channels, 16×). A VAE of other widths (the toy Wan model's 4 channels) has none: no latent previews."""


def text_embeddings(text_encoder: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """UMT5 embeddings ``(b, tokens, dim)`` of token ``ids`` ``(b, tokens)`` with the padding (``mask`` 0)
    zeroed, as Wan's pipeline makes them; differentiable (the toy Wan model trains its encoder so)."""
    embeddings = text_encoder(ids, attention_mask=mask).last_hidden_state
    return embeddings * mask[..., None].to(embeddings.dtype)


def files_scheduler_config(configs: WanFileConfigs, pair: bool, shipped: bool) -> dict:
    """The scheduler config of a model loaded from single files: ``configs``' (the shipped one, Wan 2.1's
    shift 3.0, unless a ``configs`` folder replaced them), with Wan 2.2 A14B's own shift
    :data:`T2V_A14B_FLOW_SHIFT` for a ``pair`` of expert files on the ``shipped`` configs."""
    config = json.loads((configs.scheduler / "scheduler_config.json").read_text())
    if pair and shipped:
        config["flow_shift"] = T2V_A14B_FLOW_SHIFT
    return config


class TransformersTokenizer:
    """A transformers tokenizer (a diffusers folder's) behind the interface :meth:`WanBackbone.encode_prompt`
    uses, which :class:`~.wan_files.SentencePieceTokenizer` (a ComfyUI file's) has too: ``len()`` and
    ``tokens(prompts, length) -> (ids, attention_mask)``, eos appended, padded."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __len__(self) -> int:
        return len(self.tokenizer)

    def tokens(self, prompts: list[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.tokenizer(list(prompts), padding="max_length", max_length=length, truncation=True,
                                add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        return tokens.input_ids, tokens.attention_mask


def flow_shift_of(scheduler_config: dict) -> float:
    """The flow shift a scheduler config names (UniPC's ``flow_shift``, FlowMatchEuler's ``shift``; 1 if none)."""
    for key in ("flow_shift", "shift"):
        if isinstance(scheduler_config.get(key), (int, float)):
            return float(scheduler_config[key])
    return 1.0


class WanExperts(nn.Module):
    """Wan 2.2 A14B's two experts as one denoiser: ``high`` for timesteps ``>= boundary``, ``low`` below.

    Called like a ``WanTransformer3DModel`` (``hidden_states (b, c, f, h, w)``, ``timestep (b,)`` =
    1000·σ, ``encoder_hidden_states``); a batch with samples on both sides of the boundary is split.
    Returns an object with ``.sample``, as the transformer does.
    """

    def __init__(self, high: nn.Module, low: nn.Module, boundary: float):
        super().__init__()
        self.high, self.low, self.boundary = high, low, float(boundary)

    @property
    def config(self):
        """The experts' shared architecture (the high-noise expert's config) and the boundary: what the
        model's fingerprint is made of, so adapters for the pair are not taken for a single 14B's."""
        from diffusers.configuration_utils import FrozenDict

        return FrozenDict({**self.high.config, "experts": "high+low", "boundary": self.boundary})

    def forward(self, hidden_states: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                **kwargs):
        from diffusers.models.modeling_outputs import Transformer2DModelOutput

        high = timestep >= self.boundary
        if high.all() or not high.any():
            expert = self.high if high.all() else self.low
            return expert(hidden_states=hidden_states, timestep=timestep, encoder_hidden_states=encoder_hidden_states,
                          **kwargs)
        out = torch.empty_like(hidden_states)
        for expert, chosen in ((self.high, high), (self.low, ~high)):
            out[chosen] = expert(hidden_states=hidden_states[chosen], timestep=timestep[chosen],
                                 encoder_hidden_states=encoder_hidden_states[chosen], **kwargs).sample.to(out.dtype)
        return Transformer2DModelOutput(sample=out)


class WanBackbone(VideoBackbone):
    """A loaded Wan model (see the module docstring). Attributes: ``transformer``, ``vae``,
    ``text_encoder``, ``tokenizer`` (``len()`` and ``tokens(prompts, length) -> (ids, attention_mask)``:
    :class:`TransformersTokenizer` or :class:`~.wan_files.SentencePieceTokenizer`), ``scheduler_config``,
    ``options``, ``device``, ``dtype``."""

    family = "wan"
    describe = SUPPORTED
    parts = FILE_PARTS
    checkpoint_blocks = ("blocks",)
    frame_multiple = TIME_COMPRESSION
    frame_rate = 16.0  # Wan 2.1 and 2.2 A14B were trained on 16 fps video (TI2V-5B: 24, set per instance)
    latent_format = "Wan21"  # normalised by the VAE's per-channel mean and std, as ComfyUI's Wan21 format

    def __init__(self, transformer, vae, text_encoder, tokenizer, scheduler_config: dict, options: ModelOptions):
        self.transformer, self.vae, self.text_encoder, self.tokenizer = transformer, vae, text_encoder, tokenizer
        if isinstance(transformer, WanExperts):
            self.checkpoint_blocks = ("high.blocks", "low.blocks")
        self.scheduler_config = dict(scheduler_config)
        self.sampling = FlowMatching(flow_shift_of(self.scheduler_config))
        self.options = options
        self.device, self.dtype = options.torch_device(), options.torch_dtype()
        self._offload = options.offload == "model" and self.device.type != "cpu"
        for module in (transformer, vae, text_encoder):
            module.requires_grad_(False).eval()
            module.to("cpu" if self._offload else self.device)
        config = vae.config
        wan22 = bool(getattr(config, "is_residual", False))
        self.latent_format = LATENT_FORMATS.get((wan22, config.z_dim))
        if wan22:
            self.frame_rate = TI2V_5B_FRAME_RATE
        self._latent_mean = torch.tensor(config.latents_mean, dtype=torch.float32).reshape(1, -1, 1, 1, 1)
        self._latent_std = torch.tensor(config.latents_std, dtype=torch.float32).reshape(1, -1, 1, 1, 1)

    # --- files ------------------------------------------------------------------------------------

    @classmethod
    def recognises(cls, path: Path, parts: Parts | None = None) -> bool:
        path = Path(path)
        if path.is_dir():
            return part_class(path, "transformer") == "WanTransformer3DModel"
        if path.is_file() and path.suffix == ".safetensors":
            try:
                return transformer_prefix(safetensors_header(path, "model")) is not None
            except InputError:
                return False
        return False

    @classmethod
    def check_files(cls, path: Path, input_name: str = "model", parts: Parts | None = None) -> None:
        path, parts = Path(path), dict(parts or {})
        if path.is_file():
            cls._file_configs(path, input_name, parts)
            return
        if not cls.recognises(path):
            raise InputError(input_name, f"{path.name!r} is not a Wan folder ({describe_contents(path)}); "
                                         f"choose {SUPPORTED}")
        if "low_noise_model" in parts:
            raise InputError("low_noise_model", f"{path.name!r} is a Wan diffusers folder: a Wan 2.2 A14B folder "
                                                "carries its low-noise expert itself (transformer_2); choose none")
        if parts:
            raise InputError(next(iter(parts)), f"{path.name!r} is a Wan diffusers folder with its own VAE, text "
                                                "encoder and configs; choose none")
        missing = [part for part in PARTS if not (path / part).is_dir()]
        if missing:
            raise InputError(input_name, f"{path.name!r} lacks the subfolders {', '.join(missing)}; choose {SUPPORTED}")
        for part in ("transformer", "vae", "text_encoder"):
            if not any((path / part).glob("*.safetensors")):
                raise InputError(input_name, f"{path.name!r}: {part}/ has no .safetensors weights "
                                             f"({describe_contents(path / part)}); only safetensors are loaded")

    @classmethod
    def _file_configs(cls, path: Path, input_name: str, parts: dict) -> WanFileConfigs:
        """Check a transformer file and its parts (headers only); the configs they load with."""
        configs = transformer_configs(safetensors_header(path, input_name), path.name, parts.get("configs"),
                                      input_name)
        if "vae" not in parts:
            vae, download = wanted_vae(configs)
            raise InputError("vae", f"{path.name!r} is a Wan transformer file: choose the {vae} file (models/vae: "
                                    f"{download})")
        for part in ("vae", "text_encoder"):
            if part not in parts:
                raise InputError(part, f"{path.name!r} is a Wan transformer file: choose {FILE_PARTS[part]}")
            if not Path(parts[part]).is_file():
                raise InputError(part, f"{Path(parts[part]).name!r} not found")
        check_vae_file(parts["vae"], configs, "vae")
        check_text_encoder_file(parts["text_encoder"], "text_encoder")
        if "low_noise_model" in parts:
            cls._check_low_noise_expert(path, Path(parts["low_noise_model"]), configs, parts.get("configs"))
        return configs

    @staticmethod
    def _check_low_noise_expert(high: Path, low: Path, configs: WanFileConfigs, folder: Path | None) -> None:
        """Check the low-noise expert file of a Wan 2.2 A14B pair (headers only): another file than the
        model (the high-noise expert), of its architecture."""
        part, download = "low_noise_model", DOWNLOADS["low_noise_model"]
        if not low.is_file():
            raise InputError(part, f"{low.name!r} not found")
        if low.resolve() == high.resolve():
            raise InputError(part, f"{low.name!r} is the model itself; choose the low-noise expert, with the "
                                   f"high-noise expert as the model: {download}")
        if "low_noise" in high.name.lower() and "high_noise" in low.name.lower():
            raise InputError(part, f"{low.name!r} is named as the high-noise expert and the model {high.name!r} as the "
                                   "low-noise one: swap them (the model is the high-noise expert)")
        found = transformer_configs(safetensors_header(low, part), low.name, folder, part)
        if found.transformer != configs.transformer:
            raise InputError(part, f"{low.name!r} is {found.variant} but the model {high.name!r} is {configs.variant}: "
                                   f"Wan 2.2 A14B's two experts are of one architecture; choose {download}")

    @classmethod
    def load(cls, path: Path, options: ModelOptions, input_name: str = "model", parts: Parts | None = None) -> WanBackbone:
        options.validate()
        path = Path(path)
        cls.check_files(path, input_name, parts)
        with torch.inference_mode(False):  # as for the UNet families: weights usable by training views
            if path.is_file():
                return cls._load_files(path, options, input_name, dict(parts or {}))
            return cls._load_folder(path, options, input_name)

    @classmethod
    def _load_folder(cls, path: Path, options: ModelOptions, input_name: str) -> WanBackbone:
        from diffusers import AutoencoderKLWan, WanTransformer3DModel
        from transformers import AutoTokenizer, UMT5EncoderModel

        dtype = options.torch_dtype()
        try:
            transformer = WanTransformer3DModel.from_pretrained(path, subfolder="transformer", torch_dtype=dtype,
                                                                use_safetensors=True, local_files_only=True)
            index = json.loads((path / "model_index.json").read_text())
            low = None
            if index.get("transformer_2") and index["transformer_2"][0] is not None:  # Wan 2.2 A14B's low-noise expert
                low = WanTransformer3DModel.from_pretrained(path, subfolder="transformer_2", torch_dtype=dtype,
                                                            use_safetensors=True, local_files_only=True)
            # The Wan VAE is kept in fp32 (its causal convolutions are what Wan's pipeline runs in fp32).
            vae = AutoencoderKLWan.from_pretrained(path, subfolder="vae", torch_dtype=torch.float32,
                                                   use_safetensors=True, local_files_only=True)
            text_encoder = UMT5EncoderModel.from_pretrained(path, subfolder="text_encoder", dtype=dtype,
                                                            use_safetensors=True)
            tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer")
            scheduler_config = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
        except (OSError, ValueError) as err:
            raise InputError(input_name, f"{path.name!r} could not be loaded: {str(err).splitlines()[0]}") from err
        if low is not None:
            ratio = index.get("boundary_ratio")
            if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
                raise InputError(input_name, f"{path.name!r} has two transformers but no boundary_ratio in (0, 1) in "
                                             f"model_index.json (got {ratio!r}); Wan 2.2 T2V uses 0.875")
            transformer = WanExperts(transformer, low, ratio * NUM_TRAIN_TIMESTEPS)
        if len(tokenizer) > text_encoder.config.vocab_size:
            raise InputError("tokenizer", f"the tokenizer has {len(tokenizer)} tokens but the text encoder "
                                          f"{text_encoder.config.vocab_size}; the folder's parts do not belong together")
        return cls(transformer, vae, text_encoder, TransformersTokenizer(tokenizer), scheduler_config, options)

    @classmethod
    def _load_files(cls, path: Path, options: ModelOptions, input_name: str, parts: dict) -> WanBackbone:
        configs = cls._file_configs(path, input_name, parts)
        dtype = options.torch_dtype()
        transformer = load_transformer(path, configs, dtype, input_name)
        if "low_noise_model" in parts:
            low = load_transformer(parts["low_noise_model"], configs, dtype, "low_noise_model")
            transformer = WanExperts(transformer, low, T2V_A14B_BOUNDARY_RATIO * NUM_TRAIN_TIMESTEPS)
        vae = load_vae(parts["vae"], configs, "vae")
        text_encoder, tokenizer = load_text_encoder(parts["text_encoder"], configs, dtype, "text_encoder")
        if text_encoder.config.d_model != transformer.config.text_dim:
            raise InputError("text_encoder", f"the text encoder gives {text_encoder.config.d_model}-wide embeddings; "
                                             f"{configs.variant} takes {transformer.config.text_dim}")
        scheduler_config = files_scheduler_config(configs, pair="low_noise_model" in parts,
                                                  shipped=parts.get("configs") is None)
        return cls(transformer, vae, text_encoder, tokenizer, scheduler_config, options)

    # --- the denoiser -----------------------------------------------------------------------------

    @property
    def denoiser_module(self) -> nn.Module:
        return self.transformer

    @staticmethod
    def call_denoiser(module, x_t, t, text):
        dtype = module_dtype(module)
        t = torch.as_tensor(t, device=x_t.device, dtype=torch.float32).reshape(-1).expand(x_t.shape[0])
        return module(hidden_states=x_t.to(dtype), timestep=t, encoder_hidden_states=text.to(dtype)).sample

    def hold(self, module: torch.nn.Module):
        """Keep ``module`` on the device for the block (with offload: move it there and back)."""
        return on_device_while(module, self.device, self._offload)

    def weight_modules(self) -> dict[str, nn.Module]:
        return {"transformer": self.transformer, "vae": self.vae, "text_encoder": self.text_encoder}

    @property
    def offloads(self) -> bool:
        return self._offload

    @classmethod
    def owns(cls, module: nn.Module) -> bool:
        from diffusers import WanTransformer3DModel

        return isinstance(module, (WanTransformer3DModel, WanExperts))

    @classmethod
    def find_motion_sites(cls, module: nn.Module) -> list[MotionSite]:
        """Every transformer block as a ``joint`` site: its ``attn1`` (3-D self-attention) and ``ffn``;
        of both experts for Wan 2.2 A14B (``high.blocks.<i>``, then ``low.blocks.<i>``)."""
        if isinstance(module, WanExperts):
            return [*cls._block_sites(module.high, "high."), *cls._block_sites(module.low, "low.")]
        return cls._block_sites(module, "")

    @classmethod
    def _block_sites(cls, module: nn.Module, prefix: str) -> list[MotionSite]:
        sites = []
        for i, block in enumerate(module.blocks):
            name, attention = f"{prefix}blocks.{i}", block.attn1
            sites.append(MotionSite(name, block, cls.family, "joint", name, 0, attention.to_q.in_features,
                                    attention.inner_dim, attention.heads, ((f"{name}.attn1", attention),),
                                    ((f"{name}.ffn", block.ffn),), patch=module.config.patch_size[1]))
        return sites

    # --- frames, sizes, text and video ------------------------------------------------------------

    def latent_frames(self, frames: int) -> int:
        chunk = TIME_COMPRESSION // int(getattr(self.vae.config, "scale_factor_temporal", None) or TIME_COMPRESSION)
        return (frames - 1) // TIME_COMPRESSION * chunk + 1

    def latent_scale(self) -> int:
        return int(self.vae.spatial_compression_ratio)

    def pixel_multiple(self) -> int:
        return self.latent_scale() * self.transformer.config.patch_size[1]

    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        ids, mask = self.tokenizer.tokens(list(prompts), TEXT_TOKENS)
        with torch.no_grad(), self.hold(self.text_encoder):
            return text_embeddings(self.text_encoder, ids.to(self.device), mask.to(self.device)).to(self.dtype)

    def check_frames(self, frames: torch.Tensor, input_name: str = "frames") -> None:
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise InputError(input_name, f"expected IMAGE frames (frames, height, width, 3), got shape "
                                         f"{tuple(frames.shape)}")
        count, height, width, _ = frames.shape
        if count < TIME_COMPRESSION + 1 or (count - 1) % TIME_COMPRESSION:
            below = max(TIME_COMPRESSION + 1, (count - 1) // TIME_COMPRESSION * TIME_COMPRESSION + 1)
            raise InputError(input_name, f"{count} frames given; Wan takes 4k+1 frames (5, 9, …, 33, 81): load "
                                         f"{below} (set frame_load_cap on Load Reference Video)")
        multiple = self.pixel_multiple()
        if height % multiple or width % multiple:
            raise InputError(input_name, f"{width}x{height} frames do not fit this model, which needs width and "
                                         f"height in multiples of {multiple}; set custom_width and custom_height on "
                                         "Load Reference Video")

    def encode_video(self, frames: torch.Tensor, input_name: str = "frames", progress=None) -> torch.Tensor:
        self.check_frames(frames, input_name)
        pixels = rearrange(frames, "f h w rgb -> 1 rgb f h w").to(self.device, torch.float32) * 2 - 1
        with torch.no_grad(), self.hold(self.vae):
            latents = self.vae.encode(pixels).latent_dist.mode()  # causal 3-D VAE: the clip in one call
        if progress is not None:
            progress(frames.shape[0], frames.shape[0])
        return ((latents - self._latent_mean.to(latents.device)) / self._latent_std.to(latents.device)).to(self.dtype)

    def decode_latents(self, latents: torch.Tensor, progress=None) -> torch.Tensor:
        frames = []
        with torch.no_grad(), self.hold(self.vae):
            for index, clip in enumerate(latents, start=1):
                clip = clip[None].to(self.device, torch.float32)
                clip = clip * self._latent_std.to(clip.device) + self._latent_mean.to(clip.device)
                pixels = self.vae.decode(clip).sample
                frames.append(rearrange((pixels + 1) / 2, "1 rgb f h w -> f h w rgb").clamp(0, 1).cpu())
                if progress is not None:
                    progress(index, latents.shape[0])
        return torch.cat(frames)


def save_folder(folder: str | Path, transformer, vae, text_encoder, tokenizer, scheduler, transformer_2=None,
                boundary_ratio: float | None = None) -> Path:
    """Write a diffusers ``WanPipeline`` folder (:func:`~.base.save_pipeline_folder`); with
    ``transformer_2`` and ``boundary_ratio``, Wan 2.2 A14B's layout (the low-noise expert and the
    ratio in ``model_index.json``). Returns the folder."""
    parts = {"transformer": transformer, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer,
             "scheduler": scheduler}
    if transformer_2 is not None:
        parts["transformer_2"] = transformer_2
    extra = {} if boundary_ratio is None else {"boundary_ratio": boundary_ratio}
    return save_pipeline_folder(folder, parts, PIPELINE_CLASS, extra)
