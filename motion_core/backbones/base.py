"""The interface every model family implements, the family registry, and the options users choose
when loading a model."""

from __future__ import annotations

import contextlib
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from ..errors import InputError
from ..sampling import Sampling
from .sites import MotionSite

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


def describe_contents(path: Path) -> str:
    """A short account of what a path holds, for error messages ("it holds unet/, vae/ and 3 more")."""
    path = Path(path)
    if not path.is_dir():
        return "it is a file" if path.is_file() else "it does not exist"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    if not names:
        return "it is empty"
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return f"it holds {shown}"


def part_class(folder: Path, part: str) -> str | None:
    """The class a diffusers folder's ``model_index.json`` names for ``part`` (``"unet"``, ``"transformer"``…),
    or None (no such file, not JSON, no such part): how the families recognise their folders cheaply."""
    try:
        entry = json.loads((Path(folder) / "model_index.json").read_text()).get(part)
    except (OSError, ValueError, AttributeError):
        return None
    return entry[1] if isinstance(entry, list) and len(entry) == 2 else None


FAMILIES: dict[str, type[VideoBackbone]] = {}
"""Every model family by :attr:`VideoBackbone.family` (filled as each family's module is imported)."""

Parts = Mapping[str, Path]
"""Files a model needs besides its main file or folder, by part name (e.g. AnimateDiff's
``{"motion_module": …, "tokenizer": …}``); each family lists the names it takes in
:attr:`VideoBackbone.parts`."""

DenoiserCall = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``call(module, x_t (b, c, f, h, w), t (b,) or scalar, text (b, tokens, dim)) -> prediction (b, c, f, h, w)``."""


@dataclass(frozen=True)
class Denoiser:
    """What training needs of a backbone: the shared denoiser, how to call it, its diffusion process.

    Attributes:
        module: the shared denoiser (a UNet or a transformer); only ever read.
        call: runs ``module`` or a private view of it; casts its inputs to the module's dtype.
        sampling: the family's :class:`~motion_core.sampling.Sampling` (noising, targets, timesteps).
        checkpoint_blocks: attribute names of the blocks gradient checkpointing wraps
            (:mod:`motion_core.checkpointing`).
    """

    module: torch.nn.Module
    call: DenoiserCall
    sampling: Sampling
    checkpoint_blocks: tuple[str, ...] = ()


def module_dtype(module: torch.nn.Module) -> torch.dtype:
    """The dtype most of a module's floating-point weights are in: what its inputs are cast to.

    Most, not the first: some models keep a few modules in fp32 inside a half-precision model (Wan
    keeps its time embedding, norms and modulation tables in fp32).
    """
    counts: dict[torch.dtype, int] = {}
    for parameter in module.parameters():
        if parameter.is_floating_point():
            counts[parameter.dtype] = counts.get(parameter.dtype, 0) + parameter.numel()
    return max(counts, key=counts.get) if counts else torch.float32


@contextlib.contextmanager
def on_device_while(module: torch.nn.Module, device: torch.device, offload: bool) -> Iterator[torch.nn.Module]:
    """Model offloading: with ``offload``, move ``module`` to ``device`` for the block and back to the
    CPU after it (freeing the device's cache); without, leave it where it is."""
    if not offload:
        yield module
        return
    module.to(device)
    try:
        yield module
    finally:
        module.to("cpu")
        torch.cuda.empty_cache()


class VideoBackbone(ABC):
    """A text-to-video diffusion model family, as the pipeline uses it.

    A family is one module in ``motion_core/backbones/`` with one subclass of this class; defining
    the subclass registers it in :data:`FAMILIES`, and :func:`motion_core.backbones.load_backbone`
    picks the family whose :meth:`recognises` accepts the user's files. What a family declares:

    - loading: :attr:`describe`, :attr:`parts` (extra files beside the main one), :meth:`recognises`,
      :meth:`check_files`, :meth:`load`;
    - the denoiser: :attr:`denoiser_module`, :meth:`call_denoiser` (one call, casting its inputs),
      :attr:`sampling` (its diffusion process), :attr:`checkpoint_blocks`;
    - where motion lives: :meth:`owns`, :meth:`find_motion_sites` (with their layout),
      :meth:`find_appearance_sites`;
    - frames and sizes: :meth:`latent_frames`, :attr:`frame_multiple`, :meth:`pixel_multiple`,
      :meth:`latent_scale`, :attr:`latent_format`; text and video: :meth:`encode_prompt`, :meth:`encode_video`,
      :meth:`decode_latents`; memory: :meth:`hold`, :meth:`weight_modules`, :attr:`offloads`.

    The denoiser is shared by every graph branch and ComfyUI's cache: nothing may change it.
    Adapters work on private views of it (see ``motion_core.adapters``).
    """

    family: ClassVar[str]
    describe: ClassVar[str]
    """What files the family loads, for messages (e.g. "a ModelScope/ZeroScope diffusers folder")."""
    parts: ClassVar[Mapping[str, str]] = {}
    """Extra files the family can take beside the main path, name -> what it is (for messages)."""
    checkpoint_blocks: ClassVar[tuple[str, ...]] = ()
    frame_multiple: ClassVar[int] = 1
    """Pixel frame counts the model takes are ``1 + frame_multiple·k`` (Wan: 4) or any (1)."""
    frame_rate: ClassVar[float | None] = None
    """The frame rate the model was trained at (Wan: 16), to which reference clips are resampled when
    their rate is known; None: any rate (the clip's frames are taken as they are)."""
    latent_format: ClassVar[str | None] = None
    """The family's latent space by the name of ComfyUI's latent format that describes it (``SD15``,
    ``Wan21``), whose preview factors turn latents into rough colours while sampling; None: no
    latent previews."""

    denoiser_module: torch.nn.Module
    sampling: Sampling
    options: ModelOptions
    device: torch.device
    dtype: torch.dtype

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "family" in cls.__dict__:
            FAMILIES[cls.family] = cls

    # --- loading --------------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def recognises(cls, path: Path, parts: Parts | None = None) -> bool:
        """Whether ``path`` (with the extra ``parts``) holds this family's files (cheap: reads no weights)."""

    @classmethod
    @abstractmethod
    def check_files(cls, path: Path, input_name: str = "model", parts: Parts | None = None) -> None:
        """Check the files at ``path`` and ``parts`` without loading weights; :class:`InputError` naming
        ``input_name`` (or the part) for what is wrong."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path, options: ModelOptions, input_name: str = "model",
             parts: Parts | None = None) -> VideoBackbone:
        """Load the files at ``path`` and ``parts``; :class:`InputError` naming ``input_name`` (or the
        part) for what does not fit."""

    # --- the denoiser ---------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """Identifies the denoiser's architecture, for checking adapter files (see :func:`config_fingerprint`)."""
        return config_fingerprint(self.family, dict(self.denoiser_module.config))

    @staticmethod
    @abstractmethod
    def call_denoiser(module: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Run ``module`` (the base denoiser or a private view of it) on one batch: its prediction.

        Inputs are cast to the module's dtype, so any caller (fp32 latents, autocast or not) can use it.
        """

    def denoiser(self) -> Denoiser:
        """The denoiser as training takes it."""
        return Denoiser(self.denoiser_module, self.call_denoiser, self.sampling, self.checkpoint_blocks)

    @contextlib.contextmanager
    def hold(self, module: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """Keep ``module`` on the device for the block (families with offloading move it there and back)."""
        yield module

    # --- memory ---------------------------------------------------------------------------------

    def weight_modules(self) -> dict[str, torch.nn.Module]:
        """The modules that hold the model's weights, by name: what a host's memory manager moves to
        the device and offloads as a whole (ComfyUI's, in ``nodes/memory.py``). Every module the
        model computes with must be among them (or inside one). Default: the denoiser alone."""
        return {"denoiser": self.denoiser_module}

    @property
    def offloads(self) -> bool:
        """Whether the model keeps its weights in system memory and moves each part to the device only
        while it runs (:meth:`hold`): a memory manager must then leave the weights where they are."""
        return False

    # --- where motion lives ---------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def owns(cls, module: torch.nn.Module) -> bool:
        """Whether ``module`` is this family's denoiser (or a private view of one)."""

    @classmethod
    @abstractmethod
    def find_motion_sites(cls, module: torch.nn.Module) -> list[MotionSite]:
        """The motion sites of one of this family's denoisers, in data-flow order (any device, ``meta`` too)."""

    @classmethod
    def find_appearance_sites(cls, module: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
        """``(name, transformer)`` of the spatial transformers (MotionDirector's spatial LoRA); none by default."""
        return []

    # --- frames, sizes, text and video ----------------------------------------------------------

    def latent_frames(self, frames: int) -> int:
        """Latent frames for ``frames`` pixel frames (one each unless the VAE compresses time)."""
        return frames

    @abstractmethod
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """Text embeddings ``(len(prompts), tokens, dim)`` in the model dtype, on the device."""

    @abstractmethod
    def encode_video(self, frames: torch.Tensor, input_name: str = "frames", progress=None) -> torch.Tensor:
        """``(f, h, w, 3)`` frames in [0, 1] -> latents ``(1, c, f, h / s, w / s)`` (scaled);
        ``progress(frames done, f)`` after each part the VAE encodes at once (raising from it cancels).

        Raises :class:`InputError` naming ``input_name`` for frames the model cannot take."""

    @abstractmethod
    def decode_latents(self, latents: torch.Tensor, progress=None) -> torch.Tensor:
        """Latents ``(b, c, f, h, w)`` -> frames ``(b·f, H, W, 3)`` float32 in [0, 1] on the CPU."""

    @abstractmethod
    def latent_scale(self) -> int:
        """Pixels per latent along height and width (the VAE's downscaling; 8 for ModelScope)."""

    @abstractmethod
    def pixel_multiple(self) -> int:
        """Width and height of frames must be multiples of this."""


def save_pipeline_folder(folder: str | Path, parts: dict, pipeline_class: str, index_entries: dict | None = None) -> Path:
    """Write a diffusers pipeline folder: each of ``parts`` (name -> model, tokenizer or scheduler) by its
    own ``save_pretrained`` (safetensors) in its subfolder, and a ``model_index.json`` naming
    ``pipeline_class``, each part's library and class, and ``index_entries`` (e.g. Wan 2.2's
    ``boundary_ratio``). Returns the folder."""
    import diffusers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": pipeline_class, "_diffusers_version": diffusers.__version__, **(index_entries or {})}
    for name, part in parts.items():
        if isinstance(part, torch.nn.Module):
            part.save_pretrained(folder / name, safe_serialization=True)
        else:  # tokenizer, scheduler
            part.save_pretrained(folder / name)
        library = "diffusers" if type(part).__module__.startswith("diffusers") else "transformers"
        index[name] = [library, type(part).__name__]
    (folder / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return folder
