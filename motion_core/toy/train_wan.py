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
- transformer: ``WanTransformer3DModel``, patch (1, 2, 2), :data:`LAYERS` blocks of width
  :data:`WIDTH` (3-D RoPE gives each token its frame), rectified flow with shift :data:`FLOW_SHIFT`
  (Wan 2.1 480p's).

Two stages, each a pure function of the seed: the VAE learns to reconstruct 9-frame clips
(``train_model.train_vae``); then, VAE frozen, the transformer and the text encoder learn the
velocity ``v = eps - x0`` (plain v-MSE, σ drawn uniformly and shifted as the model samples) on
fresh clips, video and image steps in turn (as the toy text-to-video model; captions dropped as
it drops them). An exponential moving average of the weights is what is saved.
``--init-from`` continues from a folder this script wrote (VAE kept, no VAE stage).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..backbones import wan
from ..sampling import FlowMatching
from . import model
from .train_model import (add_from_nothing_arguments, add_output_arguments, check_from_nothing_arguments, clip_batch,
                          output_folder, run_record, train_denoiser, train_vae, write_folder_atomically)

FRAMES = 9
"""Frames per training clip: Wan takes 4k + 1."""
TEXT_DIM, WIDTH, HEADS, LAYERS, FFN = 64, 96, 6, 4, 256
"""Text encoder width; transformer width, heads (of 16), blocks and feed-forward width."""
LATENT_CHANNELS = 4
FLOW_SHIFT = 3.0
PARTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")


def build_parts(tokenizer_folder: str | Path, seed: int = 0) -> dict:
    """Untrained parts ``{tokenizer, text_encoder, vae, transformer, scheduler}`` with seeded weights; the
    tokenizer is written to ``tokenizer_folder``."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from ..testing import write_tiny_t5_tokenizer

    tokenizer = write_tiny_t5_tokenizer(tokenizer_folder, model.vocabulary())
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tokenizer), d_model=TEXT_DIM, d_kv=TEXT_DIM // 4, d_ff=2 * TEXT_DIM, num_layers=2, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0))
    vae = AutoencoderKLWan(base_dim=16, z_dim=LATENT_CHANNELS, dim_mult=[1, 2], num_res_blocks=1,
                           temperal_downsample=[False], latents_mean=[0.0] * LATENT_CHANNELS,
                           latents_std=[1.0] * LATENT_CHANNELS, scale_factor_temporal=1, scale_factor_spatial=2)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=HEADS, attention_head_dim=WIDTH // HEADS,
        in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, text_dim=TEXT_DIM, freq_dim=64, ffn_dim=FFN,
        num_layers=LAYERS, cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=FLOW_SHIFT)
    return {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": vae, "transformer": transformer,
            "scheduler": scheduler}


def load_parts(folder: str | Path) -> dict:
    """The parts of a folder this script wrote, in float32, to train further."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import AutoTokenizer, UMT5EncoderModel

    folder = Path(folder)
    return {"tokenizer": AutoTokenizer.from_pretrained(folder / "tokenizer"),
            "text_encoder": UMT5EncoderModel.from_pretrained(folder / "text_encoder", dtype=torch.float32),
            "vae": AutoencoderKLWan.from_pretrained(folder / "vae", torch_dtype=torch.float32),
            "transformer": WanTransformer3DModel.from_pretrained(folder / "transformer", torch_dtype=torch.float32),
            "scheduler": UniPCMultistepScheduler.from_pretrained(folder / "scheduler")}


def vae_latents(vae: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Raw latents (the posterior's mode) ``(b, c, f, h/2, w/2)`` of clips ``(b, 3, f, h, w)`` in [-1, 1]."""
    return vae.encode(pixels).latent_dist.mode()


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
    mean = torch.tensor(vae.config.latents_mean, dtype=latents.dtype).reshape(shape)
    std = torch.tensor(vae.config.latents_std, dtype=latents.dtype).reshape(shape)
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
        text = wan.text_embeddings(text_encoder, ids, mask)
        return torch.nn.functional.pad(text, (0, 0, 0, wan.TEXT_TOKENS - model.MAX_TOKENS))

    return embed


def save_model(parts: dict, folder: Path) -> Path:
    return wan.save_folder(folder, *(parts[name] for name in PARTS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m motion_core.toy.train_wan", description=__doc__.split("\n")[0])
    add_output_arguments(parser, "models/toy-wan")
    add_from_nothing_arguments(parser, vae_steps=1500, steps=3000, lr=5e-4, frames=FRAMES)
    args = parser.parse_args(argv)
    out = output_folder(parser, args)
    check_from_nothing_arguments(parser, args, "transformer")

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    started = time.time()
    record = run_record("train_wan", argv, args)
    with tempfile.TemporaryDirectory() as tokenizer_folder:
        if args.init_from:
            parts = load_parts(args.init_from)
        else:
            parts = build_parts(tokenizer_folder, seed=args.seed)
            vae_error = train_vae(parts["vae"], rng, args.vae_steps, frames=FRAMES, video=True)
            set_latent_statistics(parts["vae"], rng)
            record.update(vae_pixel_error=round(vae_error, 5))
            print(f"vae: mean absolute pixel error {vae_error:.4f}", file=sys.stderr)
        vae = parts["vae"].eval().requires_grad_(False)
        record.update(steps=args.steps, batch=args.batch, lr=args.lr, video_share=args.video_share,
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
                                 frames=FRAMES, denoiser="transformer", stage="transformer")
        record["minutes"] = round((time.time() - started) / 60, 1)
        record["threads"] = torch.get_num_threads()
        write_folder_atomically(lambda folder: save_model(trained, folder), out, record, overwrite=args.overwrite)
    print(f"wrote {out} in {record['minutes']} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
