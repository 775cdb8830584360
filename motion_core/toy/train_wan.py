"""Train the toy Wan model on the toy world, from nothing, seeded.

    python -m motion_core.toy.train_wan --out models/toy-wan

The toy world's third model family: Wan's architecture at toy size, so the methods can be measured
on a flow-matching DiT with full 3-D self-attention (issue 18). A diffusers ``WanPipeline`` folder,
loaded by ``motion_core.backbones.load_backbone`` as the ``wan`` family through the code users'
Wan folders go through:

- tokenizer: T5-style unigram pieces, one per world word (:func:`motion_core.testing.write_tiny_t5_tokenizer`);
- text encoder: ``UMT5EncoderModel``, 2 layers of width :data:`TEXT_DIM`, run at Wan's 512 tokens with
  the padding zeroed (``wan.text_embeddings``), trained together with the transformer;
- VAE: ``AutoencoderKLWan`` (causal 3-D convolutions, Wan 2.1's blocks), 2× in space and **not** in
  time (``scale_factor_temporal`` 1; the real one compresses 4×): 32×32 pixels ↔ 4×16×16 latents per
  frame, clips of 4k+1 frames as Wan's (:data:`FRAMES` = 9), latents normalised per channel by the
  ``latents_mean`` / ``latents_std`` measured after its training (as Wan's config carries them);
- transformer: ``WanTransformer3DModel``, patch (1, :data:`PATCH`, :data:`PATCH`), :data:`LAYERS` blocks of width
  :data:`WIDTH` (3-D RoPE gives each token its frame), rectified flow with shift :data:`FLOW_SHIFT`
  (Wan 2.1 480p's).

Two stages, each a pure function of the seed: the VAE learns to reconstruct 9-frame clips
(``train_model.train_vae``); then, VAE frozen, the transformer and the text encoder learn the
velocity ``v = eps - x0`` (plain v-MSE, σ drawn uniformly and shifted as the model samples) on
fresh clips, video and image steps in turn (as the toy text-to-video model; captions dropped as
it drops them). An exponential moving average of the weights is what is saved.
``--init-from`` continues from a folder this script wrote (VAE kept, no VAE stage); ``--vae-from``
starts a new transformer and text encoder on such a folder's VAE (``--width``, ``--heads``, ``--layers``,
``--ffn``, ``--patch`` size a new transformer);
``--vae-width``, ``--vae-scale`` (2 or 4) and ``--latent-channels`` size a new VAE (:class:`VaeShape`);
``--timestep-shift`` moves the training σ draw toward low noise (< 1) or high noise (> 1); ``--qk-gain`` starts
a new transformer's q/k RMS-norm gains higher (sharper attention); ``--frozen-text-encoder`` trains the
transformer only; ``--device cuda`` trains on a GPU (the shape lane in README's toy Wan section takes
hours on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..backbones import wan
from ..sampling import FlowMatching, TimestepDistribution
from . import model
from .train_model import (add_device_argument, add_from_nothing_arguments, add_output_arguments, checked_device,
                          check_from_nothing_arguments, clip_batch, module_device, output_folder, parts_to, run_record,
                          train_denoiser, train_vae, write_folder_atomically)

FRAMES = 9
"""Frames per training clip: Wan takes 4k + 1."""
TEXT_DIM, WIDTH, HEADS, LAYERS, FFN, PATCH = 64, 96, 6, 4, 256, 2
"""Text encoder width; the shipped transformer's width, heads (of 16), blocks, feed-forward width and
spatial patch (latent pixels per token side)."""
LATENT_CHANNELS = 4
VAE_WIDTH = 16
"""The VAE's first-level channels (``AutoencoderKLWan``'s ``base_dim``; each level below has twice as many)."""
VAE_SCALE = 2
"""The shipped VAE's spatial compression (Wan 2.1's is 8×, with 16 channels)."""
FLOW_SHIFT = 3.0
PARTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")


@dataclass(frozen=True)
class VaeShape:
    """A new toy VAE: first-level ``width``, spatial compression ``scale`` (2 or 4; one downsampling level
    each), ``channels`` latent channels. Never 16: the backbone would take the latents for Wan 2.1's and give
    ComfyUI its latent format (``wan.LATENT_FORMATS``)."""

    width: int = VAE_WIDTH
    scale: int = VAE_SCALE
    channels: int = LATENT_CHANNELS

    def problem(self) -> str | None:
        """Why this VAE cannot be built (``None`` if it can)."""
        if min(self.width, self.channels) < 1:
            return "--vae-width and --latent-channels must be whole numbers >= 1"
        if self.scale not in (2, 4):
            return f"--vae-scale must be 2 or 4, got {self.scale}"
        if (False, self.channels) in wan.LATENT_FORMATS:
            return f"--latent-channels {self.channels} would pass for a real Wan VAE's latents in ComfyUI"
        return None

    @property
    def latent_side(self) -> int:
        return model.WIDTH // self.scale



@dataclass(frozen=True)
class TransformerShape:
    """The toy transformer's size: ``width`` split into ``heads`` heads, ``layers`` blocks, feed-forward
    width ``ffn``, tokens of ``patch`` × ``patch`` latent pixels (Wan's RoPE gives each of height and
    width a third of a head's channels, rounded down to even)."""

    width: int = WIDTH
    heads: int = HEADS
    layers: int = LAYERS
    ffn: int = FFN
    patch: int = PATCH

    def problem(self, latent_side: int = model.WIDTH // VAE_SCALE) -> str | None:
        """Why this shape cannot be built on latents ``latent_side`` wide (``None`` if it can)."""
        if min(self.width, self.heads, self.layers, self.ffn, self.patch) < 1:
            return "every size must be a whole number >= 1"
        if self.width % self.heads:
            return f"the width {self.width} is not a multiple of the heads {self.heads}"
        if self.width // self.heads < 6:
            return f"a head of {self.width // self.heads} channels leaves RoPE no channel for height and width"
        if latent_side % self.patch:
            return f"a patch of {self.patch} does not tile the {latent_side} x {latent_side} latent"
        return None


def build_parts(tokenizer_folder: str | Path, seed: int = 0, shape: TransformerShape = TransformerShape(),
                vae: VaeShape = VaeShape(), qk_gain: float = 1.0) -> dict:
    """Untrained parts ``{tokenizer, text_encoder, vae, transformer, scheduler}`` with seeded weights; the
    tokenizer is written to ``tokenizer_folder``, the transformer is of ``shape`` (its q/k RMS-norm gains
    start at ``qk_gain``), the VAE of ``vae``."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from ..testing import write_tiny_t5_tokenizer

    tokenizer = write_tiny_t5_tokenizer(tokenizer_folder, model.vocabulary())
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tokenizer), d_model=TEXT_DIM, d_kv=TEXT_DIM // 4, d_ff=2 * TEXT_DIM, num_layers=2, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0))
    levels = [1, 2] if vae.scale == 2 else [1, 2, 4]
    autoencoder = AutoencoderKLWan(base_dim=vae.width, z_dim=vae.channels, dim_mult=levels, num_res_blocks=1,
                                   temperal_downsample=[False] * (len(levels) - 1), latents_mean=[0.0] * vae.channels,
                                   latents_std=[1.0] * vae.channels, scale_factor_temporal=1,
                                   scale_factor_spatial=vae.scale)
    transformer = WanTransformer3DModel(
        patch_size=(1, shape.patch, shape.patch), num_attention_heads=shape.heads,
        attention_head_dim=shape.width // shape.heads, in_channels=vae.channels, out_channels=vae.channels,
        text_dim=TEXT_DIM, freq_dim=64, ffn_dim=shape.ffn, num_layers=shape.layers, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    with torch.no_grad():
        for block in transformer.blocks:
            for attention in (block.attn1, block.attn2):
                attention.norm_q.weight.fill_(qk_gain)
                attention.norm_k.weight.fill_(qk_gain)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=FLOW_SHIFT)
    return {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": autoencoder, "transformer": transformer,
            "scheduler": scheduler}


def transformer_shape(transformer: torch.nn.Module) -> dict:
    """The :class:`TransformerShape` fields of a built ``WanTransformer3DModel``, as a record."""
    config = transformer.config
    return {"width": config.num_attention_heads * config.attention_head_dim, "heads": config.num_attention_heads,
            "layers": config.num_layers, "ffn": config.ffn_dim, "patch": config.patch_size[-1]}


def load_vae(folder: str | Path) -> torch.nn.Module:
    """The VAE of a folder this script wrote, in float32."""
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan.from_pretrained(Path(folder) / "vae", torch_dtype=torch.float32)


def load_parts(folder: str | Path) -> dict:
    """The parts of a folder this script wrote, in float32, to train further."""
    from diffusers import UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import AutoTokenizer, UMT5EncoderModel

    folder = Path(folder)
    return {"tokenizer": AutoTokenizer.from_pretrained(folder / "tokenizer"),
            "text_encoder": UMT5EncoderModel.from_pretrained(folder / "text_encoder", dtype=torch.float32),
            "vae": load_vae(folder),
            "transformer": WanTransformer3DModel.from_pretrained(folder / "transformer", torch_dtype=torch.float32),
            "scheduler": UniPCMultistepScheduler.from_pretrained(folder / "scheduler")}


def vae_latents(vae: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Raw latents (the posterior's mode) ``(b, c, f, h/2, w/2)`` of clips ``(b, 3, f, h, w)`` in [-1, 1]."""
    return vae.encode(pixels.to(module_device(vae))).latent_dist.mode()


@torch.no_grad()
def set_latent_statistics(vae: torch.nn.Module, rng: np.random.Generator, clips: int = 128) -> tuple[list, list]:
    """Set the VAE's ``latents_mean`` / ``latents_std`` (per channel) from the latents of ``clips`` fresh
    clips, as Wan's VAE config carries them; returns both lists."""
    latents = torch.cat([vae_latents(vae, clip_batch(rng, 16, frames=FRAMES)[0]) for _ in range(clips // 16)])
    mean = latents.mean(dim=(0, 2, 3, 4)).tolist()
    std = latents.std(dim=(0, 2, 3, 4)).tolist()
    vae.register_to_config(latents_mean=[round(m, 5) for m in mean], latents_std=[round(s, 5) for s in std])
    return mean, std


def normalised_latents(vae: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Latents as the Wan backbone gives the transformer: ``(raw - latents_mean) / latents_std`` per channel."""
    latents = vae_latents(vae, pixels)
    shape = (1, -1, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean, dtype=latents.dtype, device=latents.device).reshape(shape)
    std = torch.tensor(vae.config.latents_std, dtype=latents.dtype, device=latents.device).reshape(shape)
    return (latents - mean) / std


def caption_embedder(tokenizer, text_encoder: torch.nn.Module):
    """``embed(captions) -> (b, 512, TEXT_DIM)``: Wan's prompt embeddings (what ``WanBackbone.encode_prompt``
    gives), differentiable.

    The encoder runs on :data:`model.MAX_TOKENS` positions only and the rest is zero padding: the
    padding's attention is masked inside the encoder and its outputs are zeroed, so the embeddings
    are the same as at Wan's 512 tokens (tested) at a thirtieth of the cost."""
    adapter = wan.TransformersTokenizer(tokenizer)

    def embed(captions: list[str]) -> torch.Tensor:
        ids, mask = adapter.tokens(captions, model.MAX_TOKENS)
        device = module_device(text_encoder)
        text = wan.text_embeddings(text_encoder, ids.to(device), mask.to(device))
        return torch.nn.functional.pad(text, (0, 0, 0, wan.TEXT_TOKENS - model.MAX_TOKENS))

    return embed


def save_model(parts: dict, folder: Path) -> Path:
    return wan.save_folder(folder, *(parts[name] for name in PARTS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m motion_core.toy.train_wan", description=__doc__.split("\n")[0])
    add_output_arguments(parser, "models/toy-wan")
    add_from_nothing_arguments(parser, vae_steps=1500, steps=3000, lr=5e-4, frames=FRAMES)
    parser.add_argument("--timestep-shift", type=float, default=1.0,
                        help="shift of the training σ draw before the model's own flow shift (TimestepDistribution): "
                             f"1 draws as the model samples (shifted by {FLOW_SHIFT}), 1/{FLOW_SHIFT:g} draws σ "
                             "uniformly, less draws more low noise, where an object's outline is drawn "
                             "(default: %(default)s)")
    for field, default in vars(TransformerShape()).items():
        parser.add_argument(f"--{field}", type=int, default=default,
                            help=f"a new transformer's {field} (TransformerShape; default: %(default)s)")
    parser.add_argument("--vae-width", type=int, default=VAE_WIDTH,
                        help="a new VAE's first-level channels (default: %(default)s)")
    parser.add_argument("--vae-scale", type=int, default=VAE_SCALE,
                        help="a new VAE's spatial compression, 2 or 4 (default: %(default)s)")
    parser.add_argument("--latent-channels", type=int, default=LATENT_CHANNELS,
                        help="a new VAE's latent channels (default: %(default)s)")
    parser.add_argument("--qk-gain", type=float, default=1.0,
                        help="a new transformer's starting q/k RMS-norm gain: a head's attention logits are bounded "
                             "by gain² × √(head channels) (default: %(default)s)")
    parser.add_argument("--frozen-text-encoder", action="store_true",
                        help="keep the text encoder as built (seeded, untrained) or loaded and train the transformer "
                             "only, as Wan's pretrained UMT5 is frozen: every word stays as distinct as at the start")
    parser.add_argument("--vae-from", metavar="DIR",
                        help="a new transformer and text encoder on the VAE of this model folder (no VAE stage)")
    add_device_argument(parser)
    args = parser.parse_args(argv)
    out = output_folder(parser, args)
    device = checked_device(parser, args)
    if args.vae_from and (args.init_from or args.vae_steps):
        parser.error("--vae-from excludes --init-from and --vae-steps: it keeps that folder's VAE")
    vae_shape = VaeShape(args.vae_width, args.vae_scale, args.latent_channels)
    if problem := vae_shape.problem():
        parser.error(problem)
    if (args.vae_from or args.init_from) and vae_shape != VaeShape():
        parser.error("--vae-width/--vae-scale/--latent-channels are for a new VAE only; "
                     "--vae-from and --init-from keep that folder's")
    if args.vae_from and not (Path(args.vae_from) / "vae").is_dir():
        parser.error(f"--vae-from: {args.vae_from} is not a model folder this script wrote (no vae/ in it)")
    kept_vae = load_vae(args.vae_from) if args.vae_from else None
    if kept_vae is not None:
        vae_shape = VaeShape(kept_vae.config.base_dim, kept_vae.config.scale_factor_spatial, kept_vae.config.z_dim)
    shape = TransformerShape(**{field: getattr(args, field) for field in vars(TransformerShape())})
    if problem := shape.problem(vae_shape.latent_side):
        parser.error(f"--width/--heads/--layers/--ffn/--patch: {problem}")
    if args.init_from and (shape != TransformerShape() or args.qk_gain != 1.0):
        parser.error("--init-from keeps that folder's transformer; its shape and --qk-gain options cannot change it")
    if not args.qk_gain > 0:
        parser.error(f"--qk-gain must be a number > 0, got {args.qk_gain}")
    if not args.timestep_shift > 0:
        parser.error(f"--timestep-shift must be a number > 0, got {args.timestep_shift}")
    if args.vae_from:
        args.vae_steps = 0
    check_from_nothing_arguments(parser, args, "transformer")

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    started = time.time()
    record = run_record("train_wan", argv, args)
    with tempfile.TemporaryDirectory() as tokenizer_folder:
        if args.init_from:
            parts = parts_to(load_parts(args.init_from), device)
        elif args.vae_from:
            parts = parts_to({**build_parts(tokenizer_folder, seed=args.seed, shape=shape, vae=vae_shape,
                                            qk_gain=args.qk_gain), "vae": kept_vae}, device)
            vae_record = Path(args.vae_from) / "training.json"
            record.update(vae_from=str(args.vae_from),
                          vae_training=json.loads(vae_record.read_text()) if vae_record.is_file() else None)
        else:
            parts = parts_to(build_parts(tokenizer_folder, seed=args.seed, shape=shape, vae=vae_shape,
                                         qk_gain=args.qk_gain), device)
            vae_error = train_vae(parts["vae"], rng, args.vae_steps, frames=FRAMES, video=True)
            set_latent_statistics(parts["vae"], rng)
            record.update(vae_pixel_error=round(vae_error, 5), vae_width=vae_shape.width, vae_scale=vae_shape.scale,
                          latent_channels=vae_shape.channels)
            print(f"vae: mean absolute pixel error {vae_error:.4f}", file=sys.stderr)
        vae = parts["vae"].eval().requires_grad_(False)
        record.update(device=str(device), steps=args.steps, batch=args.batch, lr=args.lr, video_share=args.video_share,
                      timestep_shift=args.timestep_shift, frozen_text_encoder=args.frozen_text_encoder,
                      # a continued transformer keeps the gains it was trained to; --qk-gain sets a new one's
                      qk_gain=None if args.init_from else args.qk_gain,
                      transformer=transformer_shape(parts["transformer"]),
                      flow_shift=FLOW_SHIFT, frames=FRAMES, width=model.WIDTH, height=model.HEIGHT)

        def checkpoint(ema_parts: dict, step: int) -> None:
            so_far = {"steps": step, "minutes": round((time.time() - started) / 60, 1),
                      "threads": torch.get_num_threads()}
            write_folder_atomically(lambda folder: save_model(ema_parts, folder),
                                    out.with_name(f"{out.name}-step{step}"), {**record, **so_far}, overwrite=True)

        trained = train_denoiser(parts, rng, args.steps, args.batch, args.lr, checkpoint=checkpoint,
                                 checkpoint_every=args.checkpoint_every, video_share=args.video_share,
                                 call=wan.WanBackbone.call_denoiser, sampling=FlowMatching(FLOW_SHIFT),
                                 encode=lambda pixels: normalised_latents(vae, pixels),  # image steps: 1-frame clips
                                 embed=caption_embedder(parts["tokenizer"], parts["text_encoder"]),
                                 timesteps=TimestepDistribution(shift=args.timestep_shift),
                                 frames=FRAMES, denoiser="transformer", stage="transformer",
                                 trained={"transformer": list(parts["transformer"].parameters())}
                                 if args.frozen_text_encoder else None)
        record["minutes"] = round((time.time() - started) / 60, 1)
        record["threads"] = torch.get_num_threads()
        write_folder_atomically(lambda folder: save_model(trained, folder), out, record, overwrite=args.overwrite)
    print(f"wrote {out} in {record['minutes']} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
