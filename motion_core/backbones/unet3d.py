"""ModelScope / ZeroScope-family text-to-video models: diffusers folders with a ``UNet3DConditionModel``.

A folder holds ``model_index.json`` and the parts ``unet``, ``vae``, ``text_encoder``, ``tokenizer``
and ``scheduler`` (the layout of diffusers' text-to-video pipeline folders; :func:`save_folder`
writes it without the deprecated pipeline class). Only safetensors weights are loaded, only from a
local folder.

The family: ε-prediction on a DDPM schedule (:class:`~motion_core.sampling.DiscreteDiffusion`),
DDIM sampling and inversion; motion sites are the UNet's ``TransformerTemporalModel`` s (layout
``frames``: every ``BasicTransformerBlock``'s ``attn1`` and ``attn2`` attend over frames, tokens are
the ``(batch·height·width)`` pixels of a block's latent grid — docs/METHODS.md §1, §8); spatial
``Transformer2DModel`` s carry appearance; gradient checkpointing wraps the down, mid and up blocks.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
import torch.nn as nn
from einops import rearrange

from ..errors import InputError
from ..sampling import DiscreteDiffusion
from .base import ModelOptions, VideoBackbone, module_dtype
from .sites import MotionSite

PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
WEIGHTED_PARTS = ("unet", "vae", "text_encoder")
SUPPORTED = ("a ModelScope/ZeroScope-family text-to-video diffusers folder (model_index.json naming a "
             "UNet3DConditionModel unet, with unet, vae, text_encoder, tokenizer and scheduler subfolders)")


def _describe(folder: Path) -> str:
    """A short account of what a folder holds, for error messages."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    if not names:
        return "it is empty"
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return f"it holds {shown}"


PIPELINE_CLASS = "TextToVideoSDPipeline"
"""What ``model_index.json`` of ModelScope/ZeroScope folders names as their pipeline."""

ATTENTION_SLOTS = ("attn1", "attn2")
"""The two temporal self-attentions of a ``BasicTransformerBlock`` in a ``TransformerTemporalModel``."""


def read_model_index(folder: str | Path, input_name: str = "model") -> dict:
    """Check that ``folder`` is a UNet3D text-to-video diffusers folder; return its model_index.json.

    Raises:
        InputError: naming what was found instead.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(input_name, f"{folder.name!r} is not a folder; choose {SUPPORTED}")
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise InputError(input_name, f"{folder.name!r} has no model_index.json ({_describe(folder)}); "
                                     f"choose {SUPPORTED}")
    try:
        index = json.loads(index_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(input_name, f"{folder.name!r}: model_index.json is not valid JSON ({err})") from err
    unet = index.get("unet")
    unet_class = unet[1] if isinstance(unet, list) and len(unet) == 2 else None
    if unet_class != "UNet3DConditionModel":
        found = index.get("_class_name", "an unknown pipeline")
        raise InputError(input_name, f"{folder.name!r} is a {found} folder with unet {unet_class or 'missing'}; "
                                     f"this loader takes {SUPPORTED}")
    missing = [part for part in PARTS if not (folder / part).is_dir()]
    if missing:
        raise InputError(input_name, f"{folder.name!r} lacks the subfolders {', '.join(missing)}; "
                                     f"choose {SUPPORTED}")
    for part in WEIGHTED_PARTS:
        if not any((folder / part).glob("*.safetensors")):
            raise InputError(input_name, f"{folder.name!r}: {part}/ has no .safetensors weights "
                                         f"({_describe(folder / part)}); only safetensors are loaded (never "
                                         "pickle files) — convert the weights to safetensors first")
    return index


def _unet_class(folder: Path) -> str | None:
    """The unet class a folder's model_index.json names, or None (no file, not JSON, no unet)."""
    try:
        unet = json.loads((folder / "model_index.json").read_text()).get("unet")
    except (OSError, ValueError, AttributeError):
        return None
    return unet[1] if isinstance(unet, list) and len(unet) == 2 else None


def load_unet3d(folder: str | Path, options: ModelOptions = ModelOptions(),
                input_name: str = "model") -> UNet3DBackbone:
    """Load a UNet3D text-to-video folder in the dtype and on the device ``options`` ask for."""
    options.validate()
    folder = Path(folder)
    read_model_index(folder, input_name)
    dtype = options.torch_dtype()
    # ComfyUI runs nodes under inference mode; weights created there could not be used by training
    # views without a full copy (motion_core.adapters.view), so they are always created outside it.
    with torch.inference_mode(False):
        return _load_parts(folder, options, dtype, input_name)


def _load_parts(folder: Path, options: ModelOptions, dtype: torch.dtype, input_name: str) -> UNet3DBackbone:
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    try:
        unet = UNet3DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=dtype,
                                                    use_safetensors=True)
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=dtype, use_safetensors=True)
        text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", dtype=dtype,
                                                     use_safetensors=True)
        tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
        scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, ValueError, json.JSONDecodeError) as err:
        raise InputError(input_name, f"{folder.name!r} could not be loaded: {str(err).splitlines()[0]}") from err
    set_attention(unet, options.attention)
    set_attention(vae, options.attention)
    return UNet3DBackbone(unet, vae, text_encoder, tokenizer, scheduler_config, options)


def set_attention(model: torch.nn.Module, attention: str) -> None:
    """Give every attention of a freshly loaded diffusers model the processor ``attention`` names."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    model.set_attn_processor(AttnProcessor2_0() if attention == "sdpa" else AttnProcessor())


class UNet3DBackbone(VideoBackbone):
    """A loaded ModelScope/ZeroScope-family model (see the module docstring)."""

    family = "unet3d"
    describe = SUPPORTED
    checkpoint_blocks = ("down_blocks", "mid_block", "up_blocks")

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler_config: dict, options: ModelOptions):
        self.unet, self.vae, self.text_encoder, self.tokenizer = unet, vae, text_encoder, tokenizer
        self.scheduler_config = dict(scheduler_config)
        self.sampling = DiscreteDiffusion(self.scheduler_config)
        self.options = options
        self.device, self.dtype = options.torch_device(), options.torch_dtype()
        self._offload = options.offload == "model" and self.device.type != "cpu"
        for module in (unet, vae, text_encoder):
            module.requires_grad_(False).eval()
            module.to("cpu" if self._offload else self.device)

    @classmethod
    def recognises(cls, path: Path) -> bool:
        return Path(path).is_dir() and _unet_class(Path(path)) == "UNet3DConditionModel"

    @classmethod
    def check_files(cls, path: Path, input_name: str = "model") -> None:
        read_model_index(path, input_name)

    @classmethod
    def load(cls, path: Path, options: ModelOptions, input_name: str = "model") -> UNet3DBackbone:
        return load_unet3d(path, options, input_name)

    @property
    def denoiser_module(self) -> nn.Module:
        return self.unet

    @staticmethod
    def call_denoiser(module, x_t, t, text):
        dtype = module_dtype(module)
        return module(x_t.to(dtype), t, encoder_hidden_states=text.to(dtype)).sample

    @classmethod
    def owns(cls, module: nn.Module) -> bool:
        from diffusers import UNet3DConditionModel

        return isinstance(module, UNet3DConditionModel)

    @classmethod
    def find_motion_sites(cls, module: nn.Module) -> list[MotionSite]:
        return temporal_transformers(module)

    @classmethod
    def find_appearance_sites(cls, module: nn.Module) -> list[tuple[str, nn.Module]]:
        from diffusers.models.transformers.transformer_2d import Transformer2DModel

        return [(name, m) for name, m in module.named_modules() if isinstance(m, Transformer2DModel)]

    @contextlib.contextmanager
    def hold(self, module: torch.nn.Module):
        """Keep ``module`` on the device for the block (with offload: move it there and back)."""
        if not self._offload:
            yield module
            return
        module.to(self.device)
        try:
            yield module
        finally:
            module.to("cpu")
            torch.cuda.empty_cache()

    def pixel_multiple(self) -> int:
        vae_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        unet_factor = 2 ** (len(self.unet.config.block_out_channels) - 1)
        return vae_factor * unet_factor

    def latent_scale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(prompts), padding="max_length", max_length=self.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt")
        with torch.no_grad(), self.hold(self.text_encoder):
            return self.text_encoder(tokens.input_ids.to(self.device))[0].to(self.dtype)

    def check_frames(self, frames: torch.Tensor, input_name: str = "frames") -> None:
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise InputError(input_name, f"expected IMAGE frames (frames, height, width, 3), got shape "
                                         f"{tuple(frames.shape)}")
        count, height, width, _ = frames.shape
        if count < 2:
            raise InputError(input_name, f"{count} frame given; motion needs at least 2 frames (8-24 work best)")
        multiple = self.pixel_multiple()
        if height % multiple or width % multiple:
            raise InputError(input_name, f"{width}x{height} frames do not fit this model, which needs width "
                                         f"and height in multiples of {multiple} (e.g. "
                                         f"{max(multiple, width // multiple * multiple)}x"
                                         f"{max(multiple, height // multiple * multiple)}); set custom_width and "
                                         "custom_height on Load Reference Video")

    def encode_video(self, frames: torch.Tensor, input_name: str = "frames") -> torch.Tensor:
        self.check_frames(frames, input_name)
        pixels = rearrange(frames, "f h w rgb -> f rgb h w").to(self.device, self.dtype) * 2 - 1
        chunk = self.options.vae_decode_chunk or pixels.shape[0]
        with torch.no_grad(), self.hold(self.vae):
            latents = torch.cat([self.vae.encode(part).latent_dist.mode() for part in pixels.split(chunk)])
        latents = latents * self.vae.config.scaling_factor
        return rearrange(latents, "f c h w -> 1 c f h w")

    def decode_latents(self, latents: torch.Tensor, progress=None) -> torch.Tensor:
        b, c, f, h, w = latents.shape
        flat = rearrange(latents, "b c f h w -> (b f) c h w") / self.vae.config.scaling_factor
        chunk = self.options.vae_decode_chunk or flat.shape[0]
        frames, done = [], 0
        with torch.no_grad(), self.hold(self.vae):
            for part in flat.split(chunk):
                pixels = self.vae.decode(part.to(self.device, self.dtype)).sample
                frames.append(rearrange((pixels.float() + 1) / 2, "n rgb h w -> n h w rgb").clamp(0, 1).cpu())
                done += part.shape[0]
                if progress is not None:
                    progress(done, b * f)
        return torch.cat(frames)


def temporal_transformers(unet: nn.Module) -> list[MotionSite]:
    """Every ``TransformerTemporalModel`` of a diffusers ``UNet3DConditionModel``, in data-flow order.

    Order: ``transformer_in``, then down blocks, the mid block, up blocks (each by index, then by
    position in the block). Works on any device, ``meta`` included (nothing is computed). A model
    without temporal transformers gives an empty list.
    """
    from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

    found, levels = [], None
    for name, module in unet.named_modules():
        if not isinstance(module, TransformerTemporalModel):
            continue
        levels = levels or _block_levels(unet)  # only UNets with temporal transformers have the blocks
        block = _block_of(name)
        attentions = tuple((f"{name}.transformer_blocks.{i}.{slot}", getattr(layer, slot))
                           for i, layer in enumerate(module.transformer_blocks) for slot in ATTENTION_SLOTS)
        first = attentions[0][1]
        found.append(MotionSite(name, module, "unet3d", "frames", block, levels[block], module.in_channels,
                                first.inner_dim, first.heads, attentions))
    stage = {"transformer_in": 0, "down_blocks": 1, "mid_block": 2, "up_blocks": 3}
    position = {t.name: i for i, t in enumerate(found)}

    def order(t: MotionSite):
        parts = t.block.split(".")
        return stage[parts[0]], int(parts[1]) if len(parts) > 1 else 0, position[t.name]

    return sorted(found, key=order)


def _block_of(name: str) -> str:
    parts = name.split(".")
    if parts[0] in ("down_blocks", "up_blocks"):
        return ".".join(parts[:2])
    return parts[0]


def _block_levels(unet: nn.Module) -> dict[str, int]:
    """Resolution level of each block's temporal transformers, counted from the down/up samplers.

    A down block's attentions run before its downsampler, an up block's after the previous up
    block's upsampler; the mid block runs at the deepest level.
    """
    levels = {"transformer_in": 0}
    level = 0
    for i, block in enumerate(unet.down_blocks):
        levels[f"down_blocks.{i}"] = level
        level += len(getattr(block, "downsamplers", None) or ())
    levels["mid_block"] = level
    for i, block in enumerate(unet.up_blocks):
        levels[f"up_blocks.{i}"] = level
        level -= len(getattr(block, "upsamplers", None) or ())
    return levels


def save_folder(folder: str | Path, unet, vae, text_encoder, tokenizer, scheduler) -> Path:
    """Write a ModelScope-layout folder: each part by its own ``save_pretrained`` (safetensors) and a
    ``model_index.json`` naming the parts as ModelScope/ZeroScope folders do. Returns the folder."""
    import diffusers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": PIPELINE_CLASS, "_diffusers_version": diffusers.__version__}
    for name, part in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder), ("tokenizer", tokenizer),
                       ("scheduler", scheduler)):
        if isinstance(part, nn.Module):
            part.save_pretrained(folder / name, safe_serialization=True)
        else:  # tokenizer, scheduler
            part.save_pretrained(folder / name)
        library = "diffusers" if type(part).__module__.startswith("diffusers") else "transformers"
        index[name] = [library, type(part).__name__]
    (folder / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return folder
