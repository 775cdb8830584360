"""One-shot training of a motion adapter on one clip (or a few), for any backbone and any objective.

VMC's recipe (docs/METHODS.md §1) is the default: AdamW (lr 1e-4, betas (0.9, 0.999), weight decay
1e-2, eps 1e-8), constant learning rate, batch = the clip, grad-norm clip 1.0, a timestep drawn by
the family's :class:`~motion_core.sampling.Sampling` each step (``t ~ U{0..T-1}`` for DDPM), mixed
precision with fp32 master weights where the device has it. The backbone is reached only through a
:class:`~motion_core.backbones.Denoiser`: its call, its sampling, the blocks to checkpoint.

The shared model is never changed: the adapter is trained on a copy of itself, attached to a
private view of the UNet. ComfyUI runs nodes under ``torch.inference_mode()``; :func:`train`
leaves it and clones every tensor it receives. If the callback raises (ComfyUI's interrupt), the
exception propagates and nothing is left behind: the adapter passed in, the base model and every
other view are as they were.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from . import __version__
from .adapters import MotionAdapter, make_view
from .backbones.base import Denoiser, module_dtype
from .checkpointing import checkpoint_blocks
from .errors import InputError
from .objectives import ObjectiveSpec, StepTensors, build_objective
from .sampling import LossWeighting, TimestepDistribution

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_HALF_NAMES = {"fp16": torch.float16, "bf16": torch.bfloat16}
HALF = tuple(_HALF_NAMES.values())

Callback = Callable[[int, int, dict[str, float]], None]
"""``callback(step, total_steps, loss_terms)`` after each step (``step`` from 1); raise to cancel."""


@dataclass(frozen=True)
class TrainOptions:
    """Optimiser and precision settings; the defaults are VMC's (docs/METHODS.md §1).

    Attributes:
        betas, weight_decay, eps: AdamW's.
        grad_clip: max L2 norm of the adapter's gradient per step (0 = no clipping).
        precision: ``auto`` (a half-precision model: its own dtype; otherwise CUDA: bf16 where
            supported, else fp16; other devices: fp32), ``fp32`` (needs fp32 weights), ``fp16``
            (with gradient scaling) or ``bf16``. Adapter tensors stay fp32.
        gradient_checkpointing: recompute each UNet block's activations during backward
            (:mod:`motion_core.checkpointing`): less memory, ~1/3 more time, same result.
        timesteps: where training draws its timesteps (:class:`~motion_core.sampling.TimestepDistribution`;
            the default is the uniform draw of the released code).
        loss_weighting: how each sample's prediction-vs-target loss is weighted by its noise level
            (:class:`~motion_core.sampling.LossWeighting`: ``min_snr``, ``x0``, ``v``; the default
            ``none`` is the released code's plain loss). SMA's terms are not weighted.
    """

    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-2
    eps: float = 1e-8
    grad_clip: float = 1.0
    precision: str = "auto"
    gradient_checkpointing: bool = False
    timesteps: TimestepDistribution = TimestepDistribution()
    loss_weighting: LossWeighting = LossWeighting()

    def validate(self) -> TrainOptions:
        self.timesteps.validate()
        self.loss_weighting.validate()
        if self.precision not in PRECISIONS:
            raise InputError("precision", f"{self.precision!r} is not valid; use one of {', '.join(PRECISIONS)}")
        for name in ("weight_decay", "eps", "grad_clip"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise InputError(name, f"{value!r} is not valid; use a number >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise InputError("betas", f"{self.betas!r} is not valid; use two numbers in [0, 1)")
        return self

    def autocast_dtype(self, device: torch.device, weights: torch.dtype = torch.float32) -> torch.dtype | None:
        """The autocast dtype on ``device`` for a model with ``weights`` of that dtype, or None for none.

        Raises :class:`InputError` for ``fp32`` with half-precision weights (the model computes in its
        weights' precision whatever the inputs are, so fp32 training needs the model loaded in fp32) and
        for one half format with weights in the other (fp16 and bf16 do not mix in PyTorch's kernels).
        """
        if self.precision == "fp32" and weights in HALF:
            raise InputError("precision", f"fp32 training needs the model's weights in fp32, but it is loaded in "
                                          f"{str(weights).removeprefix('torch.')}; set dtype fp32 on Load Video "
                                          "Model (more memory), or train with precision auto")
        if self.precision in ("fp16", "bf16") and weights in HALF and weights != _HALF_NAMES[self.precision]:
            loaded = str(weights).removeprefix("torch.")
            raise InputError("precision", f"{self.precision} training cannot run a model loaded in {loaded} (the "
                                          f"two half-precision formats do not mix); train with precision auto, or "
                                          f"load the model as fp32 to choose")
        if self.precision == "auto":
            if weights in HALF:
                return weights
            if device.type != "cuda":
                return None
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return {"fp32": None, **_HALF_NAMES}[self.precision]


class TrainResult(NamedTuple):
    """``adapter``: the trained adapter (a new object; fp32 tensors on the training device), with
    training recorded in its metadata. ``history``: one dict of loss terms (floats; ``total`` and the
    objective's terms) per step — ``[h["total"] for h in history]`` is the loss curve."""

    adapter: MotionAdapter
    history: list[dict[str, float]]


def train(denoiser: Denoiser, adapter: MotionAdapter, latents: torch.Tensor | Sequence[torch.Tensor],
          text: torch.Tensor | Sequence[torch.Tensor], objective: ObjectiveSpec | Mapping[str, Any], *,
          steps: int = 400, lr: float = 1e-4, seed: int = 0, options: TrainOptions = TrainOptions(),
          callback: Callback | None = None, prompt: str | Sequence[str] = "",
          metadata: Mapping[str, str] | None = None, preview_every: int = 0,
          preview: Callable[[nn.Module, int], None] | None = None) -> TrainResult:
    """Train a copy of ``adapter`` on one clip, or on several; the arguments are not changed.

    Several clips (MotionDirector's multi-video mode: one motion shown by several clips, each with
    its own prompt) are given as sequences of latents and of prompt embeddings, one per clip. Each
    step trains on one clip, the clips taken in a fresh random order every round (:class:`ClipOrder`):
    every clip counts equally, and a step costs what it costs with one clip, in time and in memory
    (a batch of all clips would multiply the memory by their number).

    Each step the objective trains :meth:`~MotionAdapter.objective_parameters`; an adapter with a
    second path (:meth:`~MotionAdapter.auxiliary_loss`, e.g. MotionDirector's spatial LoRA) trains
    its own parameters with its own loss, recorded as one more term of the history.

    Args:
        denoiser: the backbone's :class:`~motion_core.backbones.Denoiser` (``backbone.denoiser()``);
            its module is the shared base (frozen; it is only read).
        adapter: the starting adapter (e.g. ``TemporalAttentionAdapter.for_unet(unet, fingerprint)``).
        latents: clean latents ``x0`` ``(b, c, f, h, w)``, as the backbone's VAE scales them; or one
            such tensor per clip, all of the same frames, height and width.
        text: prompt embeddings ``(b or 1, tokens, dim)``; or one per clip.
        objective: an :class:`ObjectiveSpec` or its dict form.
        steps, lr, seed: optimiser steps, AdamW learning rate, seed of the timesteps, noise,
            MotionDirector anchor frames, the adapter's second path and dropout (same seed, same
            device → the same adapter).
        options: :class:`TrainOptions`.
        callback: called after every step; whatever it raises cancels training and propagates.
        preview_every, preview: every ``preview_every`` steps (0: never), before the callback,
            ``preview(module, step)`` gets the denoiser with the adapter as trained so far, in eval
            mode and without gradients, to sample from (e.g. :class:`motion_core.pipeline.TrainingPreview`);
            it draws from no training stream, so the adapter is the same with or without it.
        prompt, metadata: recorded in the adapter's metadata (with the training settings); ``prompt``
            one per clip (the first is recorded as ``prompt``, all of them under ``references``).

    Raises:
        InputError: for invalid inputs, and naming ``lr`` if the loss or gradient becomes NaN/inf.
    """
    spec = objective if isinstance(objective, ObjectiveSpec) else ObjectiveSpec.from_dict(dict(objective))
    spec.validate()
    options.validate()
    clips, texts, prompts = _clips(latents, text, prompt)
    for clip, clip_text in zip(clips, texts):
        _check_inputs(clip, clip_text, steps, lr)
        spec.check_frames(clip.shape[2])
    check_same_shape(clips)
    if isinstance(preview_every, bool) or not isinstance(preview_every, int) or preview_every < 0:
        raise InputError("preview_every", f"{preview_every!r} is not valid; use a whole number of steps (0 = no "
                                          "previews)")
    loss_fn = build_objective(spec)
    unet, sampling, call = denoiser.module, denoiser.sampling, denoiser.call
    device = next(unet.parameters()).device
    autocast_dtype = options.autocast_dtype(device, module_dtype(unet))
    with torch.inference_mode(False), torch.enable_grad():
        clips = [clip.detach().clone().to(device, torch.float32) for clip in clips]
        texts = [t.detach().clone().to(device) for t in texts]
        texts = [t.expand(x0.shape[0], *t.shape[1:]) if t.shape[0] == 1 else t for x0, t in zip(clips, texts)]
        trained = adapter.copy().to(device)
        view = make_view(unet, for_training=True).train()
        if options.gradient_checkpointing:
            checkpoint_blocks(view, denoiser.checkpoint_blocks)
        attachment = trained.attach(view, **trained.training_settings())
        parameters = [p for p in trained.parameters() if p.requires_grad]
        objective_parameters = trained.objective_parameters()
        optimizer = torch.optim.AdamW(parameters, lr=lr, betas=options.betas, eps=options.eps,
                                      weight_decay=options.weight_decay)
        scaler = torch.amp.GradScaler(device.type) if autocast_dtype == torch.float16 else None
        noise_generator = torch.Generator().manual_seed(_stream_seed(seed, "noise"))
        anchor_generator = torch.Generator().manual_seed(_stream_seed(seed, "anchor"))
        auxiliary_generator = torch.Generator().manual_seed(_stream_seed(seed, "auxiliary"))
        order = ClipOrder(len(clips), _stream_seed(seed, "clips"))
        history: list[dict[str, float]] = []

        def autocast():
            return torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None)

        def backward(loss: torch.Tensor, params: list[nn.Parameter]) -> None:
            (scaler.scale(loss) if scaler else loss).backward(inputs=params)

        # Dropout (LoRA) draws from the global generator: seed it here, and leave the caller's as it was.
        rng_devices = [device.index or 0] if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=rng_devices):
                torch.manual_seed(_stream_seed(seed, "dropout"))
                for step in range(1, steps + 1):
                    clip = order.next()
                    x0, text = clips[clip], texts[clip]
                    t = sampling.draw_timesteps(x0.shape[0], noise_generator, options.timesteps)
                    weight = options.loss_weighting.weights(sampling, t)
                    eps = torch.randn(x0.shape, generator=noise_generator).to(device)
                    x_t = sampling.noised(x0, eps, t)
                    target = sampling.target(x0, eps, t)
                    with autocast():
                        prediction = call(view, x_t, t.to(device), text)
                    step_tensors = StepTensors(prediction, target, x0, sampling.x0_from(prediction, x_t, t),
                                               sampling.signal_from(prediction, x_t, t), x_t, sampling.scales(t)[0],
                                               weight)
                    result = loss_fn(step_tensors, anchor_generator)
                    terms = {name: float(value) for name, value in result.terms.items()}
                    if not math.isfinite(terms["total"]):
                        raise _diverged(step, steps, lr, f"the loss became {terms['total']}")
                    optimizer.zero_grad(set_to_none=True)
                    backward(result.total, objective_parameters)
                    groups = [objective_parameters]

                    def predict(x, t=t, text=text):
                        with autocast():
                            return call(view, x, t.to(device), text)

                    auxiliary = trained.auxiliary_loss(predict, x_t, target, auxiliary_generator)
                    if auxiliary is not None:
                        name, loss, auxiliary_parameters = auxiliary
                        terms[name] = float(loss.detach())
                        if not math.isfinite(terms[name]):
                            raise _diverged(step, steps, lr, f"the {name} loss became {terms[name]}")
                        backward(loss, auxiliary_parameters)
                        groups.append(auxiliary_parameters)
                    if scaler:
                        scaler.unscale_(optimizer)
                    for group in groups:  # each path clipped on its own, as with MotionDirector's two optimisers
                        norm = torch.nn.utils.clip_grad_norm_(group, options.grad_clip or math.inf)
                        if scaler is None and not torch.isfinite(norm):
                            raise _diverged(step, steps, lr, f"the gradient became {float(norm)}")
                    if scaler:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    history.append(terms)
                    if preview is not None and preview_every and step % preview_every == 0:
                        view.eval()
                        with torch.no_grad():
                            preview(view, step)
                        view.train()
                    if callback is not None:
                        callback(step, steps, terms)
        finally:
            attachment.detach()
            del view
        x0 = clips[0]
        trained.metadata.update({
            "objective": spec.to_json(), "prompt": prompts[0], "steps": str(steps), "lr": repr(float(lr)),
            "seed": str(seed), "frames": str(x0.shape[2]), "latent_height": str(x0.shape[3]),
            "latent_width": str(x0.shape[4]), "precision": str(autocast_dtype or torch.float32).removeprefix("torch."),
            "pack_version": __version__, **_sampling_metadata(options), **_references_metadata(prompts),
            **dict(metadata or {}),
        })
        return TrainResult(trained.requires_grad_(False), history)


class ClipOrder:
    """Which clip each training step takes: every clip once per round, in a fresh random order each
    round (drawn from ``seed``). With one clip nothing is drawn, so one-clip training is unchanged."""

    def __init__(self, count: int, seed: int):
        self.count, self.generator, self.queue = count, torch.Generator().manual_seed(seed), []

    def next(self) -> int:
        if self.count == 1:
            return 0
        if not self.queue:
            self.queue = torch.randperm(self.count, generator=self.generator).tolist()
        return self.queue.pop(0)


def _clips(latents, text, prompt) -> tuple[list, list, list[str]]:
    """The clips, their prompt embeddings and their prompts as three lists of one length (a single
    clip given as a tensor is a list of one; one prompt may be shared by every clip)."""
    clips = [latents] if isinstance(latents, torch.Tensor) else list(latents)
    texts = [text] if isinstance(text, torch.Tensor) else list(text)
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if not clips:
        raise InputError("latents", "no clip to train on; give at least one reference clip")
    texts = texts * len(clips) if len(texts) == 1 else texts
    prompts = prompts * len(clips) if len(prompts) == 1 else prompts
    for given in (len(texts), len(prompts)):
        if given != len(clips):
            raise InputError("prompt", f"{given} prompts for {len(clips)} clips; give one prompt per clip")
    return clips, texts, prompts


def check_same_shape(clips: Sequence[torch.Tensor], input_name: str = "latents") -> None:
    """Every clip ``(b, c, f, h, w)`` must have the first one's frames, height and width: an adapter
    is built for one latent size (Motion Inversion's embeddings span the frames and positions)."""
    first = tuple(clips[0].shape[2:])
    for number, clip in enumerate(clips[1:], start=2):
        if tuple(clip.shape[2:]) != first:
            raise InputError(input_name, f"clip {number} has latents of {_frames_and_size(clip.shape[2:])} but the "
                                        f"first has {_frames_and_size(first)}; encode every reference clip at "
                                        "the same width, height and number of frames")


def _frames_and_size(shape) -> str:
    frames, height, width = shape
    return f"{frames} frames of {height}×{width}"


def _references_metadata(prompts: list[str]) -> dict[str, str]:
    """``references``: the prompt of each clip, as JSON, when there was more than one clip."""
    return {"references": json.dumps([{"prompt": prompt} for prompt in prompts])} if len(prompts) > 1 else {}


def _sampling_metadata(options: TrainOptions) -> dict[str, str]:
    """What differs from the released code's draw and loss, as JSON: ``timesteps`` for a non-uniform
    draw, ``loss_weighting`` for a weighted loss (with γ for ``min_snr``); nothing for the defaults."""
    recorded, timesteps, weighting = {}, options.timesteps, options.loss_weighting
    if not timesteps.uniform:
        recorded["timesteps"] = json.dumps({"low": timesteps.low, "high": timesteps.high, "shift": timesteps.shift})
    if weighting.kind != "none":
        gamma = {"gamma": weighting.gamma} if weighting.kind == "min_snr" else {}
        recorded["loss_weighting"] = json.dumps({"kind": weighting.kind, **gamma})
    return recorded


def loss_series(history: list[dict[str, float]]) -> dict[str, list[float]]:
    """One series per term of a training history, one value per step: ``loss`` (the total) and each term.

    A term some steps skip (MotionDirector's spatial step, skipped at random) holds its last value
    over them (its first value before it first runs), so every series has one value per step
    (ComfyUI's LOSS_MAP, which its Plot Loss Graph node draws).
    """
    names = ["total"] + list(dict.fromkeys(name for terms in history for name in terms if name != "total"))
    series = {}
    for name in names:
        first = next(terms[name] for terms in history if name in terms)
        values, last = [], first
        for terms in history:
            last = terms.get(name, last)
            values.append(last)
        series["loss" if name == "total" else name] = values
    return series


def _stream_seed(seed: int, stream: str) -> int:
    """Independent 63-bit seeds for each random stream, all determined by the user's seed."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{stream}".encode()).digest()[:8], "big") >> 1


def _diverged(step: int, steps: int, lr: float, what: str) -> InputError:
    return InputError("lr", f"training diverged at step {step} of {steps}: {what}; lower the learning rate "
                            f"(now {lr:g}, e.g. to {lr / 10:g}) or use fp32 precision (with the model loaded "
                            "in fp32)")


def _check_inputs(latents, text, steps, lr) -> None:
    if not isinstance(latents, torch.Tensor) or latents.ndim != 5 or not latents.is_floating_point():
        raise InputError("latents", f"expected float video latents (batch, channels, frames, height, width); got "
                                    f"{_describe(latents)}")
    if not isinstance(text, torch.Tensor) or text.ndim != 3 or text.shape[0] not in (1, latents.shape[0]):
        batch = "1" if latents.shape[0] == 1 else f"1 or {latents.shape[0]}"
        raise InputError("prompt", f"expected prompt embeddings ({batch}, tokens, dim); got {_describe(text)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError("steps", f"{steps!r} is not valid; use a whole number of at least 1")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise InputError("lr", f"{lr!r} is not valid; use a learning rate > 0 (VMC: 1e-4)")


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    return type(value).__name__
