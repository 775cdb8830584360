"""ModelScope / ZeroScope-family text-to-video models: diffusers folders with a ``UNet3DConditionModel``.

A folder holds ``model_index.json`` and the parts ``unet``, ``vae``, ``text_encoder``, ``tokenizer``
and ``scheduler`` (as ``TextToVideoSDPipeline.save_pretrained`` writes them). Only safetensors
weights are loaded, only from a local folder.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

from ..errors import InputError
from .base import ModelOptions, VideoBackbone

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


def load_backbone(folder: str | Path, options: ModelOptions = ModelOptions(),
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
    family = "unet3d"

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler_config: dict, options: ModelOptions):
        self.unet, self.vae, self.text_encoder, self.tokenizer = unet, vae, text_encoder, tokenizer
        self.scheduler_config = dict(scheduler_config)
        self.options = options
        self.device, self.dtype = options.torch_device(), options.torch_dtype()
        self._offload = options.offload == "model" and self.device.type != "cpu"
        for module in (unet, vae, text_encoder):
            module.requires_grad_(False).eval()
            module.to("cpu" if self._offload else self.device)

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
        pixels = frames.permute(0, 3, 1, 2).to(self.device, self.dtype) * 2 - 1
        chunk = self.options.vae_decode_chunk or pixels.shape[0]
        with torch.no_grad(), self.hold(self.vae):
            latents = torch.cat([self.vae.encode(part).latent_dist.mode() for part in pixels.split(chunk)])
        latents = latents * self.vae.config.scaling_factor
        return latents.permute(1, 0, 2, 3).unsqueeze(0)  # (f, c, h, w) -> (1, c, f, h, w)

    def decode_latents(self, latents: torch.Tensor, progress=None) -> torch.Tensor:
        b, c, f, h, w = latents.shape
        flat = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w) / self.vae.config.scaling_factor
        chunk = self.options.vae_decode_chunk or flat.shape[0]
        frames, done = [], 0
        with torch.no_grad(), self.hold(self.vae):
            for part in flat.split(chunk):
                pixels = self.vae.decode(part.to(self.device, self.dtype)).sample
                frames.append(((pixels.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).cpu())
                done += part.shape[0]
                if progress is not None:
                    progress(done, b * f)
        return torch.cat(frames)

    def predict_noise(self, unet, x_t, t, text):
        return unet(x_t, t, encoder_hidden_states=text).sample
