"""Tiny random models and tensors for tests and benchmarks: offline, seconds to build, no weights.

The sizes follow the recipe in docs/METHODS.md §9 ("Tiny models, offline"):
small enough to train a step in ~0.1 s on two CPU cores, yet the same classes, block types and
module names as the real backbones, so that code which finds and adapts layers runs unchanged.
"""

from __future__ import annotations

import torch

from .objectives.step import StepTensors

TINY_LATENT_CHANNELS = 4
TINY_TEXT_DIM = 32
"""Width of the text embeddings the tiny UNet's cross-attention expects."""


def tiny_unet3d(seed: int = 0):
    """A ModelScope/ZeroScope-shaped ``UNet3DConditionModel`` with ~1.3 M random parameters.

    Two levels (``CrossAttnDownBlock3D``, ``DownBlock3D`` / ``UpBlock3D``, ``CrossAttnUpBlock3D``),
    32/64 channels, 4 latent channels, cross-attention width :data:`TINY_TEXT_DIM`. Input
    ``(b, 4, f, h, w)`` latents with ``h, w`` multiples of 2 (16×16 in CI); fp32, train mode off.
    """
    from diffusers import UNet3DConditionModel

    torch.manual_seed(seed)
    return UNet3DConditionModel(
        sample_size=16,
        in_channels=TINY_LATENT_CHANNELS,
        out_channels=TINY_LATENT_CHANNELS,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=TINY_TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=8,
    ).eval()


def tiny_unet2d(seed: int = 0):
    """An SD1.5-shaped ``UNet2DConditionModel`` with ~0.2 M random parameters (docs/METHODS.md §9).

    Two levels (``CrossAttnDownBlock2D``, ``DownBlock2D`` / ``UpBlock2D``, ``CrossAttnUpBlock2D``),
    16/32 channels, 2 heads, 4 groups, cross-attention width :data:`TINY_TEXT_DIM`.
    """
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=16, in_channels=TINY_LATENT_CHANNELS, out_channels=TINY_LATENT_CHANNELS,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32), layers_per_block=1, cross_attention_dim=TINY_TEXT_DIM, attention_head_dim=2,
        norm_num_groups=4,
    ).eval()


TINY_MOTION_MODULE = {"block_out_channels": (16, 32), "motion_layers_per_block": 1, "motion_num_attention_heads": 2,
                      "motion_norm_num_groups": 4, "motion_max_seq_length": 32, "use_motion_mid_block": True}
"""Settings of the tiny motion module (a v2-shaped AnimateDiff ``MotionAdapter``: mid block, 32 frames)."""


def tiny_motion_adapter(seed: int = 0, **changes):
    """A random diffusers ``MotionAdapter`` for :func:`tiny_unet2d` (~0.1 M parameters), fp32.

    ``changes`` replace entries of :data:`TINY_MOTION_MODULE` (e.g. ``use_motion_mid_block=False``).
    Its output layers are random, not zero as in a fresh AnimateDiff module, so the motion
    modules change what the UNet computes.
    """
    from diffusers import MotionAdapter

    torch.manual_seed(seed)
    return MotionAdapter(**{**TINY_MOTION_MODULE, **changes}).eval()


def tiny_unet_motion(seed: int = 0):
    """:func:`tiny_unet2d` with :func:`tiny_motion_adapter` as a diffusers ``UNetMotionModel`` (AnimateDiff)."""
    from diffusers import UNetMotionModel

    return UNetMotionModel.from_unet2d(tiny_unet2d(seed), tiny_motion_adapter(seed)).eval()


def tiny_denoiser(unet=None, scheduler_config: dict | None = None):
    """A :class:`~motion_core.backbones.Denoiser` over a UNet3D (default :func:`tiny_unet3d`, frozen)
    with the UNet3D family's call and checkpoint blocks, on a DDPM schedule (diffusers' default
    ``DDPMScheduler`` config unless ``scheduler_config`` is given): what training takes, without a VAE
    or text encoder."""
    from .backbones import Denoiser, UNet3DBackbone
    from .sampling import DiscreteDiffusion

    unet = tiny_unet3d().requires_grad_(False) if unet is None else unet
    return Denoiser(unet, UNet3DBackbone.call_denoiser, DiscreteDiffusion(scheduler_config or {}),
                    UNet3DBackbone.checkpoint_blocks)


def random_step(shape: tuple[int, ...] = (1, 4, 8, 16, 16), abar_t: float | torch.Tensor = 0.5,
                error: float = 0.3, dtype: torch.dtype = torch.float32, seed: int = 0,
                requires_grad: bool = True) -> StepTensors:
    """Consistent random step tensors: ``x_t = sqrt(abar)·x0 + sqrt(1-abar)·eps`` and
    ``eps_hat = eps + error·N(0, 1)`` (a leaf in ``dtype`` that collects gradients).

    ``abar_t`` is a float or a ``(b,)`` tensor; ``shape`` is ``(b, c, f, h, w)``.
    """
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=gen)
    eps = torch.randn(shape, generator=gen)
    eps_hat = eps + error * torch.randn(shape, generator=gen)
    abar = torch.as_tensor(abar_t, dtype=torch.float32).reshape(-1)
    signal, noise = abar.sqrt().reshape(-1, 1, 1, 1, 1), (1 - abar).sqrt().reshape(-1, 1, 1, 1, 1)
    x_t = signal * x0 + noise * eps
    return StepTensors.for_noise_prediction(eps_hat.to(dtype).requires_grad_(requires_grad), eps.to(dtype),
                                            x0.to(dtype), x_t.to(dtype), abar)


# --- a whole text-to-video model folder ------------------------------------------------------------

TINY_MERGES = (("t", "h"), ("th", "e</w>"), ("a", "n"), ("an", "d</w>"))


def write_tiny_tokenizer(folder) -> None:
    """A byte-level CLIP tokenizer with a handful of merges (vocab.json + merges.txt, 518 tokens)."""
    from .toy.model import write_bpe_tokenizer

    write_bpe_tokenizer(folder, TINY_MERGES)


def tiny_clip_parts(folder, seed: int = 0):
    """A tiny CLIP tokenizer (written under ``folder / "tokenizer_source"``), text encoder (width
    :data:`TINY_TEXT_DIM`), 2-level ``AutoencoderKL`` (latents at 1/2 of the pixel size) and a
    ``DDIMScheduler`` with the given schedule: the parts every tiny latent-diffusion model shares."""
    from pathlib import Path

    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    write_tiny_tokenizer(Path(folder) / "tokenizer_source")
    tokenizer = CLIPTokenizer.from_pretrained(Path(folder) / "tokenizer_source", model_max_length=77)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=TINY_TEXT_DIM, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=TINY_LATENT_CHANNELS,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16), norm_num_groups=8, sample_size=32,
    )
    return tokenizer, text_encoder, vae


def tiny_scheduler(beta_schedule: str = "scaled_linear"):
    """A ``DDIMScheduler`` on SD's betas (0.00085 → 0.012; ``linear`` for AnimateDiff)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule=beta_schedule, clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1)


def write_tiny_animatediff_folder(folder, seed: int = 0):
    """Save a random AnimateDiff model as a diffusers folder (``model_index.json`` naming an
    ``AnimateDiffPipeline``; ``unet`` a :func:`tiny_unet_motion`, with the :func:`tiny_clip_parts`),
    all as safetensors (~2 MB). Loads through exactly the code users' folders go through."""
    import shutil
    from pathlib import Path

    from .backbones.unet3d import save_folder

    folder = Path(folder)
    tokenizer, text_encoder, vae = tiny_clip_parts(folder, seed)
    save_folder(folder, tiny_unet_motion(seed), vae, text_encoder, tokenizer, tiny_scheduler("linear"),
                pipeline_class="AnimateDiffPipeline")
    shutil.rmtree(folder / "tokenizer_source")
    return folder


TINY_WAN_TEXT_DIM = 16
TINY_WAN_WORDS = ("a the red green blue yellow square circle triangle star moving left right up down is shape "
                  "turning orbit").split()


def tiny_wan_transformer(seed: int = 0, channels: int = 16):
    """A ``WanTransformer3DModel`` with diffusers' own test sizes (~28 k parameters): 2 blocks, 2 heads of
    12, patch (1, 2, 2), ``channels`` latent channels in and out (the Wan 2.1 VAE's 16; TI2V-5B's 48),
    text width :data:`TINY_WAN_TEXT_DIM`, 3-D RoPE."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                                 in_channels=channels, out_channels=channels, text_dim=TINY_WAN_TEXT_DIM, freq_dim=256,
                                 ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                                 rope_max_seq_len=32).eval()


def tiny_umt5(vocab_size: int):
    """A 2-layer ``UMT5EncoderModel`` of width :data:`TINY_WAN_TEXT_DIM`, random (seed before calling), pad 0,
    eos 1; as UMT5-XXL: gated GELU, a relative-position table of 32 buckets in every layer (ComfyUI's T5
    has 32 built in)."""
    from transformers import UMT5Config, UMT5EncoderModel

    return UMT5EncoderModel(UMT5Config(
        vocab_size=vocab_size, d_model=TINY_WAN_TEXT_DIM, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0)).eval()


def tiny_wan_vae(seed: int = 0):
    """An ``AutoencoderKLWan`` in the Wan 2.1 VAE's layout at base width 4 (~0.24 M parameters): 4 levels of
    widths ×1, 2, 4, 4 with 2 residual blocks each (the layout diffusers' single-file converter is
    written for), 16 latent channels, 4× in time, 8× in space; the real latent mean and std."""
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    return AutoencoderKLWan(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                            temperal_downsample=[False, True, True]).eval()


def tiny_wan22_vae(seed: int = 0):
    """An ``AutoencoderKLWan`` in the Wan 2.2 VAE's layout: the shipped config (``configs/wan/ti2v-5b/vae``:
    residual levels, patch 2, 48 latent channels with their real mean and std, 4× in time, 16× in space)
    at encoder width 4 and decoder width 8 (~0.73 M parameters, most in the 48-channel convolutions)."""
    from diffusers import AutoencoderKLWan

    from .backbones.wan_files import WAN_CONFIGS

    torch.manual_seed(seed)
    config = AutoencoderKLWan.load_config(WAN_CONFIGS / "ti2v-5b" / "vae")
    return AutoencoderKLWan.from_config({**config, "base_dim": 4, "decoder_base_dim": 8}).eval()


def write_tiny_t5_tokenizer(folder, words=TINY_WAN_WORDS):
    """A T5-style (unigram, ``▁`` word marks) tokenizer of ``words`` (each one piece; other text falls back
    to letters), pad 0, eos 1, unk 2, saved with ``save_pretrained`` (``tokenizer.json``); returns it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = ["<pad>", "</s>", "<unk>", *("▁" + word for word in words), *"abcdefghijklmnopqrstuvwxyz"]
    model = Tokenizer(models.Unigram([(piece, -1.0) for piece in pieces], unk_id=2))
    model.pre_tokenizer, model.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    model.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(str(folder / "unigram.json"))
    tokenizer = T5TokenizerFast(tokenizer_file=str(folder / "unigram.json"), pad_token="<pad>", eos_token="</s>",
                                unk_token="<unk>", extra_ids=0)
    (folder / "unigram.json").unlink()
    tokenizer.save_pretrained(folder)
    return tokenizer


def write_tiny_wan_folder(folder, seed: int = 0, flow_shift: float = 3.0, boundary_ratio: float | None = None):
    """Save a random Wan model as a diffusers ``WanPipeline`` folder: :func:`tiny_wan_transformer`, a
    tiny ``AutoencoderKLWan`` (4× time, 8× space, 16 channels), :func:`tiny_umt5` and
    :func:`write_tiny_t5_tokenizer`, a ``UniPCMultistepScheduler`` config with ``flow_shift``. With
    ``boundary_ratio``: Wan 2.2 A14B's layout, a second transformer (``transformer_2``, the low-noise
    expert, seed + 1) and the ratio in ``model_index.json``. Loads through exactly the code users'
    folders go through."""
    from pathlib import Path

    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler

    from .backbones.wan import save_folder

    folder = Path(folder)
    tokenizer = write_tiny_t5_tokenizer(folder / "tokenizer")
    torch.manual_seed(seed)
    text_encoder = tiny_umt5(len(tokenizer))
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        flow_shift=flow_shift)
    second = tiny_wan_transformer(seed + 1) if boundary_ratio is not None else None
    return save_folder(folder, tiny_wan_transformer(seed), vae, text_encoder, tokenizer, scheduler, second,
                       boundary_ratio)


def write_tiny_text_to_video_folder(folder, seed: int = 0):
    """Save a random ModelScope-format text-to-video model as a real diffusers folder.

    ``model_index.json`` (the ModelScope layout) names a CLIP tokenizer and text encoder
    (width :data:`TINY_TEXT_DIM`), a 2-level ``AutoencoderKL`` (latents at 1/2 of the pixel size, where
    the real models' 4-level VAEs give 1/8), :func:`tiny_unet3d` and a ``DDIMScheduler``, all as
    safetensors (~5.5 MB).
    Loads through exactly the code users' folders go through. Returns the folder as a Path.
    """
    from pathlib import Path

    from .backbones.unet3d import save_folder

    folder = Path(folder)
    tokenizer, text_encoder, vae = tiny_clip_parts(folder, seed)
    scheduler = tiny_scheduler()
    save_folder(folder, tiny_unet3d(seed), vae, text_encoder, tokenizer, scheduler)
    import shutil

    shutil.rmtree(folder / "tokenizer_source")
    return folder


# --- a reference clip ------------------------------------------------------------------------------

def moving_square_frames(frames: int = 8, width: int = 32, height: int = 32) -> torch.Tensor:
    """IMAGE frames ``(frames, height, width, 3)``: a red square crossing a dark background left to right."""
    side = max(2, min(width, height) // 3)
    video = torch.full((frames, height, width, 3), 0.12)
    for index in range(frames):
        left = round(index * (width - side) / max(1, frames - 1))
        top = (height - side) // 2
        video[index, top : top + side, left : left + side] = torch.tensor([0.86, 0.16, 0.16])
    return video
