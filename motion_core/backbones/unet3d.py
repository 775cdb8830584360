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

import json
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import InputError
from .base import ModelOptions, describe_contents, module_dtype, part_class, save_pipeline_folder
from .latent_unet import LatentUNetBackbone, set_attention
from .sites import MotionSite, unet_motion_sites

PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
WEIGHTED_PARTS = ("unet", "vae", "text_encoder")
SUPPORTED = ("a ModelScope/ZeroScope-family text-to-video diffusers folder (model_index.json naming a "
             "UNet3DConditionModel unet, with unet, vae, text_encoder, tokenizer and scheduler subfolders)")


PIPELINE_CLASS = "TextToVideoSDPipeline"
"""What ``model_index.json`` of ModelScope/ZeroScope folders names as their pipeline."""

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
        raise InputError(input_name, f"{folder.name!r} has no model_index.json ({describe_contents(folder)}); "
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
                                         f"({describe_contents(folder / part)}); only safetensors are loaded (never "
                                         "pickle files) — convert the weights to safetensors first")
    return index


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


class UNet3DBackbone(LatentUNetBackbone):
    """A loaded ModelScope/ZeroScope-family model (see the module docstring)."""

    family = "unet3d"
    describe = SUPPORTED

    @classmethod
    def recognises(cls, path: Path, parts=None) -> bool:
        return Path(path).is_dir() and part_class(Path(path), "unet") == "UNet3DConditionModel"

    @classmethod
    def check_files(cls, path: Path, input_name: str = "model", parts=None) -> None:
        read_model_index(path, input_name)

    @classmethod
    def load(cls, path: Path, options: ModelOptions, input_name: str = "model", parts=None) -> UNet3DBackbone:
        return load_unet3d(path, options, input_name)

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
        return spatial_transformers(module)


def spatial_transformers(unet: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every spatial ``Transformer2DModel`` of a video UNet (appearance sites)."""
    from diffusers.models.transformers.transformer_2d import Transformer2DModel

    return [(name, m) for name, m in unet.named_modules() if isinstance(m, Transformer2DModel)]


def temporal_transformers(unet: nn.Module) -> list[MotionSite]:
    """Every ``TransformerTemporalModel`` of a diffusers ``UNet3DConditionModel``, in data-flow order
    (:func:`~motion_core.backbones.sites.unet_motion_sites`)."""
    from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

    return unet_motion_sites(unet, TransformerTemporalModel, "unet3d")


def save_folder(folder: str | Path, unet, vae, text_encoder, tokenizer, scheduler,
                pipeline_class: str = PIPELINE_CLASS) -> Path:
    """Write a diffusers pipeline folder of a UNet model as ModelScope/ZeroScope folders are laid out
    (:func:`~.base.save_pipeline_folder`; ``pipeline_class``: the pipeline the index names,
    AnimateDiff folders name ``AnimateDiffPipeline``). Returns the folder."""
    return save_pipeline_folder(folder, {"unet": unet, "vae": vae, "text_encoder": text_encoder,
                                         "tokenizer": tokenizer, "scheduler": scheduler}, pipeline_class)
