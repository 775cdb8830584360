"""AnimateDiff: a Stable Diffusion 1.5 UNet with motion modules, from the files ComfyUI users hold.

What loads (the main path, plus :attr:`AnimateDiffBackbone.parts`):

- an SD1.5 checkpoint as one file in its original (LDM) keys, ``.safetensors`` or ``.ckpt``
  (``models/checkpoints``), with a **motion module** file (``models/animatediff_models``) and the
  **tokenizer** folder (ComfyUI ships SD1.5's in ``comfy/sd1_tokenizer``);
- an SD1.5 diffusers folder (``unet`` a ``UNet2DConditionModel``) with a motion module (a file, or a
  diffusers ``MotionAdapter`` folder);
- an AnimateDiff diffusers folder (``unet`` a ``UNetMotionModel``, motion modules inside).

Nothing reaches for a hub: the architecture settings single files need ship with the pack
(``configs/sd15``; the ``configs`` part replaces them, e.g. for tiny test models), ``.ckpt`` files are
read with ``weights_only`` (never pickle code). Motion-module versions are told from their tensors
(:func:`motion_module_info`): a mid block means v2; positional encodings of length 24 mean v1, of 32
v2/v3; none at all means AnimateLCM (64 frames, as AnimateDiff-Evolved assumes).

The family: ``UNetMotionModel`` (diffusers) as the denoiser, ε-prediction on AnimateDiff's linear
schedule, DDIM sampling and inversion; motion sites are the motion modules'
``AnimateDiffTransformer3D`` s (layout ``frames``, like UNet3D's temporal transformers, but each
block adds a sinusoidal frame-position encoding before its attentions); the frame count is capped by
the positional-encoding length.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError
from .base import ModelOptions, Parts, describe_contents, module_dtype, part_class
from .latent_unet import LatentUNetBackbone, check_tokenizer, set_attention
from .single_files import read_state_dict, tensor_names
from .sites import MotionSite, unet_motion_sites
from .unet3d import spatial_transformers

SD15_CONFIGS = Path(__file__).parent / "configs" / "sd15"
"""The SD1.5 + AnimateDiff architecture settings shipped with the pack (no weights)."""

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
UNET_PREFIX, VAE_PREFIX, TEXT_PREFIX = "model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer."
PE_KEY = re.compile(r"\.pos_encoder\.pe$")
SUPPORTED = ("a Stable Diffusion 1.5 checkpoint (one file, e.g. from models/checkpoints) or SD1.5 diffusers folder "
             "with an AnimateDiff motion module, or an AnimateDiff diffusers folder")
PIPELINE_UNETS = {"UNet2DConditionModel": "sd15", "UNetMotionModel": "animatediff"}
LCM_FRAMES = 64
"""Frames assumed for motion modules without positional encodings (AnimateLCM), as AnimateDiff-Evolved does."""


# --- reading files ---------------------------------------------------------------------------------

def is_sd15_checkpoint(names) -> bool:
    """Whether tensor names are an SD1.x LDM checkpoint (a UNet and a CLIP ViT-L text encoder)."""
    return any(n.startswith(UNET_PREFIX) for n in names) and any(n.startswith(TEXT_PREFIX) for n in names)


def _unet_kind(folder: Path) -> str | None:
    """"sd15" (a Stable Diffusion folder), "animatediff" (motion modules inside) or None."""
    return PIPELINE_UNETS.get(part_class(folder, "unet"))


# --- motion modules -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class MotionModuleInfo:
    """What a motion-module file is, read from its tensors.

    Attributes:
        version: ``"v1"``, ``"v2"``, ``"v3"`` or ``"animatelcm"`` (v3 and later v2-style files without a
            mid block cannot be told apart by their tensors: both read as ``"v3"``).
        frames: the most frames it takes (its positional-encoding length; 64 without one).
        config: the diffusers ``MotionAdapter`` settings its tensors imply.
    """

    version: str
    frames: int
    config: dict


def motion_module_info(state: dict[str, torch.Tensor], configs: Path = SD15_CONFIGS,
                       input_name: str = "motion_module") -> MotionModuleInfo:
    """Tell an original-format motion module's version and architecture from its tensors.

    Widths come from each block's group norm, layer counts from the module indices, the mid block
    and the positional-encoding length from their tensors; heads and group-norm groups (which no
    tensor shows) from ``configs/motion_adapter/config.json``.
    """
    norms = {}
    for name, tensor in state.items():
        match = re.fullmatch(r"(down_blocks|up_blocks)\.(\d+)\.motion_modules\.(\d+)\.temporal_transformer\.norm\.weight",
                             name)
        if match:
            norms[(match[1], int(match[2]), int(match[3]))] = tensor.shape[0]
    down = sorted({(block, module) for (kind, block, module) in norms if kind == "down_blocks"})
    if not down:
        highest = sorted(state)[:3]
        raise InputError(input_name, f"the file holds no AnimateDiff motion modules (no 'down_blocks.N.motion_modules."
                                     f"M.temporal_transformer' tensors; it starts with {highest}); choose a motion "
                                     "module from models/animatediff_models (mm_sd_v15_v2, v3_sd15_mm, AnimateLCM…)")
    levels = max(block for block, _ in down) + 1
    widths = [norms[("down_blocks", i, 0)] for i in range(levels)]
    layers = 1 + max(module for block, module in down if block == 0)
    pe = [tensor for name, tensor in state.items() if PE_KEY.search(name)]
    mid = any(name.startswith("mid_block.") for name in state)
    transformer_layers = 1 + max(int(m[1]) for m in (re.search(r"transformer_blocks\.(\d+)\.", n) for n in state) if m)
    frames = pe[0].shape[1] if pe else LCM_FRAMES
    version = "v2" if mid else "animatelcm" if not pe else "v1" if frames == 24 else "v3"
    settings = json.loads((Path(configs) / "motion_adapter" / "config.json").read_text())
    config = {
        "block_out_channels": widths, "motion_layers_per_block": layers,
        "motion_transformer_layers_per_block": transformer_layers, "motion_mid_block_layers_per_block": 1,
        "motion_num_attention_heads": settings.get("motion_num_attention_heads", 8),
        "motion_norm_num_groups": settings.get("motion_norm_num_groups", 32),
        "motion_max_seq_length": frames, "use_motion_mid_block": mid,
    }
    return MotionModuleInfo(version, frames, config)


def load_motion_adapter(path: Path, dtype: torch.dtype, configs: Path = SD15_CONFIGS,
                        input_name: str = "motion_module"):
    """A diffusers ``MotionAdapter`` from an original-format file or a diffusers folder, and its info.

    Original files are converted by diffusers' own key mapping; their positional encodings are not
    loaded but recomputed by diffusers (the same sinusoidal formula), so only their length is used.
    """
    from diffusers import MotionAdapter
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    path = Path(path)
    if path.is_dir():
        try:
            adapter = MotionAdapter.from_pretrained(path, torch_dtype=dtype, local_files_only=True)
        except (OSError, ValueError) as err:
            raise InputError(input_name, f"{path.name!r} is not a diffusers MotionAdapter folder "
                                         f"({str(err).splitlines()[0]})") from err
        config = dict(adapter.config)
        frames = config["motion_max_seq_length"]
        return adapter, MotionModuleInfo("v2" if config["use_motion_mid_block"] else "diffusers", frames, config)
    state = read_state_dict(path, input_name)
    info = motion_module_info(state, configs, input_name)
    adapter = MotionAdapter(**info.config)
    missing, unexpected = adapter.load_state_dict(convert_animatediff_checkpoint_to_diffusers(state), strict=False)
    missing = [name for name in missing if not name.endswith("pos_embed.pe")]
    if missing or unexpected:
        raise InputError(input_name, f"{path.name!r} does not fit a {info.version} motion module: "
                                     f"{len(missing)} tensors missing (e.g. {missing[:2]}), {len(unexpected)} "
                                     f"unexpected (e.g. {unexpected[:2]})")
    return adapter.to(dtype), info


# --- Stable Diffusion parts -----------------------------------------------------------------------

def load_sd15_single_file(path: Path, dtype: torch.dtype, configs: Path, tokenizer_folder: Path | None,
                          input_name: str):
    """UNet2D, VAE, CLIP text encoder and tokenizer of an SD1.5 LDM single file, offline."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    state = read_state_dict(path, input_name)
    if not is_sd15_checkpoint(state):
        raise InputError(input_name, f"{Path(path).name!r} is not a Stable Diffusion 1.5 checkpoint (it has no "
                                     f"'{UNET_PREFIX}…' and '{TEXT_PREFIX}…' tensors); choose {SUPPORTED}")
    try:
        unet = UNet2DConditionModel.from_single_file(state, config=str(configs), subfolder="unet",
                                                     local_files_only=True, torch_dtype=dtype)
        vae = AutoencoderKL.from_single_file(state, config=str(configs), subfolder="vae", local_files_only=True,
                                             torch_dtype=dtype)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise InputError(input_name, f"{Path(path).name!r} could not be read as SD1.5 "
                                     f"({str(err).splitlines()[0][:300]})") from err
    text_encoder = CLIPTextModel(CLIPTextConfig.from_json_file(Path(configs) / "text_encoder" / "config.json"))
    has_level = any(name.startswith("text_model.") for name in text_encoder.state_dict())
    text_state = {}
    for name, tensor in state.items():
        if name.startswith(TEXT_PREFIX):
            name = name[len(TEXT_PREFIX):]
            text_state[name if has_level else name.removeprefix("text_model.")] = tensor
    missing, unexpected = text_encoder.load_state_dict(text_state, strict=False)
    unexpected = [name for name in unexpected if not name.endswith("position_ids")]
    if missing or unexpected:
        raise InputError(input_name, f"{Path(path).name!r}: its text encoder does not fit SD1.5's CLIP "
                                     f"({len(missing)} tensors missing, e.g. {missing[:2]}; {len(unexpected)} "
                                     f"unexpected, e.g. {unexpected[:2]})")
    return unet, vae, text_encoder.to(dtype), load_tokenizer(tokenizer_folder, "tokenizer")


def load_tokenizer(folder: Path | None, input_name: str):
    """A CLIP tokenizer from a folder with ``vocab.json`` and ``merges.txt`` (77 tokens long)."""
    from transformers import CLIPTokenizer

    if folder is None or not (Path(folder) / "vocab.json").is_file() or not (Path(folder) / "merges.txt").is_file():
        where = "no folder was given" if folder is None else f"{Path(folder).name!r} has no vocab.json and merges.txt"
        raise InputError(input_name, f"a single-file checkpoint needs the SD1.5 CLIP tokenizer folder ({where}); "
                                     "ComfyUI ships it in comfy/sd1_tokenizer")
    return CLIPTokenizer.from_pretrained(folder, model_max_length=77)


def load_sd15_folder(folder: Path, dtype: torch.dtype, input_name: str):
    """UNet, VAE, text encoder and tokenizer of a Stable Diffusion / AnimateDiff diffusers folder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel, UNetMotionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    unet_class = UNetMotionModel if _unet_kind(folder) == "animatediff" else UNet2DConditionModel
    try:
        unet = unet_class.from_pretrained(folder, subfolder="unet", torch_dtype=dtype, use_safetensors=True,
                                          local_files_only=True)
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=dtype, use_safetensors=True,
                                            local_files_only=True)
        text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", dtype=dtype,
                                                     use_safetensors=True)
        tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
    except (OSError, ValueError) as err:
        raise InputError(input_name, f"{folder.name!r} could not be loaded: {str(err).splitlines()[0]}") from err
    return unet, vae, text_encoder, tokenizer


# --- the family ------------------------------------------------------------------------------------

class AnimateDiffBackbone(LatentUNetBackbone):
    """A loaded SD1.5 + AnimateDiff model (see the module docstring).

    ``motion_module``: the :class:`MotionModuleInfo` of its motion modules (version, frame cap).
    """

    family = "animatediff"
    describe = SUPPORTED
    parts = {
        "motion_module": "an AnimateDiff motion module for SD1.5 (a file from models/animatediff_models, or a "
                         "diffusers MotionAdapter folder)",
        "tokenizer": "the SD1.5 CLIP tokenizer folder (vocab.json, merges.txt; ComfyUI's comfy/sd1_tokenizer), for "
                     "single-file checkpoints",
        "configs": "a folder of diffusers configs (unet, vae, text_encoder, scheduler, motion_adapter) replacing the "
                   "SD1.5 ones shipped with the pack (for non-standard sizes)",
    }

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler_config: dict, options: ModelOptions,
                 motion_module: MotionModuleInfo):
        super().__init__(unet, vae, text_encoder, tokenizer, scheduler_config, options)
        self.motion_module = motion_module

    # --- files ------------------------------------------------------------------------------------

    @classmethod
    def recognises(cls, path: Path, parts: Parts | None = None) -> bool:
        path = Path(path)
        if path.is_dir():
            return _unet_kind(path) is not None
        if path.is_file() and path.suffix in CHECKPOINT_SUFFIXES:
            try:
                return is_sd15_checkpoint(tensor_names(path, "model"))
            except InputError:
                return False
        return False

    @classmethod
    def check_files(cls, path: Path, input_name: str = "model", parts: Parts | None = None) -> None:
        path, parts = Path(path), dict(parts or {})
        motion = parts.get("motion_module")
        if path.is_dir():
            kind = _unet_kind(path)
            if kind is None:
                raise InputError(input_name, f"{path.name!r} is not a Stable Diffusion or AnimateDiff diffusers "
                                             f"folder ({describe_contents(path)}); choose {SUPPORTED}")
            if kind == "sd15" and motion is None:
                raise InputError("motion_module", f"{path.name!r} is a Stable Diffusion folder: choose a motion module "
                                                  "(models/animatediff_models) to animate it")
            if kind == "animatediff" and motion is not None:
                raise InputError("motion_module", f"{path.name!r} is an AnimateDiff folder with its own motion modules; "
                                                  "choose none")
        elif not (path.is_file() and is_sd15_checkpoint(tensor_names(path, input_name))):
            raise InputError(input_name, f"{path.name!r} is not a Stable Diffusion 1.5 checkpoint; choose {SUPPORTED}")
        elif motion is None:
            raise InputError("motion_module", f"{path.name!r} is a Stable Diffusion 1.5 checkpoint: choose a motion "
                                              "module (models/animatediff_models) to animate it")
        if motion is not None and not Path(motion).exists():
            raise InputError("motion_module", f"{Path(motion).name!r} not found")

    @classmethod
    def load(cls, path: Path, options: ModelOptions, input_name: str = "model",
             parts: Parts | None = None) -> AnimateDiffBackbone:
        options.validate()
        cls.check_files(path, input_name, parts)
        parts = dict(parts or {})
        # Weights are created outside inference mode (ComfyUI runs nodes in it), as for UNet3D.
        with torch.inference_mode(False):
            return cls._load(Path(path), options, input_name, parts)

    @classmethod
    def _load(cls, path: Path, options: ModelOptions, input_name: str, parts: dict) -> AnimateDiffBackbone:
        from diffusers import UNetMotionModel

        dtype, configs = options.torch_dtype(), Path(parts.get("configs") or SD15_CONFIGS)
        scheduler_config = json.loads((configs / "scheduler" / "scheduler_config.json").read_text())
        if path.is_dir():
            unet, vae, text_encoder, tokenizer = load_sd15_folder(path, dtype, input_name)
        else:
            unet, vae, text_encoder, tokenizer = load_sd15_single_file(path, dtype, configs, parts.get("tokenizer"),
                                                                       input_name)
        check_tokenizer(tokenizer, text_encoder, "tokenizer")
        if isinstance(unet, UNetMotionModel):
            frames = unet.config.motion_max_seq_length
            info = MotionModuleInfo("v2" if unet.config.use_motion_mid_block else "diffusers", frames, {})
            scheduler_config = _folder_scheduler(path) or scheduler_config
        else:
            adapter, info = load_motion_adapter(Path(parts["motion_module"]), torch.float32, configs)
            if len(adapter.down_blocks) != len(unet.down_blocks):
                raise InputError("motion_module", f"the motion module has {len(adapter.down_blocks)} levels but the "
                                                  f"checkpoint's UNet {len(unet.down_blocks)} (a 3-level module is for "
                                                  "SDXL, which this family does not load)")
            try:
                unet = UNetMotionModel.from_unet2d(unet.float(), adapter).to(dtype)
            except (RuntimeError, ValueError) as err:  # widths or layer counts that do not match the UNet
                raise InputError("motion_module", f"the {info.version} motion module does not fit this checkpoint's "
                                                  f"UNet ({str(err).splitlines()[0][:200]})") from err
        set_attention(unet, options.attention)
        set_attention(vae, options.attention)
        return cls(unet, vae, text_encoder, tokenizer, scheduler_config, options, info)

    # --- the denoiser -----------------------------------------------------------------------------

    @staticmethod
    def call_denoiser(module, x_t, t, text):
        """``UNetMotionModel`` takes ``(b, c, f, h, w)`` latents but text per frame: ``(b·f, tokens, dim)``."""
        dtype = module_dtype(module)
        frames = x_t.shape[2]
        text = text.to(dtype).repeat_interleave(frames, dim=0)
        return module(x_t.to(dtype), t, encoder_hidden_states=text).sample

    def max_frames(self) -> int:
        return self.unet.config.motion_max_seq_length

    @classmethod
    def owns(cls, module: nn.Module) -> bool:
        from diffusers import UNetMotionModel

        return isinstance(module, UNetMotionModel)

    @classmethod
    def find_motion_sites(cls, module: nn.Module) -> list[MotionSite]:
        from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

        return unet_motion_sites(module, AnimateDiffTransformer3D, cls.family)

    @classmethod
    def find_appearance_sites(cls, module: nn.Module) -> list[tuple[str, nn.Module]]:
        return spatial_transformers(module)


def _folder_scheduler(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, ValueError):
        return None
