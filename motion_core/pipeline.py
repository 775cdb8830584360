"""The motion transfer pipeline as steps on a backbone: encode, train, invert, noise, generate, decode.

Each step is one function that the nodes call one per node and the command line calls in a row::

    reference, _ = encode_reference(backbone, frames)                 # clean latents
    result = train_adapter(backbone, reference, "a car is moving")    # the motion, as an adapter
    inverted = invert_reference(backbone, reference, steps=50)       # the noise that makes the clip
    noise = make_noise(inverted, "direct", seed=0)
    video = generate(backbone, noise, "a tank in the desert", adapters=[(result.adapter, 1.0)])
    frames = decode(backbone, video)

Latents travel as :class:`VideoLatents`, which remember the model they belong to and whether they
are clean or noise, so that a wrong connection gets a clear message instead of a wrong video.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn as nn

from .adapters import ADAPTER_KINDS, AdapterUse, MotionAdapter, make_view
from .backbones.base import VideoBackbone
from .errors import InputError
from .noise import initial_noise
from .objectives import ObjectiveSpec
from .progress import Progress
from .sample import guided
from .train import Callback, TrainOptions, TrainResult, train
from .video import fit_frames

AdapterStack = Sequence[AdapterUse | tuple[MotionAdapter, float]]
"""Adapters applied together, each with its strength (1.0 = as trained, 0 = off) and, as an
:class:`AdapterUse`, its kind's use-time settings (debiasing, LoRA parts)."""


@dataclass(frozen=True)
class VideoLatents:
    """Video latents of one model.

    Attributes:
        samples: ``(b, c, f, h, w)`` in the model's latent space (VAE-scaled).
        backbone: fingerprint of the model that made them.
        noise: True for noise to sample from (inverted or initial noise), False for clean latents.
    """

    samples: torch.Tensor
    backbone: str
    noise: bool = False

def latent_samples(latents: VideoLatents, backbone: VideoBackbone, noise: bool, input_name: str) -> torch.Tensor:
    """The samples of ``latents``, after checking they belong to ``backbone`` and are noise (or clean)."""
    if not isinstance(latents, VideoLatents):
        raise InputError(input_name, f"expected video latents, got {type(latents).__name__}")
    if latents.backbone != backbone.fingerprint:
        raise InputError(input_name, f"these latents were made by another model ({latents.backbone}); this model is "
                                     f"{backbone.fingerprint}. Encode the reference with the same model")
    if latents.noise != noise:
        wanted, got = ("noise", "clean latents") if noise else ("clean latents", "noise")
        source = "Invert Video or Initial Noise" if noise else "Encode Reference or Generate Video"
        raise InputError(input_name, f"expected {wanted} but got {got}; connect the output of {source}")
    return latents.samples


def encode_reference(backbone: VideoBackbone, frames: torch.Tensor, width: int = 0, height: int = 0,
                     input_name: str = "frames") -> tuple[VideoLatents, torch.Tensor]:
    """IMAGE frames ``(f, h, w, 3)`` -> (clean latents, the frames as encoded).

    Frames whose size the model cannot take are resized (cover + centre crop) to ``width`` x
    ``height``, 0 meaning the frames' size rounded down to the model's multiple.
    """
    fitted = fit_frames(frames, backbone.pixel_multiple(), width, height, input_name)
    return VideoLatents(backbone.encode_video(fitted, input_name), backbone.fingerprint), fitted


def new_adapter(backbone: VideoBackbone, kind: str = "temporal_attention",
                latent_shape: tuple[int, int, int] | None = None, seed: int = 0, **options) -> MotionAdapter:
    """An untrained adapter of ``kind`` for ``backbone`` (see ``motion_core.adapters.ADAPTER_KINDS``).

    ``latent_shape``: ``(frames, height, width)`` of the training latents (motion embeddings are
    sized by it); ``seed``: of random initial values (LoRA's A); ``options``: the kind's ``OPTIONS``.
    """
    if kind not in ADAPTER_KINDS:
        raise InputError("parameterisation", f"{kind!r} is not known; choose one of {', '.join(sorted(ADAPTER_KINDS))}")
    return ADAPTER_KINDS[kind].for_unet(backbone.denoiser_module, backbone.fingerprint, latent_shape, seed, **options)


def train_adapter(backbone: VideoBackbone, reference: VideoLatents, prompt: str,
                  objective: ObjectiveSpec | dict | None = None, kind: str = "temporal_attention", *,
                  steps: int = 400, lr: float = 1e-4, seed: int = 0, options: TrainOptions = TrainOptions(),
                  adapter_options: dict | None = None, callback: Callback | None = None) -> TrainResult:
    """Train a new adapter of ``kind`` (with ``adapter_options``) on the reference clip.

    ``objective`` defaults to :class:`ObjectiveSpec`'s defaults: VMC's residual loss with the SMA
    terms. The backbone is not changed (see :func:`motion_core.train.train`); with model offload
    the denoiser stays on the device meanwhile. The adapter records the clip's pixel size too.
    """
    x0 = latent_samples(reference, backbone, False, "latents")
    spec = objective if objective is not None else ObjectiveSpec()
    text = backbone.encode_prompt([prompt])
    adapter = new_adapter(backbone, kind, tuple(x0.shape[2:]), seed, **dict(adapter_options or {}))
    scale = backbone.latent_scale()
    size = {"width": str(x0.shape[4] * scale), "height": str(x0.shape[3] * scale)}
    with backbone.hold(backbone.denoiser_module):
        return train(backbone.denoiser(), adapter, x0, text, spec, steps=steps, lr=lr, seed=seed, options=options,
                     callback=callback, prompt=prompt, metadata=size)


def adapter_uses(adapters: AdapterStack) -> list[AdapterUse]:
    """The stack as :class:`AdapterUse` entries, checked (an entry may be an ``(adapter, strength)`` pair)."""
    uses = []
    for entry in adapters:
        use = entry if isinstance(entry, AdapterUse) else AdapterUse(*entry)
        if not isinstance(use.adapter, MotionAdapter):
            raise InputError("adapter", f"expected a motion adapter, got {type(use.adapter).__name__}")
        uses.append(use)
    return uses


def scaled_stack(adapters: MotionAdapter | AdapterStack | None, strength: float = 1.0,
                 **settings: str) -> list[AdapterUse]:
    """One adapter or a stack, every strength multiplied by ``strength``.

    ``settings`` go to the adapters whose kind has them and are ignored by the others (e.g. Generate
    Video's ``debias`` concerns motion embeddings only); a setting an entry already has is kept.
    """
    if adapters is None:
        return []
    entries = [AdapterUse(adapters)] if isinstance(adapters, MotionAdapter) else adapter_uses(adapters)
    return [AdapterUse(use.adapter, use.strength * strength,
                       {**{k: v for k, v in settings.items() if k in use.adapter.SETTINGS}, **use.settings})
            for use in entries]


@contextlib.contextmanager
def adapted_denoiser(backbone: VideoBackbone, adapters: AdapterStack = ()) -> Iterator[nn.Module]:
    """The denoiser to run with ``adapters`` applied: a private view (or the base itself without adapters).

    Each adapter is checked against the backbone first; they attach in their kinds' order (weight
    deltas before the LoRA layers that wrap them), in stack order within a kind. The view is
    discarded afterwards, so the shared model and the adapters are never changed.
    """
    uses = sorted(adapter_uses(adapters), key=lambda use: use.adapter.attach_priority)
    for use in uses:
        use.adapter.check_backbone(backbone.fingerprint)
    with backbone.hold(backbone.denoiser_module) as unet:
        if not uses:
            yield unet
            return
        view = make_view(unet)
        attachments = []
        try:
            for use in uses:
                attachments.append(use.adapter.attach(view, use.strength, **use.settings))
            yield view
        finally:
            for attachment in reversed(attachments):
                attachment.detach()


def invert_reference(backbone: VideoBackbone, reference: VideoLatents, steps: int = 50, prompt: str = "",
                     adapters: AdapterStack = (), progress: Progress | None = None) -> VideoLatents:
    """Invert clean latents to the noise that makes them (empty prompt, no guidance by default), with
    the family's inverse sampler (DDIM inversion for discrete diffusion)."""
    x0 = latent_samples(reference, backbone, False, "latents")
    text = backbone.encode_prompt([prompt])
    with torch.no_grad(), adapted_denoiser(backbone, adapters) as module:
        x_T = backbone.sampling.invert(guided(partial(backbone.call_denoiser, module), text),
                                       x0.to(backbone.device, backbone.dtype), steps, progress)
    return VideoLatents(x_T, backbone.fingerprint, noise=True)


def make_noise(inverted: VideoLatents, strategy: str = "direct", seed: int = 0,
               ratio: float | None = None) -> VideoLatents:
    """Initial noise from inverted latents by a strategy of :mod:`motion_core.noise`."""
    if not isinstance(inverted, VideoLatents) or not inverted.noise:
        raise InputError("inverted", "expected the output of Invert Video (inverted noise)")
    return VideoLatents(initial_noise(strategy, inverted.samples, seed, ratio), inverted.backbone, noise=True)


def generate(backbone: VideoBackbone, noise: VideoLatents, prompt: str, negative_prompt: str = "",
             steps: int = 50, cfg: float = 9.0, adapters: AdapterStack = (),
             progress: Progress | None = None) -> VideoLatents:
    """Sampling with classifier-free guidance from ``noise`` (the family's sampler: DDIM for discrete
    diffusion): clean latents of the new video."""
    x_T = latent_samples(noise, backbone, True, "noise")
    if isinstance(cfg, bool) or not isinstance(cfg, (int, float)) or not 0 <= cfg <= 100:
        raise InputError("cfg", f"{cfg!r} is not valid; use a guidance scale from 0 to 100 (1 = no guidance)")
    cond = backbone.encode_prompt([prompt])
    uncond = backbone.encode_prompt([negative_prompt]) if cfg != 1 else None
    with torch.no_grad(), adapted_denoiser(backbone, adapters) as module:
        x0 = backbone.sampling.sample(guided(partial(backbone.call_denoiser, module), cond, uncond, cfg),
                                      x_T.to(backbone.device, backbone.dtype), steps, progress)
    return VideoLatents(x0, backbone.fingerprint)


def decode(backbone: VideoBackbone, latents: VideoLatents, progress: Progress | None = None) -> torch.Tensor:
    """Clean latents -> IMAGE frames ``(b·f, H, W, 3)`` float32 in [0, 1] on the CPU."""
    return backbone.decode_latents(latent_samples(latents, backbone, False, "latents"), progress)
