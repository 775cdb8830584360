"""The interface every video backbone implements, and the options users choose when loading one."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import InputError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
OFFLOAD = ("none", "model")
ATTENTION = ("sdpa", "classic")


@dataclass(frozen=True)
class ModelOptions:
    """How to hold a model in memory (the Load Video Model node's options).

    Attributes:
        dtype: "auto" (fp16 on CUDA, fp32 on CPU), "fp32", "fp16" or "bf16".
        device: "auto" (CUDA when available), "cpu" or a torch device string.
        offload: "none" keeps every part on the device; "model" keeps parts on the CPU and moves
            each one to the device only while it runs (text encoder, UNet, VAE in turn).
        vae_decode_chunk: frames encoded/decoded by the VAE at a time (0 = all at once).
        attention: "sdpa" runs attention through PyTorch's ``scaled_dot_product_attention``
            (memory-efficient / flash kernels where the device has them); "classic" forms the
            full attention matrix (diffusers' ``AttnProcessor``), for comparison and old devices.
    """

    dtype: str = "auto"
    device: str = "auto"
    offload: str = "none"
    vae_decode_chunk: int = 8
    attention: str = "sdpa"

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            return torch.device(self.device)
        except RuntimeError as err:
            raise InputError("device", f"{self.device!r} is not a device; use auto, cpu or cuda") from err

    def torch_dtype(self) -> torch.dtype:
        if self.dtype == "auto":
            return torch.float16 if self.torch_device().type == "cuda" else torch.float32
        if self.dtype not in DTYPES:
            raise InputError("dtype", f"{self.dtype!r} is not valid; use auto, {', '.join(DTYPES)}")
        return DTYPES[self.dtype]

    def validate(self) -> ModelOptions:
        self.torch_dtype()
        if self.offload not in OFFLOAD:
            raise InputError("offload", f"{self.offload!r} is not valid; use one of {', '.join(OFFLOAD)}")
        if self.attention not in ATTENTION:
            raise InputError("attention", f"{self.attention!r} is not valid; use one of {', '.join(ATTENTION)}")
        if not isinstance(self.vae_decode_chunk, int) or self.vae_decode_chunk < 0:
            raise InputError("vae_decode_chunk", f"{self.vae_decode_chunk!r} is not valid; use 0 (all) or more")
        return self


def config_fingerprint(family: str, config: dict) -> str:
    """``family:hash`` of a model config's public keys: equal for every fine-tune of one
    architecture (weights do not enter it), different when any architecture setting differs."""
    keys = {k: v for k, v in config.items() if not k.startswith("_")}
    digest = hashlib.sha256(json.dumps(keys, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{family}:{digest}"


NoisePredictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``predict(x_t (b, c, f, h, w), t (b,) or scalar, text (b, tokens, dim)) -> eps (b, c, f, h, w)``."""


class VideoBackbone(ABC):
    """A text-to-video diffusion model, as the pipeline uses it.

    The ``unet`` is shared by every graph branch and ComfyUI's cache: nothing may change it.
    Adapters work on private views of it (see ``motion_core.adapters``).
    """

    family: str
    unet: torch.nn.Module
    scheduler_config: dict
    device: torch.device
    dtype: torch.dtype

    @property
    def fingerprint(self) -> str:
        """Identifies the UNet architecture, for checking adapter files (see :func:`config_fingerprint`)."""
        return config_fingerprint(self.family, dict(self.unet.config))

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """``abar_t`` for t = 0..T-1, float32 on the CPU."""
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_config(self.scheduler_config).alphas_cumprod.float()

    @abstractmethod
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """Text embeddings ``(len(prompts), tokens, dim)`` in the model dtype, on the device."""

    @abstractmethod
    def encode_video(self, frames: torch.Tensor, input_name: str = "frames") -> torch.Tensor:
        """``(f, h, w, 3)`` frames in [0, 1] -> latents ``(1, c, f, h / s, w / s)`` (scaled).

        Raises :class:`InputError` naming ``input_name`` for frames the model cannot take."""

    @abstractmethod
    def decode_latents(self, latents: torch.Tensor, progress=None) -> torch.Tensor:
        """Latents ``(b, c, f, h, w)`` -> frames ``(b·f, H, W, 3)`` float32 in [0, 1] on the CPU."""

    @abstractmethod
    def predict_noise(self, unet: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor,
                      text: torch.Tensor) -> torch.Tensor:
        """Run ``unet`` (the base or a private view of it) on one batch: the predicted noise."""

    @abstractmethod
    def latent_scale(self) -> int:
        """Pixels per latent along height and width (the VAE's downscaling; 8 for ModelScope)."""

    @abstractmethod
    def pixel_multiple(self) -> int:
        """Width and height of frames must be multiples of this."""
