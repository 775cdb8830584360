"""What the latent-diffusion UNet families share: a CLIP text encoder, a 2-D ``AutoencoderKL`` applied
frame by frame, a DDPM-schedule denoiser (:class:`~motion_core.sampling.DiscreteDiffusion`) and
optional model offloading.

ModelScope/ZeroScope (:mod:`.unet3d`) and AnimateDiff (:mod:`.animatediff`) differ only in their
files, their denoiser call and where their motion sites are; everything here is one piece of code
for both.
"""

from __future__ import annotations


import torch
import torch.nn as nn
from einops import rearrange

from ..errors import InputError
from ..sampling import DiscreteDiffusion
from .base import ModelOptions, VideoBackbone, on_device_while

ENCODE_PART_PIXELS = 512 * 512
"""The most pixels one VAE encoding part holds (whole frames, at least one; within ``vae_decode_chunk``):
a cancel waits for one part, so a clip encoded at a large size goes frame by frame (found by the fuzz
tier: 8 frames of 32 x 8192 in one part took 29 s on 2 CPU cores, about 3.6 s a frame)."""


def set_attention(model: torch.nn.Module, attention: str) -> None:
    """Give every attention of a freshly loaded diffusers model the processor ``attention`` names."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    model.set_attn_processor(AttnProcessor2_0() if attention == "sdpa" else AttnProcessor())


def check_tokenizer(tokenizer, text_encoder: nn.Module, input_name: str) -> None:
    """Refuse a tokenizer whose vocabulary does not fit the text encoder.

    In transformers 5, ``CLIPTokenizer.from_pretrained`` on a folder without vocabulary files returns
    a 2-token tokenizer without error (every word becomes one id): the model would run on garbage.
    """
    expected = text_encoder.config.vocab_size
    if len(tokenizer) != expected:
        raise InputError(input_name, f"the tokenizer has {len(tokenizer)} tokens but the text encoder {expected}; "
                                     "give the tokenizer folder (vocab.json and merges.txt) made for this model")


class LatentUNetBackbone(VideoBackbone):
    """A loaded latent-diffusion video UNet with its VAE, CLIP text encoder, tokenizer and schedule.

    Subclasses (one per family) declare :attr:`family`, how they load, their denoiser call and motion
    sites. Attributes: ``unet`` (the denoiser), ``vae``, ``text_encoder``, ``tokenizer``,
    ``scheduler_config`` (a diffusers DDIM/DDPM config), ``options``, ``device``, ``dtype``.
    """

    checkpoint_blocks = ("down_blocks", "mid_block", "up_blocks")
    latent_format = "SD15"  # ModelScope/ZeroScope and AnimateDiff both use SD's VAE, 0.18215-scaled

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

    @property
    def denoiser_module(self) -> nn.Module:
        return self.unet

    def hold(self, module: torch.nn.Module):
        """Keep ``module`` on the device for the block (with offload: move it there and back)."""
        return on_device_while(module, self.device, self._offload)

    def weight_modules(self) -> dict[str, nn.Module]:
        return {"unet": self.unet, "vae": self.vae, "text_encoder": self.text_encoder}

    @property
    def offloads(self) -> bool:
        return self._offload

    def pixel_multiple(self) -> int:
        vae_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        unet_factor = 2 ** (len(self.unet.config.block_out_channels) - 1)
        return vae_factor * unet_factor

    def latent_scale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def max_frames(self) -> int | None:
        """The most frames the denoiser takes (AnimateDiff: its positional-encoding length), or None."""
        return None

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
        most = self.max_frames()
        if most is not None and count > most:
            raise InputError(input_name, f"{count} frames given; this model's motion module takes at most {most} "
                                         "(its positional encoding length); load fewer frames")
        multiple = self.pixel_multiple()
        if height % multiple or width % multiple:
            raise InputError(input_name, f"{width}x{height} frames do not fit this model, which needs width "
                                         f"and height in multiples of {multiple} (e.g. "
                                         f"{max(multiple, width // multiple * multiple)}x"
                                         f"{max(multiple, height // multiple * multiple)}); set custom_width and "
                                         "custom_height on Load Reference Video")

    def encode_video(self, frames: torch.Tensor, input_name: str = "frames", progress=None) -> torch.Tensor:
        self.check_frames(frames, input_name)
        pixels = rearrange(frames, "f h w rgb -> f rgb h w").to(self.device, self.dtype) * 2 - 1
        fitting = max(1, ENCODE_PART_PIXELS // (pixels.shape[2] * pixels.shape[3]))
        chunk = min(self.options.vae_decode_chunk or pixels.shape[0], fitting)
        parts, done = [], 0
        with torch.no_grad(), self.hold(self.vae):
            for part in pixels.split(chunk):
                parts.append(self.vae.encode(part).latent_dist.mode())
                done += part.shape[0]
                if progress is not None:
                    progress(done, pixels.shape[0])
        latents = torch.cat(parts) * self.vae.config.scaling_factor
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
