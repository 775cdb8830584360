"""Measure what the toy model makes: caption following of the base model, motion transfer scores.

Everything here runs the library's own pipeline (``motion_core.pipeline``) on a loaded backbone and
scores the decoded frames with ``tracker``; the benchmark scripts in ``benchmarks/`` only choose
the settings, repeat over seeds and write the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from ..backbones.base import VideoBackbone
from ..noise import fresh_noise
from ..progress import Progress
from ..sample import guided
from . import model, tracker, world


@dataclass(frozen=True)
class Prompted:
    """One generated clip of the caption-following test and what the tracker saw in it."""

    shape: str
    colour: str
    motion: str
    seed: int
    track: tracker.Track

    @property
    def colour_right(self) -> bool:
        return self.track.colour == self.colour

    @property
    def shape_right(self) -> bool:
        return self.track.shape == self.shape

    @property
    def motion_right(self) -> bool:
        return tracker.motion_word(self.track) == self.motion


def clip_latents(backbone: VideoBackbone, clips: Sequence[world.Clip]) -> torch.Tensor:
    """The backbone's latents ``(len(clips), c, f', h', w')`` of toy clips, one encoding per clip."""
    return torch.cat([backbone.encode_video(world.to_image_tensor(clip)) for clip in clips])


def decoded_clips(backbone: VideoBackbone, latents: torch.Tensor) -> np.ndarray:
    """Frames ``(b, f, h, w, 3)`` float32 in [0, 1] of latents ``(b, c, f', h', w')``."""
    decoded = backbone.decode_latents(latents.to(backbone.dtype)).numpy()  # (b·f, h, w, 3)
    return decoded.reshape(latents.shape[0], -1, *decoded.shape[1:])


def generate_batch(backbone: VideoBackbone, prompts: Sequence[str], seeds: Sequence[int], steps: int = 25,
                   cfg: float = 7.5, width: int = model.WIDTH, height: int = model.HEIGHT) -> np.ndarray:
    """Sample one clip per prompt from fresh noise of its seed, all in one batch (no adapter).

    Returns frames ``(len(prompts), frames, height, width, 3)`` float32 in [0, 1] (the toy clip length
    for this model, :func:`model.clip_frames`). The noise of a seed is the same whatever else is in the
    batch (it is drawn per clip).
    """
    scale, frames = backbone.latent_scale(), model.clip_frames(backbone.frame_multiple)
    shape = (1, backbone.denoiser_module.config.in_channels, backbone.latent_frames(frames), height // scale,
             width // scale)
    x_T = torch.cat([fresh_noise(torch.empty(shape), seed) for seed in seeds]).to(backbone.device, backbone.dtype)
    cond, uncond = backbone.encode_prompt(list(prompts)), backbone.encode_prompt([""])
    with torch.no_grad():
        denoise = guided(partial(backbone.call_denoiser, backbone.denoiser_module), cond, uncond, cfg)
        latents = backbone.sampling.sample(denoise, x_T, steps)
    return decoded_clips(backbone, latents)


def caption_following(backbone: VideoBackbone, seeds: Sequence[int] = (0,), motions: Sequence[str] = world.MOTIONS,
                      steps: int = 25, cfg: float = 7.5, batch: int = 20,
                      progress: Progress | None = None) -> list[Prompted]:
    """Generate every shape × colour × motion caption once per seed and track each clip."""
    cases = [(shape, colour, motion, seed) for seed in seeds for motion in motions
             for colour in world.COLOURS for shape in world.SHAPES]
    results: list[Prompted] = []
    for start in range(0, len(cases), batch):
        chunk = cases[start:start + batch]
        clips = generate_batch(backbone, [world.caption(s, c, m) for s, c, m, _ in chunk],
                               [seed * 100_003 + start + i for i, (*_, seed) in enumerate(chunk)], steps, cfg)
        results += [Prompted(s, c, m, seed, tracker.track(clip)) for (s, c, m, seed), clip in zip(chunk, clips)]
        if progress is not None:
            progress(len(results), len(cases))
    return results


# --- motion transfer ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Transfer:
    """One generated clip of the transfer benchmark, scored against its reference and target.

    Attributes:
        fidelity: :func:`tracker.motion_fidelity` of the reference and generated tracks; 0 when the
            generated clip holds no object or it does not move (nothing of the path was transferred).
        target_colour, target_shape: the tracker saw the target prompt's colour / shape.
        leaked: the tracker saw the reference's colour or shape instead.
        found: the object was found in every frame.
    """

    fidelity: float
    target_colour: bool
    target_shape: bool
    leaked: bool
    found: bool


def score_transfer(reference: world.Clip, generated: np.ndarray, target_shape: str, target_colour: str) -> Transfer:
    """Score generated frames ``(f, h, w, 3)`` against the reference clip and the target's words."""
    seen = tracker.track(generated)
    fidelity = tracker.motion_fidelity(tracker.track(reference.frames), seen)
    return Transfer(0.0 if np.isnan(fidelity) else fidelity, seen.colour == target_colour, seen.shape == target_shape,
                    seen.colour == reference.colour or seen.shape == reference.shape, bool(seen.found.all()))


def target_for(reference: world.Clip, index: int) -> tuple[str, str]:
    """A (shape, colour) different from the reference's in both, chosen by ``index``."""
    shapes = [s for s in world.SHAPES if s != reference.shape]
    colours = [c for c in world.COLOURS if c != reference.colour]
    return shapes[index % len(shapes)], colours[index % len(colours)]


# --- do caption words reach the model? ----------------------------------------------------------------

WORD_PAIRS = {
    "motion word (left / right)": ("a red circle moving left", "a red circle moving right"),
    "motion phrase (moving up / zooming in)": ("a red circle moving up", "a red circle zooming in"),
    "colour (red / blue)": ("a red circle moving left", "a blue circle moving left"),
    "shape (circle / star)": ("a red circle moving left", "a red star moving left"),
}
"""Caption pairs that differ in one kind of word, for :func:`word_signal`."""


def text_entry_sites(backbone: VideoBackbone) -> list[tuple[str, torch.nn.Module]]:
    """Where the text enters the denoiser: a UNet's spatial transformers (``find_appearance_sites``), or
    a DiT's cross-attentions (``attn2``, Wan's)."""
    module = backbone.denoiser_module
    return backbone.find_appearance_sites(module) or [(name, part) for name, part in module.named_modules()
                                                       if name.endswith(".attn2")]


def word_signal(backbone: VideoBackbone, pairs: dict[str, tuple[str, str]] = WORD_PAIRS, t: int = 800,
                seed: int = 0) -> dict[str, tuple[float, float]]:
    """How far two captions' difference carries into the model, per pair: ``(text, features)``, the
    relative difference ``|a - b| / |a|`` of the text encoder's outputs and the mean one of the
    outputs of the layers where the text enters the denoiser (:func:`text_entry_sites`) on the
    same noisy input (8 frames of fresh noise at timestep ``t``). A word the model ignores gives ~0."""
    scale = backbone.latent_scale()
    frames = backbone.latent_frames(model.clip_frames(backbone.frame_multiple))
    x = fresh_noise(torch.empty(1, backbone.denoiser_module.config.in_channels, frames, model.HEIGHT // scale,
                                model.WIDTH // scale), seed).to(backbone.device, backbone.dtype)
    outputs: dict[str, list[torch.Tensor]] = {}
    handles = [module.register_forward_hook(lambda m, i, o, name=name: outputs.setdefault(name, []).append(
        (o[0] if isinstance(o, tuple) else getattr(o, "sample", o)).float())) for name, module in
        text_entry_sites(backbone)]
    signal = {}
    try:
        for label, captions in pairs.items():
            outputs.clear()
            text = backbone.encode_prompt(list(captions)).float()
            with torch.no_grad():
                for k in range(2):
                    backbone.call_denoiser(backbone.denoiser_module, x, torch.tensor([t]), text[k:k + 1])
            features = np.mean([((a - b).norm() / a.norm()).item() for a, b in outputs.values()])
            signal[label] = (((text[0] - text[1]).norm() / text[0].norm()).item(), float(features))
    finally:
        for handle in handles:
            handle.remove()
    return signal


def motion_phrase_errors(backbone: VideoBackbone, clips: Sequence[world.Clip], t: int,
                         seed: int = 0) -> tuple[float, float, float]:
    """Prediction MSE (ε, or v for a flow model) on ``clips`` at timestep ``t`` with each clip's caption,
    with its motion phrase swapped for the opposite one of :data:`world.MOTIONS` (six places on) and
    with it left out: equal errors mean the model does not use the motion words."""
    latents = clip_latents(backbone, clips)
    half = len(world.MOTIONS) // 2
    opposite = {m: world.MOTIONS[(i + half) % len(world.MOTIONS)] for i, m in enumerate(world.MOTIONS)}
    captions = ([clip.caption for clip in clips],
                [world.caption(clip.shape, clip.colour, opposite[clip.motion]) for clip in clips],
                [f"a {clip.colour} {clip.shape}" for clip in clips])
    noise = fresh_noise(latents, seed)
    steps = torch.full((len(clips),), t)
    noisy, target = backbone.sampling.noised(latents, noise, steps), backbone.sampling.target(latents, noise, steps)
    errors = []
    for texts in captions:
        with torch.no_grad():
            predicted = backbone.call_denoiser(backbone.denoiser_module, noisy, steps, backbone.encode_prompt(texts))
        errors.append((predicted.float() - target).pow(2).mean().item())
    return tuple(errors)


DRIFT_WORDS = ("left", "right", "up", "down")
"""The motions whose words :func:`motion_word_drift` compares (their x/y signs are known)."""


def motion_word_drift(backbone: VideoBackbone, t: float = 900, seeds: int = 8, motions: Sequence[str] = DRIFT_WORDS,
                      shape: str = "circle", colour: str = "red") -> dict[str, tuple[float, float]]:
    """Does the model's clean-clip estimate at high noise follow the motion word? Per motion, the
    drift ``(dx, dy)`` in pixels (first frame to last) of the centre of the caption's colour in the
    decoded mean of the x0 estimates from ``seeds`` fresh noises taken as ``x_t`` at timestep ``t``
    ("a red circle moving left", ...). A model that hears the words drifts the named way ("left":
    dx < 0); one that does not gives every word the same drift."""
    scale, frames = backbone.latent_scale(), backbone.latent_frames(model.clip_frames(backbone.frame_multiple))
    shape_of_noise = (1, backbone.denoiser_module.config.in_channels, frames, model.HEIGHT // scale,
                      model.WIDTH // scale)
    x_t = torch.cat([fresh_noise(torch.empty(shape_of_noise), seed) for seed in range(seeds)])
    x_t = x_t.to(backbone.device, backbone.dtype)
    steps = torch.full((seeds,), float(t))
    target = np.asarray(world.COLOURS[colour], np.float32)
    drift = {}
    for motion in motions:
        text = backbone.encode_prompt([world.caption(shape, colour, motion)] * seeds)
        with torch.no_grad():
            prediction = backbone.call_denoiser(backbone.denoiser_module, x_t, steps, text)
            x0 = backbone.sampling.x0_from(prediction, x_t, steps).mean(dim=0, keepdim=True)
        pixels = backbone.decode_latents(x0.to(backbone.dtype)).numpy()  # (f, h, w, 3)
        # how much each pixel looks like the colour: closeness to it, above each frame's median
        likeness = -np.linalg.norm(pixels - target, axis=-1)
        weight = np.clip(likeness - np.median(likeness, axis=(1, 2), keepdims=True), 0, None)
        rows, columns = np.mgrid[0:pixels.shape[1], 0:pixels.shape[2]]
        centres = np.stack([(weight * columns).sum(axis=(1, 2)), (weight * rows).sum(axis=(1, 2))], axis=1)
        centres /= weight.sum(axis=(1, 2))[:, None] + 1e-8
        drift[motion] = tuple(float(v) for v in centres[-1] - centres[0])
    return drift


# --- where a model loses shapes -------------------------------------------------------------------

def _noised_with_captions(backbone: VideoBackbone, clips: Sequence[world.Clip], t: float,
                          seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A denoiser call's inputs for ``clips`` noised to timestep ``t`` with the noise of ``seed``: ``x_t``
    ``(b, c, f', h', w')`` on the backbone's device and dtype, the timesteps ``(b,)`` and the captions' text."""
    latents = clip_latents(backbone, clips).float()
    steps = torch.full((len(clips),), float(t))
    x_t = backbone.sampling.noised(latents, fresh_noise(latents, seed), steps).to(backbone.device, backbone.dtype)
    return x_t, steps.to(backbone.device), backbone.encode_prompt([clip.caption for clip in clips])


def shapes_kept(backbone: VideoBackbone, clips: Sequence[world.Clip], t: float | None = None,
                seed: int = 0) -> list[bool]:
    """Per clip, whether the tracker still sees its shape after the VAE's round trip (``t`` None), or in
    the decoded clean-clip estimate the denoiser makes, with the clip's caption, from the clip noised
    to timestep ``t`` (one call; where a model that cannot keep a visible shape loses it)."""
    if t is None:
        latents = clip_latents(backbone, clips).float()
    else:
        x_t, steps, text = _noised_with_captions(backbone, clips, t, seed)
        with torch.no_grad():
            prediction = backbone.call_denoiser(backbone.denoiser_module, x_t, steps, text)
            latents = backbone.sampling.x0_from(prediction.float(), x_t.float(), steps)
    frames = decoded_clips(backbone, latents)
    return [tracker.track(clip_frames).shape == clip.shape for clip_frames, clip in zip(frames, clips)]


@dataclass(frozen=True)
class AttentionSpread:
    """One self-attention call of a denoiser: over how many ``tokens``, and how many it attends to in effect
    (``exp`` of the attention weights' entropy, mean over queries and heads; ``tokens`` for a uniform average,
    1 for a look at one token)."""

    tokens: int
    attended: float


def self_attention_spread(backbone: VideoBackbone, clips: Sequence[world.Clip], t: float,
                          seed: int = 0) -> list[AttentionSpread]:
    """Per self-attention call of one denoiser call on ``clips`` noised to timestep ``t`` (with their
    captions), in call order: how spread its attention weights are.

    The weights are the ones the model computes, after its q/k norms and rotary embeddings: every
    ``scaled_dot_product_attention`` call (how diffusers runs attention) is recorded for this one
    denoiser call; unmasked calls whose keys are the queries' own tokens are self-attention. A transformer whose
    self-attention attends to nearly every token averages the clip and cannot place an outline."""
    functional = torch.nn.functional
    sdpa, recorded = functional.scaled_dot_product_attention, []

    def recording(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
        if query.shape[-2] == key.shape[-2] and attn_mask is None:  # (b, heads, tokens, channels)
            logits = query.float() @ key.float().transpose(-1, -2) * (scale or query.shape[-1] ** -0.5)
            weights = logits.softmax(dim=-1)
            entropy = -(weights * weights.clamp_min(1e-12).log()).sum(dim=-1)
            recorded.append(AttentionSpread(query.shape[-2], entropy.exp().mean().item()))
        return sdpa(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                    **kwargs)

    x_t, steps, text = _noised_with_captions(backbone, clips, t, seed)
    functional.scaled_dot_product_attention = recording
    try:
        with torch.no_grad():
            backbone.call_denoiser(backbone.denoiser_module, x_t, steps, text)
    finally:
        functional.scaled_dot_product_attention = sdpa
    return recorded


def unconditional_shapes(backbone: VideoBackbone, seeds: Sequence[int], steps: int = 25) -> dict[str, int]:
    """How often the tracker sees each shape (and ``""``: no object) in clips sampled from the fresh noise
    of ``seeds`` with the empty prompt and no guidance: a model that can draw the world's shapes draws
    each about a quarter of the time."""
    clips = generate_batch(backbone, [""] * len(seeds), seeds, steps, cfg=1.0)
    counts = {shape: 0 for shape in (*world.SHAPES, "")}
    for clip in clips:
        counts[tracker.track(clip).shape] += 1
    return counts
