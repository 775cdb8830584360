"""The pack's models in ComfyUI's model management (imported through ``_comfy`` only).

ComfyUI can only make room for a model, or evict one for another workflow, when it was loaded
through a ``ModelPatcher`` registered by ``comfy.model_management.load_models_gpu`` (read in
ComfyUI 0.3.75 and 0.33). A diffusers model cannot be a patcher's
model (the patcher assigns ``model.device``, a read-only property there), so the patcher wraps
:class:`VideoModelWeights`, a plain container of the backbone's :meth:`weight_modules`.

Before a node computes with a model it asks ComfyUI to load it with the memory the step needs
(:func:`load`): ComfyUI evicts other models as needed and moves the container to the device (back
from the offload device if an earlier eviction, e.g. ``POST /free`` with ``unload_models``, moved
it there). Afterwards it stays registered, so the next workflow can evict it. Registration holds
weak references: each patcher lives exactly as long as its backbone (a weak-keyed table here).
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import comfy.model_management
import comfy.model_patcher
import torch

from ..motion_core.backbones.base import VideoBackbone
from ..motion_core.backbones.fp8 import dequantised_growth
from ..motion_core.backbones.single_files import safetensors_header
from ..motion_core.errors import InputError

MIB = 1024 ** 2
TASKS = ("encode", "decode", "invert", "sample", "train")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")

_PATCHERS: weakref.WeakKeyDictionary[VideoBackbone, comfy.model_patcher.ModelPatcher] = weakref.WeakKeyDictionary()
_AUXILIARY: weakref.WeakKeyDictionary[torch.nn.Module, comfy.model_patcher.ModelPatcher] = weakref.WeakKeyDictionary()


class VideoModelWeights(torch.nn.Module):
    """What ComfyUI's memory manager sees of a loaded video model: its weight modules, by name
    (ComfyUI's log says "Requested to load VideoModelWeights")."""

    def __init__(self, modules: dict[str, torch.nn.Module]):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)


class AuxiliaryWeights(torch.nn.Module):
    """What ComfyUI's memory manager sees of a model that works beside a video model (a pose
    ControlNet): the diffusers model as ``weights``, in a container for the same reason as
    :class:`VideoModelWeights`."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.weights = module


def patcher(backbone: VideoBackbone) -> comfy.model_patcher.ModelPatcher:
    """The backbone's patcher (made on first use). A backbone that offloads itself (``offload``
    model) is registered as a model of the offload device: ComfyUI must not move its parts, which
    :meth:`~VideoBackbone.hold` moves to the device one at a time."""
    return _cached_patcher(_PATCHERS, backbone, lambda: VideoModelWeights(backbone.weight_modules()),
                           None if backbone.offloads else backbone.device)


def auxiliary_patcher(module: torch.nn.Module, backbone: VideoBackbone) -> comfy.model_patcher.ModelPatcher:
    """The patcher of a model that works beside ``backbone`` (a pose ControlNet), made on first use: on
    ``backbone``'s device, so ComfyUI loads and evicts it like the backbone itself."""
    return _cached_patcher(_AUXILIARY, module, lambda: AuxiliaryWeights(module), backbone.device)


def _cached_patcher(table: weakref.WeakKeyDictionary, key, container, device: torch.device | None):
    """``table[key]``, made on first use: a patcher of ``container()`` loading to ``device`` (None: the
    offload device) and offloading to ComfyUI's offload device."""
    found = table.get(key)
    if found is None:
        offload = comfy.model_management.unet_offload_device()
        found = comfy.model_patcher.ModelPatcher(container(), load_device=device or offload, offload_device=offload)
        table[key] = found
    return found


def register_auxiliary(module: torch.nn.Module, backbone: VideoBackbone) -> torch.nn.Module:
    """Enter a freshly loaded model that works beside ``backbone`` in ComfyUI's loaded-model list."""
    _enter(auxiliary_patcher(module, backbone))
    return module


def make_room_for_files(paths: list[str], device: torch.device, dtype: torch.dtype = torch.float16) -> None:
    """Before loading a model ComfyUI does not see yet: have it evict models until the weight files
    under ``paths`` (files or folders) fit on ``device``. Estimate: their size on disk, fp8 tensors
    counted at ``dtype``'s size (the model's dtype: they load dequantised)."""
    if device.type == "cpu":
        return  # as load_models_gpu: ComfyUI frees no system memory for a load
    size = 0
    for path in paths:
        walked = os.walk(path, followlinks=True) if os.path.isdir(path) else [("", [], [path])]
        size += sum(_loaded_size(os.path.join(folder, name), dtype) for folder, _, names in walked for name in names
                    if name.endswith(WEIGHT_SUFFIXES))
    comfy.model_management.free_memory(size, device)


def _loaded_size(path: str, dtype: torch.dtype) -> int:
    """A weight file's size on disk, plus what its fp8 tensors grow by when loaded in ``dtype``."""
    size = os.path.getsize(path)
    if path.endswith(".safetensors"):
        try:
            size += dequantised_growth(safetensors_header(Path(path), "model"), dtype)
        except InputError:  # not readable: the loader says so by name
            pass
    return size


def register(backbone: VideoBackbone) -> VideoBackbone:
    """Enter a freshly loaded backbone in ComfyUI's loaded-model list (its weights are already where
    ``motion_core`` put them)."""
    _enter(patcher(backbone))
    return backbone


def _enter(model: comfy.model_patcher.ModelPatcher) -> None:
    comfy.model_management.load_models_gpu([model], force_full_load=True)


def load(backbone: VideoBackbone, task: str, latent_shape: tuple[int, ...],
         beside: tuple[torch.nn.Module, ...] = ()) -> None:
    """Ask ComfyUI to load ``backbone`` (and the models that work ``beside`` it, e.g. a pose ControlNet)
    with room for ``task`` (one of :data:`TASKS`) on latents of ``latent_shape`` ``(b, c, f, h, w)``;
    it evicts other models as needed. An offloading backbone also gets room on the device for its
    largest part, which it moves there itself."""
    needed = working_memory(backbone, task, latent_shape)
    if backbone.offloads:
        largest = max(comfy.model_management.module_size(m) for m in backbone.weight_modules().values())
        comfy.model_management.free_memory(needed + largest, backbone.device)
    models = [patcher(backbone), *(auxiliary_patcher(module, backbone) for module in beside)]
    comfy.model_management.load_models_gpu(models, memory_required=needed, force_full_load=True)


def working_memory(backbone: VideoBackbone, task: str, latent_shape: tuple[int, ...]) -> int:
    """Bytes a step needs beside the weights, by ComfyUI's own estimates for the same networks.

    The denoiser: ``BaseModel.memory_required`` (``comfy/model_base.py``, SD-family factor 1), 0.01 MiB
    per latent pixel, frame and batch item, times the dtype's size; sampling with guidance runs two
    batch items. Training keeps the activations for the backward pass: 3x that, a guess not yet
    measured at full size. The VAE, per frame of a ``vae_decode_chunk``: ``VAE.memory_used_decode`` /
    ``memory_used_encode`` of ComfyUI's AutoencoderKL (``comfy/sd.py``).
    """
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {TASKS}")
    batch, _, frames, height, width = latent_shape
    size = comfy.model_management.dtype_size(backbone.dtype)
    if task in ("encode", "decode"):
        chunk = min(backbone.options.vae_decode_chunk or frames, frames)
        pixels = height * width * backbone.latent_scale() ** 2
        # ComfyUI's decode estimate is per latent pixel times 64, the pixels of one at its VAEs' 8×: per pixel here
        # (the Wan 2.2 VAE's latent pixel is 256)
        per_frame = (2178 if task == "decode" else 1767) * pixels
        return int(per_frame * chunk * size)
    denoiser = batch * frames * height * width * size * 0.01 * MIB
    return int(denoiser * {"invert": 1, "sample": 2, "train": 3}[task])

