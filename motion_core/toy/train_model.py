"""Train the toy text-to-video model on the toy world, from nothing, seeded.

    python -m motion_core.toy.train_model --out models/toy-t2v

Two stages, each a pure function of the seed:

1. the VAE learns to reconstruct world frames (L1 + MSE on pixels, a small penalty on the latent
   means keeps them near unit scale); its ``scaling_factor`` is then set to ``1 / std`` of the
   latents of 256 fresh clips, as Stable Diffusion's is;
2. with the VAE frozen, the UNet and the text encoder learn noise prediction (MSE on ε) on the
   latents of fresh random clips, every step new ones: 80 % with their full caption, 10 % with
   the motion phrase dropped ("a red circle") and 10 % with the empty prompt, which classifier-free
   guidance and inversion use. Steps mix videos (``batch`` clips of 8 frames) and images
   (``8 × batch`` single frames, each from another clip) — joint image-video training as
   ModelScope's was: a single frame costs an eighth of a clip, so appearance (colour and shape from
   the caption) sees eight times the examples, while the video steps teach motion. Without the
   image steps, 2400 video steps left the model ignoring the caption (35 % colours right).
   ``--video-share`` sets the share of video steps (default one in two, alternating);
   ``--min-snr γ`` weights each example's loss by ``min(SNR, γ) / SNR`` (Hang et al. 2023, "min-SNR
   weighting"), which stops the nearly clean timesteps — fine detail — from dominating the
   gradient, so more of it goes to the noisy ones, where layout, shape and motion are decided.
   An exponential moving average of the weights is what is saved.

``--init-from DIR`` continues from a model folder this script wrote: its tokenizer, text encoder,
VAE (with its ``scaling_factor``) and UNet are loaded, the VAE stage is skipped, and stage 2 runs
``--steps`` more steps with a fresh optimiser and learning-rate schedule.

Training clips are drawn with ``world.random_clip`` from seeds below :data:`HELD_OUT_SEEDS`; the
benchmarks draw their references from seeds at or above it, so no reference was seen in training.
``--device cuda`` trains on a GPU (as ``train_wan`` and ``train_animatediff`` do): clips, noise and
timesteps are still drawn on the CPU, so a seed draws the same ones on either.
Measured on 2 CPU cores: see ``BENCHMARKS.md`` (toy model) for the time the shipped model took.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import model, world

HELD_OUT_SEEDS = 10**9
"""Training clips use seeds below this; benchmark references use seeds from it upwards."""
CAPTION_DROP = {"no_motion": 0.1, "empty": 0.1}


def training_caption(clip: world.Clip, draw: float, drop: dict[str, float] = CAPTION_DROP) -> str:
    """The caption a training clip is shown with, for a uniform ``draw`` in [0, 1): empty with
    probability ``drop["empty"]``, without its motion phrase with probability ``drop["no_motion"]``."""
    if draw < drop["empty"]:
        return ""
    if draw < drop["empty"] + drop["no_motion"]:
        return f"a {clip.colour} {clip.shape}"
    return clip.caption


def clip_batch(rng: np.random.Generator, count: int, single_frames: bool = False,
               caption_drop: dict[str, float] = CAPTION_DROP, frames: int = model.FRAMES
               ) -> tuple[torch.Tensor, list[str]]:
    """``count`` fresh training clips of ``frames`` frames: pixels ``(count, 3, frames, H, W)`` in [-1, 1]
    and their captions (dropped as :func:`training_caption` says with ``caption_drop``).

    With ``single_frames``, one random frame of each clip: ``(count, 3, 1, H, W)``.
    """
    clips = [world.random_clip(int(rng.integers(HELD_OUT_SEEDS)), frames, model.WIDTH, model.HEIGHT)
             for _ in range(count)]
    pixels = np.stack([clip.frames for clip in clips])
    if single_frames:
        pixels = pixels[np.arange(count), rng.integers(frames, size=count)][:, None]
    pixels = torch.from_numpy(pixels).permute(0, 4, 1, 2, 3) * 2 - 1
    return pixels, [training_caption(clip, float(rng.random()), caption_drop) for clip in clips]


def _frames_of(pixels: torch.Tensor) -> torch.Tensor:
    """``(b, 3, f, h, w)`` -> ``(b·f, 3, h, w)``."""
    return pixels.permute(0, 2, 1, 3, 4).flatten(0, 1)


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))


def _log(stage: str, step: int, steps: int, loss: float, started: float) -> None:
    elapsed = time.time() - started
    print(f"{stage} {step}/{steps} loss {loss:.4f} ({elapsed / 60:.1f} min, "
          f"{elapsed / max(step, 1):.2f} s/step)", file=sys.stderr, flush=True)


def train_vae(vae: torch.nn.Module, rng: np.random.Generator, steps: int, clips_per_step: int = 4,
              lr: float = 1e-3, log_every: int = 100, frames: int = model.FRAMES, video: bool = False) -> float:
    """Reconstruction training of ``vae`` in place, on the device it is on, on clips of ``frames`` frames;
    returns the final mean absolute pixel error. ``video``: the VAE takes whole clips ``(b, 3, f, h, w)``
    (Wan's causal 3-D VAE); otherwise single frames ``(b·f, 3, h, w)``."""
    vae.train().requires_grad_(True)
    optimiser = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    started, error = time.time(), float("nan")
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = lr * _lr_factor(step, steps, 50)
        pixels = clip_batch(rng, clips_per_step, frames=frames)[0].to(module_device(vae))
        pixels = pixels if video else _frames_of(pixels)
        mean = vae.encode(pixels).latent_dist.mode()
        decoded = vae.decode(mean).sample
        error = (decoded - pixels).abs().mean()
        loss = error + (decoded - pixels).pow(2).mean() + 1e-4 * mean.pow(2).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            _log("vae", step + 1, steps, error.item() / 2, started)  # / 2: [-1, 1] -> [0, 1] pixels
    vae.eval().requires_grad_(False)
    return error.item() / 2


@torch.no_grad()
def set_scaling_factor(vae: torch.nn.Module, rng: np.random.Generator, clips: int = 256) -> float:
    """Set ``vae.config.scaling_factor`` to ``1 / std`` of the latents of ``clips`` fresh clips."""
    latents = torch.cat([vae.encode(_frames_of(clip_batch(rng, 16)[0]).to(module_device(vae))).latent_dist.mode()
                         for _ in range(clips // 16)])
    factor = float(1 / latents.std())
    vae.register_to_config(scaling_factor=factor)
    return factor


def _ema_update(average: torch.nn.Module, live: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for kept, new in zip(average.parameters(), live.parameters()):
            kept.lerp_(new, 1 - decay)


def is_image_step(step: int, video_share: float) -> bool:
    """Whether denoiser step ``step`` trains on single frames: the image steps are spread evenly, a
    share ``1 - video_share`` of them (0.5: steps 1, 3, 5, ...; 0.75: steps 3, 7, 11, ...)."""
    image_share = 1 - video_share
    return math.floor((step + 1) * image_share + 1e-9) > math.floor(step * image_share + 1e-9)


def encode_frames(vae: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Latents ``(b, c, f, h', w')`` of clips ``(b, 3, f, h, w)`` in [-1, 1], frame by frame through an
    image VAE (``AutoencoderKL``), scaled by its ``scaling_factor``."""
    latents = vae.encode(_frames_of(pixels).to(module_device(vae))).latent_dist.mode() * vae.config.scaling_factor
    return latents.unflatten(0, pixels.shape[0:1] + pixels.shape[2:3]).permute(0, 2, 1, 3, 4)


def embed_captions(tokenizer, text_encoder: torch.nn.Module, captions: list[str]) -> torch.Tensor:
    """CLIP text embeddings ``(b, MAX_TOKENS, TEXT_DIM)`` of ``captions`` (gradients flow into the encoder)."""
    tokens = tokenizer(captions, padding="max_length", max_length=model.MAX_TOKENS, truncation=True,
                       return_tensors="pt").input_ids
    return text_encoder(tokens.to(module_device(text_encoder)))[0]


def module_device(module: torch.nn.Module) -> torch.device:
    """The device ``module``'s weights are on: the toy trainings move their inputs there."""
    return next(module.parameters()).device


def parts_to(parts: dict, device: str | torch.device) -> dict:
    """``parts`` with every module among them moved to ``device`` in place (tokenizer and scheduler as they are)."""
    for part in parts.values():
        if isinstance(part, torch.nn.Module):
            part.to(device)
    return parts


def train_denoiser(parts: dict, rng: np.random.Generator, steps: int, batch: int = 8, lr: float = 8e-4,
                   ema_decay: float = 0.995, log_every: int = 100,
                   checkpoint=None, checkpoint_every: int = 0, video_share: float = 0.5,
                   weighting=None, trained: dict | None = None, call=None,
                   caption_drop: dict[str, float] = CAPTION_DROP, timesteps=None, stage: str = "unet",
                   sampling=None, encode=None, embed=None, frames: int = model.FRAMES,
                   denoiser: str = "unet") -> dict:
    """Denoiser training (VAE frozen); returns the parts with the trained ones replaced by their EMA.

    ``trained`` maps part names to the parameters of that part to train (default: every parameter of
    the denoiser and the text encoder); the other parameters of those parts stay frozen, and the EMA
    copy is of the whole part. ``call(denoiser, x_t (b, c, f, h, w), t (b,), text (b, tokens, dim))``
    runs the denoiser ``parts[denoiser]`` (default: ``UNet3DBackbone.call_denoiser``), trained on
    ``sampling``'s noising and target (default: the DDPM process of ``parts["scheduler"]``, ε-MSE;
    a :class:`~motion_core.sampling.FlowMatching` trains v). ``encode(pixels)`` makes the latents
    (default :func:`encode_frames`) and ``embed(captions)`` the text (default :func:`embed_captions`);
    clips have ``frames`` frames. ``checkpoint(ema_parts, step)`` is called every ``checkpoint_every``
    steps (0 = never); ``video_share`` is the share of video steps (:func:`is_image_step`),
    ``weighting`` a :class:`~motion_core.sampling.LossWeighting` (default: none, the plain MSE),
    ``caption_drop`` the caption drop rates (:func:`training_caption`), ``timesteps`` a
    :class:`~motion_core.sampling.TimestepDistribution` (default: uniform), ``stage`` the name the
    progress lines carry.

    It trains on the device the parts are on (:func:`parts_to`). Clips, noise and timesteps are drawn
    on the CPU and moved there, so a seed draws the same ones on every device.
    """
    from ..backbones.unet3d import UNet3DBackbone
    from ..sampling import DiscreteDiffusion, LossWeighting, TimestepDistribution

    call = call or UNet3DBackbone.call_denoiser
    network, text_encoder = parts[denoiser], parts["text_encoder"]
    sampling = sampling or DiscreteDiffusion(dict(parts["scheduler"].config))
    encode = encode or (lambda pixels: encode_frames(parts["vae"], pixels))
    embed = embed or (lambda captions: embed_captions(parts["tokenizer"], text_encoder, captions))
    weighting = weighting or LossWeighting()
    timesteps = timesteps or TimestepDistribution()
    if trained is None:
        trained = {denoiser: list(network.parameters()), "text_encoder": list(text_encoder.parameters())}
    params = [p for part in trained.values() for p in part]
    for name, part_params in trained.items():
        parts[name].train().requires_grad_(False)
        for parameter in part_params:
            parameter.requires_grad_(True)
    averages = {name: copy.deepcopy(parts[name]).eval().requires_grad_(False) for name in trained}
    averaged_parts = {**parts, **averages}  # updated in place below
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
    started, running = time.time(), None
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = lr * _lr_factor(step, steps, 100)
        images = is_image_step(step, video_share)
        pixels, captions = clip_batch(rng, batch * frames if images else batch, single_frames=images,
                                      caption_drop=caption_drop, frames=frames)
        with torch.no_grad():
            latents = encode(pixels)
        t = sampling.draw_timesteps(latents.shape[0], generator, timesteps).to(latents.device)
        noise = torch.randn(latents.shape, generator=generator).to(latents.device)
        predicted = call(network, sampling.noised(latents, noise, t), t, embed(captions))
        errors = (predicted - sampling.target(latents, noise, t)).pow(2).mean(dim=(1, 2, 3, 4))
        weights = weighting.weights(sampling, t)
        loss = errors.mean() if weights is None else (errors * weights.to(errors.device)).mean()
        if not torch.isfinite(loss):
            raise RuntimeError(f"the loss became {loss.item()} at step {step}; lower --lr")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        decay = min(ema_decay, (1 + step) / (10 + step))  # a short warm-up: early averages follow the weights
        for name, average in averages.items():
            _ema_update(average, parts[name], decay)
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            _log(stage, step + 1, steps, running, started)
        if checkpoint is not None and checkpoint_every and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            checkpoint(averaged_parts, step + 1)
    for name in trained:
        parts[name].eval().requires_grad_(False)
    return averaged_parts


def save_atomically(parts: dict, out: Path, record: dict, overwrite: bool = False,
                    pipeline_class: str | None = None) -> Path:
    """Write the model folder next to ``out`` and move it into place only when complete
    (``pipeline_class``: what its ``model_index.json`` names; default ModelScope's)."""
    return write_folder_atomically(lambda folder: model.save_model(parts, folder, pipeline_class), out, record,
                                   overwrite)


def write_folder_atomically(write, out: Path, record: dict, overwrite: bool = False) -> Path:
    """``write(folder)`` a folder next to ``out``, add ``training.json`` (``record``), and move it into
    place only when complete, so that an interrupted run never leaves half a model at ``out``."""
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another --out or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        write(staging / "model")
        (staging / "model" / "training.json").write_text(json.dumps(record, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        (staging / "model").rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def add_output_arguments(parser: argparse.ArgumentParser, default_out: str) -> None:
    """The options every toy training script takes: ``--out``, ``--checkpoint-every``, ``--overwrite``."""
    parser.add_argument("--out", default=default_out, help="the diffusers folder to write (default: %(default)s)")
    parser.add_argument("--checkpoint-every", type=int, default=0,
                        help="also write <out>-step<N> every N steps, to evaluate while training (0 = never)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")


def output_folder(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """``--out``, refused (exit 2) when it exists and ``--overwrite`` was not given."""
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        parser.error(f"{out} exists; choose another --out or pass --overwrite")
    return out


def add_from_nothing_arguments(parser: argparse.ArgumentParser, vae_steps: int, steps: int, lr: float,
                               frames: int) -> None:
    """The options of a toy model trained from nothing (VAE, then denoiser and text encoder) or continued:
    ``--seed``, ``--init-from``, ``--vae-steps``, ``--steps``, ``--batch``, ``--lr``, ``--video-share``."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-from", metavar="DIR",
                        help="continue from this model folder (written by this script): no VAE stage, its VAE kept")
    parser.add_argument("--vae-steps", type=int,
                        help=f"VAE steps (default: {vae_steps}; none with --init-from)")
    parser.set_defaults(default_vae_steps=vae_steps)
    parser.add_argument("--steps", type=int, default=steps,
                        help="denoiser + text encoder steps, video and image steps in turn (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=8,
                        help=f"clips per video step; image steps take {frames}x as many frames (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--video-share", type=float, default=0.5,
                        help="share of the denoiser steps that are video steps, the rest image steps "
                             "(default: %(default)s)")


def check_from_nothing_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, denoiser: str) -> None:
    """Refuse (exit 2) what :func:`add_from_nothing_arguments`' options cannot mean together; ``denoiser`` is
    the subfolder a folder to continue from has. Sets ``args.vae_steps`` (0 when continuing)."""
    if args.init_from and args.vae_steps:
        parser.error("--vae-steps and --init-from exclude each other: a continued model keeps its VAE")
    if args.init_from and not (Path(args.init_from) / denoiser).is_dir():
        parser.error(f"--init-from: {args.init_from} is not a model folder this script wrote")
    if not 0 < args.video_share <= 1:
        parser.error(f"--video-share must be in (0, 1], got {args.video_share}")
    if args.vae_steps is None:
        args.vae_steps = 0 if args.init_from else args.default_vae_steps


def min_snr_weighting(gamma: float):
    """Min-SNR weighting with ``gamma`` (:class:`~motion_core.sampling.LossWeighting`); the plain MSE for 0."""
    from ..sampling import LossWeighting

    return LossWeighting("min_snr", gamma).validate() if gamma else LossWeighting()


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device``, which every toy training script takes."""
    parser.add_argument("--device", default="cpu",
                        help="where to train: cpu, cuda or cuda:N; clips, noise and timesteps are drawn on the CPU, "
                             "so a seed draws the same ones on every device (default: %(default)s)")


def checked_device(parser: argparse.ArgumentParser, args: argparse.Namespace) -> torch.device:
    """``--device`` as a ``torch.device``, refused (exit 2) when it is not one or this machine lacks it."""
    try:
        device = torch.device(args.device)
    except (RuntimeError, ValueError):
        parser.error(f"--device: {args.device!r} is not a device; use cpu, cuda or cuda:N")
    if device.type not in ("cpu", "cuda"):
        parser.error(f"--device: {args.device!r}; the toy trainings run on cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this torch sees no CUDA device (torch {torch.__version__})")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        parser.error(f"--device {args.device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def run_record(script: str, argv: list[str] | None, args: argparse.Namespace) -> dict:
    """The start of a from-nothing run's ``training.json``: its command (``python -m motion_core.toy.<script>
    ...``), seed and VAE steps and, when continuing, the folder and the record of the run it continues."""
    record = {"command": f"python -m motion_core.toy.{script} " + " ".join(argv if argv is not None else sys.argv[1:]),
              "seed": args.seed, "vae_steps": args.vae_steps}
    if args.init_from:
        init_record = Path(args.init_from) / "training.json"
        record.update(init_from=str(args.init_from),
                      init_training=json.loads(init_record.read_text()) if init_record.is_file() else None)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m motion_core.toy.train_model", description=__doc__.split("\n")[0])
    add_output_arguments(parser, "models/toy-t2v")
    add_from_nothing_arguments(parser, vae_steps=2500, steps=1600, lr=8e-4, frames=model.FRAMES)
    parser.add_argument("--min-snr", type=float, default=0.0, metavar="GAMMA",
                        help="min-SNR loss weighting with this gamma, e.g. 5 (default: 0 = off)")
    add_device_argument(parser)
    args = parser.parse_args(argv)
    out = output_folder(parser, args)
    check_from_nothing_arguments(parser, args, "unet")
    device = checked_device(parser, args)

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    started = time.time()
    record = run_record("train_model", argv, args)
    if args.init_from:
        parts = parts_to(model.load_parts(args.init_from), device)
    else:
        with tempfile.TemporaryDirectory() as tokenizer_folder:
            parts = model.build_parts(model.write_tokenizer(tokenizer_folder), seed=args.seed)
        parts_to(parts, device)
        vae_error = train_vae(parts["vae"], rng, args.vae_steps)
        set_scaling_factor(parts["vae"], rng)
        record.update(vae_pixel_error=round(vae_error, 5))
        print(f"vae: mean absolute pixel error {vae_error:.4f}, scaling_factor "
              f"{parts['vae'].config.scaling_factor:.4f}", file=sys.stderr)
    parts["vae"].eval().requires_grad_(False)
    record.update(device=str(device), steps=args.steps, batch=args.batch, lr=args.lr, video_share=args.video_share,
                  min_snr=args.min_snr, scaling_factor=parts["vae"].config.scaling_factor, frames=model.FRAMES,
                  width=model.WIDTH, height=model.HEIGHT)

    def checkpoint(ema_parts: dict, step: int) -> None:
        save_atomically(ema_parts, out.with_name(f"{out.name}-step{step}"), {**record, "steps": step}, overwrite=True)

    trained = train_denoiser(parts, rng, args.steps, args.batch, args.lr, checkpoint=checkpoint,
                             checkpoint_every=args.checkpoint_every, video_share=args.video_share,
                             weighting=min_snr_weighting(args.min_snr))
    record["minutes"] = round((time.time() - started) / 60, 1)
    record["threads"] = torch.get_num_threads()
    save_atomically(trained, out, record, overwrite=args.overwrite)
    print(f"wrote {out} in {record['minutes']} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
