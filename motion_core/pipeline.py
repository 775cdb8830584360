"""The motion transfer pipeline as steps on a backbone: encode, train, invert, noise, generate, decode.

Each step is one function that the nodes call one per node and the command line calls in a row::

    reference, _ = encode_reference(backbone, frames)                 # clean latents
    result = train_adapter(backbone, reference, "a car is moving")    # the motion, as an adapter
    inverted = invert_reference(backbone, reference, steps=50)       # the noise that makes the clip
    noise = make_noise(inverted, "direct", seed=0)
    video = generate(backbone, noise, "a tank in the desert", adapters=[(result.adapter, 1.0)])
    frames = decode(backbone, video)

:func:`transfer` runs them all for one clip and several targets (the command line and the toy demo).

Latents travel as :class:`VideoLatents`, which remember the model they belong to and whether they
are clean or noise, so that a wrong connection gets a clear message instead of a wrong video.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn as nn

from .adapters import ADAPTER_KINDS, AdapterUse, MotionAdapter, make_view
from .backbones.base import VideoBackbone
from .errors import InputError
from .motion_guidance import MotionGuidance, guide_for
from .noise import initial_noise
from .objectives import ObjectiveSpec
from .progress import LatentPreview, Progress
from .sample import guided
from .train import Callback, TrainOptions, TrainResult, check_same_shape, train
from .video import fit_frames, resampled_indices

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
                     input_name: str = "frames", fps: float | None = None,
                     progress: Progress | None = None) -> tuple[VideoLatents, torch.Tensor]:
    """IMAGE frames ``(f, h, w, 3)`` -> (clean latents, the frames as encoded).

    A clip whose rate ``fps`` is known is first resampled to the model's :attr:`~VideoBackbone.frame_rate`
    where it has one (Wan: 16 fps; :func:`fit_frame_rate`). Frames whose size the model cannot take
    are resized (cover + centre crop) to ``width`` x ``height``, 0 meaning the frames' size rounded
    down to the model's multiple. A model that takes ``1 + k·frame_multiple`` frames (Wan: 4k+1) gets
    the longest such start of the clip (:func:`frame_count_fitted`); the frames returned are the
    ones encoded (:func:`describe_fitting` says what was done). ``progress(done, 2·f)`` counts each
    frame resized, then each frame encoded (raising from it cancels).
    """
    frames = fit_frame_rate(frames, fps, backbone.frame_rate) if frames.ndim == 4 else frames
    frames = frames[:frame_count_fitted(frames.shape[0], backbone.frame_multiple)] if frames.ndim == 4 else frames
    count = frames.shape[0] if frames.ndim == 4 else 0

    def stage(start: int) -> Progress | None:
        return None if progress is None else lambda done, total=None: progress(start + done, 2 * count)

    fitted = fit_frames(frames, backbone.pixel_multiple(), width, height, input_name, stage(0))
    return VideoLatents(backbone.encode_video(fitted, input_name, stage(count)), backbone.fingerprint), fitted


def fit_frame_rate(frames: torch.Tensor, fps: float | None, rate: float | None) -> torch.Tensor:
    """IMAGE frames ``(f, h, w, 3)`` at ``fps`` as the model's ``rate`` shows them (the frame on screen
    at each ``k / rate`` s, as the loader's ``force_rate``); unchanged when either rate is unknown or
    they agree to 0.1 %."""
    return frames[resampled_indices(frames.shape[0], fps, rate)] if _changes_rate(fps, rate) else frames


def _changes_rate(fps: float | None, rate: float | None) -> bool:
    return bool(fps and rate and abs(fps - rate) > 1e-3 * rate)


def describe_fitting(backbone: VideoBackbone, given: int, fps: float | None, encoded: int) -> str | None:
    """What :func:`encode_reference` did to a clip of ``given`` frames at ``fps`` to encode ``encoded``
    frames, in words (None when it took every frame as it was)."""
    notes, rate = [], backbone.frame_rate
    resampled = len(resampled_indices(given, fps, rate)) if _changes_rate(fps, rate) else given
    if _changes_rate(fps, rate):
        notes.append(f"resampled {given} frames at {fps:g} fps to {resampled} at {backbone.frame_rate:g} fps, the "
                     "model's rate")
    if encoded != resampled:
        notes.append(f"encoded the first {encoded} of {resampled} frames: this model takes 1 + "
                     f"{backbone.frame_multiple}k frames")
    return "; ".join(notes) or None


def frame_count_fitted(count: int, multiple: int) -> int:
    """The most frames ``<= count`` a model taking ``1 + k·multiple`` frames accepts (``count`` itself when
    ``multiple`` is 1 or no such count ≥ ``1 + multiple`` exists: the model's own check then says why)."""
    if multiple <= 1 or count < multiple + 1:
        return count
    return (count - 1) // multiple * multiple + 1


def new_adapter(backbone: VideoBackbone, kind: str = "temporal_attention",
                latent_shape: tuple[int, int, int] | None = None, seed: int = 0, **options) -> MotionAdapter:
    """An untrained adapter of ``kind`` for ``backbone`` (see ``motion_core.adapters.ADAPTER_KINDS``).

    ``latent_shape``: ``(frames, height, width)`` of the training latents (motion embeddings are
    sized by it); ``seed``: of random initial values (LoRA's A); ``options``: the kind's ``OPTIONS``.
    """
    if kind not in ADAPTER_KINDS:
        raise InputError("parameterisation", f"{kind!r} is not known; choose one of {', '.join(sorted(ADAPTER_KINDS))}")
    return ADAPTER_KINDS[kind].for_unet(backbone.denoiser_module, backbone.fingerprint, latent_shape, seed, **options)


@dataclass(frozen=True)
class TrainingPreview:
    """A small sample of the adapter as trained so far, every ``every`` steps of :func:`train_adapter`.

    The same fresh Gaussian noise (``seed``) each time, the first clip's prompt, ``steps`` sampler
    steps at ``cfg``; decoded, then ``frames`` frames evenly spread over the clip go to
    ``show(frames (n, H, W, 3) float32 in [0, 1], step)``. Fresh noise, not the inverted clip: the
    preview shows what the adapter itself has learnt. Cost: ``steps`` guided denoiser calls and one
    decode per preview, against about three denoiser calls' worth per training step
    (``benchmarks/previews.py``).
    """

    every: int
    show: Callable[[torch.Tensor, int], None]
    steps: int = 8
    cfg: float = 7.5
    frames: int = 4
    seed: int = 0

    def sampler(self, backbone: VideoBackbone, shape: tuple[int, ...], prompt: str) -> Callable[[nn.Module, int], None]:
        """``preview(module, step)`` for :func:`motion_core.train.train`, for latents of ``shape``."""
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(self.seed))
        cond, uncond = backbone.encode_prompt([prompt]), backbone.encode_prompt([""])

        def preview(module: nn.Module, step: int) -> None:
            denoise = guided(partial(backbone.call_denoiser, module), cond, uncond, self.cfg)
            latents = backbone.sampling.sample(denoise, noise.to(backbone.device, backbone.dtype), self.steps)
            frames = backbone.decode_latents(latents)
            chosen = torch.linspace(0, frames.shape[0] - 1, min(self.frames, frames.shape[0])).round().long()
            self.show(frames[chosen], step)

        return preview


def train_adapter(backbone: VideoBackbone, reference: VideoLatents, prompt: str,
                  objective: ObjectiveSpec | dict | None = None, kind: str = "temporal_attention", *,
                  steps: int = 400, lr: float | None = None, seed: int = 0, options: TrainOptions = TrainOptions(),
                  adapter_options: dict | None = None, callback: Callback | None = None,
                  more_references: Sequence[tuple[VideoLatents, str]] = (),
                  preview: TrainingPreview | None = None) -> TrainResult:
    """Train a new adapter of ``kind`` (with ``adapter_options``) on the reference clip.

    ``more_references``: further clips of the same motion, each with its own prompt, trained on
    alongside the reference (one clip per step, see :func:`motion_core.train.train`); they must
    have the reference's frames and size. ``preview``: samples of the adapter while it trains.

    ``objective`` defaults to :class:`ObjectiveSpec`'s defaults: VMC's residual loss with the SMA
    terms; ``lr`` (None or 0) to the kind's published rate (:attr:`MotionAdapter.default_lr`). The
    backbone is not changed (see :func:`motion_core.train.train`); with model offload the denoiser
    stays on the device meanwhile. The adapter records the clip's pixel size too.
    """
    x0 = latent_samples(reference, backbone, False, "latents")
    clips = [x0, *(latent_samples(latents, backbone, False, "more_references") for latents, _ in more_references)]
    check_same_shape(clips, "more_references")
    prompts = [prompt, *(text for _, text in more_references)]
    spec = objective if objective is not None else ObjectiveSpec()
    texts = [backbone.encode_prompt([text]) for text in prompts]
    adapter = new_adapter(backbone, kind, tuple(x0.shape[2:]), seed, **dict(adapter_options or {}))
    lr = lr or adapter.default_lr
    scale = backbone.latent_scale()
    size = {"width": str(x0.shape[4] * scale), "height": str(x0.shape[3] * scale)}
    with backbone.hold(backbone.denoiser_module):
        return train(backbone.denoiser(), adapter, clips, texts, spec, steps=steps, lr=lr, seed=seed,
                     options=options, callback=callback, prompt=prompts, metadata=size,
                     preview_every=preview.every if preview else 0,
                     preview=preview.sampler(backbone, tuple(x0.shape), prompt) if preview else None)


def options_for(kind: str, adapter_options: dict | None, input_name: str = "adapter_options") -> dict | None:
    """The options of a ``{"kind", "options"}`` pair (what the options nodes output) for training a
    ``kind`` adapter; :class:`InputError` naming ``input_name`` when they are another kind's."""
    if adapter_options is None:
        return None
    if adapter_options["kind"] != kind:
        raise InputError(input_name, f"these are options for {adapter_options['kind']} but the parameterisation is "
                                     f"{kind}; set parameterisation to {adapter_options['kind']} or connect the "
                                     "matching options node")
    return adapter_options["options"]


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


def with_parts(stack: list[AdapterUse], parts: str, input_name: str = "parts") -> list[AdapterUse]:
    """``stack`` with the LoRA ``parts`` setting (temporal, spatial or both) set on each LoRA; other
    kinds have no parts and accept only ``temporal`` (:class:`InputError` naming ``input_name``)."""
    result = []
    for use in stack:
        if "parts" in use.adapter.SETTINGS:
            use = AdapterUse(use.adapter, use.strength, {**use.settings, "parts": parts})
        elif parts != "temporal":
            raise InputError(input_name, f"{parts!r} applies to LoRA adapters only; this is a {use.adapter.kind} "
                                         "adapter (leave it at temporal)")
        result.append(use)
    return result


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
                     adapters: AdapterStack = (), progress: Progress | None = None,
                     preview: LatentPreview | None = None) -> VideoLatents:
    """Invert clean latents to the noise that makes them (empty prompt, no guidance by default), with
    the family's inverse sampler (DDIM inversion for discrete diffusion); ``preview`` sees each
    step's clean-latent estimate."""
    x0 = latent_samples(reference, backbone, False, "latents")
    text = backbone.encode_prompt([prompt])
    with torch.no_grad(), adapted_denoiser(backbone, adapters) as module:
        x_T = backbone.sampling.invert(guided(partial(backbone.call_denoiser, module), text),
                                       x0.to(backbone.device, backbone.dtype), steps, progress, preview)
    return VideoLatents(x_T, backbone.fingerprint, noise=True)


def make_noise(inverted: VideoLatents, strategy: str = "direct", seed: int = 0,
               ratio: float | None = None) -> VideoLatents:
    """Initial noise from inverted latents by a strategy of :mod:`motion_core.noise`."""
    if not isinstance(inverted, VideoLatents) or not inverted.noise:
        raise InputError("inverted", "expected the output of Invert Video (inverted noise)")
    return VideoLatents(initial_noise(strategy, inverted.samples, seed, ratio), inverted.backbone, noise=True)


def generate(backbone: VideoBackbone, noise: VideoLatents, prompt: str, negative_prompt: str = "",
             steps: int = 50, cfg: float = 9.0, adapters: AdapterStack = (),
             progress: Progress | None = None, preview: LatentPreview | None = None,
             guidance: MotionGuidance | None = None) -> VideoLatents:
    """Sampling with classifier-free guidance from ``noise`` (the family's sampler: DDIM for discrete
    diffusion): clean latents of the new video; ``preview`` sees each step's clean-latent estimate.

    ``guidance``: FlowMotion's training-free motion guidance toward a reference clip in the first
    steps (:mod:`motion_core.motion_guidance`), with the adapters applied as in every step; it
    changes the latent only, never the model.
    """
    x_T = latent_samples(noise, backbone, True, "noise")
    if isinstance(cfg, bool) or not isinstance(cfg, (int, float)) or not 0 <= cfg <= 100:
        raise InputError("cfg", f"{cfg!r} is not valid; use a guidance scale from 0 to 100 (1 = no guidance)")
    if guidance is not None:
        check_guidance(guidance, backbone, x_T)
    cond = backbone.encode_prompt([prompt])
    uncond = backbone.encode_prompt([negative_prompt]) if cfg != 1 else None
    empty = backbone.encode_prompt([""]) if guidance is not None else None
    with torch.no_grad(), adapted_denoiser(backbone, adapters) as module:
        denoise = guided(partial(backbone.call_denoiser, module), cond, uncond, cfg)
        guide = guide_for(guidance, backbone.sampling, denoise,
                          guided(partial(backbone.call_denoiser, module), empty) if empty is not None else None,
                          steps, progress)
        x0 = backbone.sampling.sample(denoise, x_T.to(backbone.device, backbone.dtype), steps, progress, preview,
                                      guide)
    return VideoLatents(x0, backbone.fingerprint)


def check_guidance(guidance: MotionGuidance, backbone: VideoBackbone, x_T: torch.Tensor,
                   input_name: str = "motion_guidance") -> None:
    """Motion guidance usable with ``backbone`` and noise ``x_T`` ``(b, c, f, h, w)``: valid settings, a
    reference of this model and of the noise's frames and size (:class:`InputError` naming ``input_name``)."""
    if not isinstance(guidance, MotionGuidance):
        raise InputError(input_name, f"expected the output of Motion Guidance, got {type(guidance).__name__}")
    guidance.validate()
    reference = latent_samples(guidance.reference, backbone, False, input_name)
    if tuple(reference.shape[1:]) != tuple(x_T.shape[1:]):
        raise InputError(input_name, f"the reference latents are {tuple(reference.shape[1:])} (channels, frames, "
                                     f"height, width) but the noise is {tuple(x_T.shape[1:])}; encode the reference "
                                     "at the size and frame count of the video to generate")


def decode(backbone: VideoBackbone, latents: VideoLatents, progress: Progress | None = None) -> torch.Tensor:
    """Clean latents -> IMAGE frames ``(b·f, H, W, 3)`` float32 in [0, 1] on the CPU."""
    return backbone.decode_latents(latent_samples(latents, backbone, False, "latents"), progress)


Stage = Callable[[str, int], contextlib.AbstractContextManager[Progress]]
"""``stage(name, total)``: a progress callback for one long loop, used as a context manager (a tqdm
bar on the command line). Names: ``train``, ``invert``, ``generate <target> seed <n>``."""


@contextlib.contextmanager
def _silent(name: str, total: int) -> Iterator[Progress]:
    yield lambda done, total=None: None


@dataclass(frozen=True)
class TransferSettings:
    """Everything :func:`transfer` does besides the clip, the prompt and the targets; defaults as the nodes'.

    Attributes:
        width, height: pixel size to encode the clip at (0 = the clip's, rounded to the model's multiple).
        objective, kind, adapter_options, steps, lr, seed, train_options: training (see
            :func:`train_adapter`; ``lr`` None = the kind's published rate).
        inversion_steps, noise, ratio, noise_seeds: inversion and initial noise (one video per seed;
            ``ratio`` None = the strategy's default).
        sampling_steps, cfg, negative_prompt, strength, debias: generation (``debias`` None = the kind's
            default use).
        invert_with_adapter: invert the clip with the adapter attached (at ``strength``), as
            MotionDirector's released inference does with its LoRA loaded; False inverts with the base
            model, as the toy benchmarks do (on the toy AnimateDiff model Motion Inversion's path came
            through better so: README, "The toy world").
    """

    width: int = 0
    height: int = 0
    objective: ObjectiveSpec | dict | None = None
    kind: str = "temporal_attention"
    adapter_options: dict | None = None
    steps: int = 400
    lr: float | None = None
    seed: int = 0
    train_options: TrainOptions = TrainOptions()
    inversion_steps: int = 50
    noise: str = "direct"
    ratio: float | None = None
    noise_seeds: tuple[int, ...] = (0,)
    sampling_steps: int = 50
    cfg: float = 9.0
    negative_prompt: str = ""
    strength: float = 1.0
    debias: str | None = None
    invert_with_adapter: bool = True


@dataclass
class TransferResult:
    """``adapter``: trained (or the one given); ``history``: its training's loss terms per step (empty
    when given); ``reference``: the clip's frames as encoded ``(f, H, W, 3)``."""

    adapter: MotionAdapter
    history: list[dict[str, float]]
    reference: torch.Tensor


def transfer(backbone: VideoBackbone, frames: torch.Tensor, prompt: str, targets: Sequence[str],
             settings: TransferSettings = TransferSettings(), *, adapter: MotionAdapter | None = None,
             on_train_step: Callback | None = None, on_adapter: Callable[[MotionAdapter], None] | None = None,
             on_video: Callable[[str, int, torch.Tensor], None] | None = None, stage: Stage = _silent,
             input_name: str = "frames", more_clips: Sequence[tuple[torch.Tensor, str]] = ()) -> TransferResult:
    """The whole motion transfer for one clip: encode, train (unless ``adapter`` is given), invert,
    then for every target and noise seed: initial noise, generate, decode.

    Args:
        frames: IMAGE frames ``(f, h, w, 3)`` in [0, 1] (resized as :func:`encode_reference` does).
        prompt: the training prompt (the clip's motion); ``targets``: what the new videos show.
        settings: :class:`TransferSettings`.
        adapter: use this adapter instead of training one.
        on_train_step: called after each training step (as :func:`train_adapter`'s callback).
        on_adapter: called with the adapter once trained (to save it before the videos are made).
        on_video: called with ``(target, seed, frames (f, H, W, 3) float32 [0, 1])`` for each video
            as soon as it is decoded (to write it), so that videos are not all kept in memory.
        stage: progress of each long loop (see :data:`Stage`).
        input_name: what a bad clip is called in messages.
        more_clips: more clips of the motion, ``(frames, prompt)`` each, trained on with the first
            (:func:`train_adapter`'s ``more_references``), encoded at the first clip's size; only
            the first is inverted.
    """
    reference, fitted = encode_reference(backbone, frames, settings.width, settings.height, input_name)
    more_references = [(encode_reference(backbone, clip, fitted.shape[2], fitted.shape[1], input_name)[0], text)
                        for clip, text in more_clips]
    history: list[dict[str, float]] = []
    if adapter is None:
        with stage("train", settings.steps) as progress:
            def callback(step: int, total: int, terms: dict[str, float]) -> None:
                if on_train_step is not None:
                    on_train_step(step, total, terms)
                progress(step, total)

            result = train_adapter(backbone, reference, prompt, settings.objective, settings.kind,
                                   steps=settings.steps, lr=settings.lr, seed=settings.seed,
                                   options=settings.train_options, adapter_options=settings.adapter_options,
                                   callback=callback, more_references=more_references)
        adapter, history = result.adapter, result.history
        if on_adapter is not None:
            on_adapter(adapter)
    with stage("invert", settings.inversion_steps) as progress:
        inverted = invert_reference(backbone, reference, settings.inversion_steps, progress=progress,
                                    adapters=[(adapter, settings.strength)] if settings.invert_with_adapter else ())
    uses = scaled_stack(adapter, settings.strength, **({"debias": settings.debias} if settings.debias else {}))
    for target in targets:
        for seed in settings.noise_seeds:
            noise = make_noise(inverted, settings.noise, seed, settings.ratio)
            with stage(f"generate {target[:24]} seed {seed}", settings.sampling_steps) as progress:
                latents = generate(backbone, noise, target, settings.negative_prompt, settings.sampling_steps,
                                   settings.cfg, uses, progress)
            if on_video is not None:
                on_video(target, seed, decode(backbone, latents))
    return TransferResult(adapter, history, fitted)
