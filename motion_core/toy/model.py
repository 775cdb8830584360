"""The toy text-to-video model: its tokenizer, its architecture, and how it is saved.

The model is a ModelScope-format diffusers folder (CLIP tokenizer and
text encoder, ``AutoencoderKL``, ``UNet3DConditionModel``, ``DDIMScheduler``), so it loads through
``motion_core.backbones.load_backbone`` exactly as a user's ZeroScope folder does. Sizes:

- tokenizer: CLIP's byte-level BPE with merges learnt on the world's words, so every word of a
  caption is one token (any other text still tokenises, byte by byte);
- text encoder: CLIP, 2 layers of width :data:`TEXT_DIM`, 16 positions (captions are ≤ 9 tokens);
- VAE: 2 levels, 32×32 RGB frames ↔ 4×16×16 latents;
- UNet: two levels of 32 / 64 channels, cross-attention on both and the middle (1.9 M
  parameters), the same block types and module names as ZeroScope's.

The weights are trained by :mod:`motion_core.toy.train_model`; this module only builds, saves and
loads the parts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import torch

from . import world

TEXT_DIM = 64
MAX_TOKENS = 16
LATENT_CHANNELS = 4
FRAMES, WIDTH, HEIGHT = 8, 32, 32
"""The clip size the toy model is trained on (pixels; latents are half as wide and high)."""


def clip_frames(frame_multiple: int = 1) -> int:
    """Frames of a toy clip for a model that takes ``1 + k·frame_multiple`` frames (a backbone's
    ``frame_multiple``): :data:`FRAMES`, or the next count such a model takes (Wan's 4k+1: 9)."""
    if frame_multiple <= 1:
        return FRAMES
    return -(-(FRAMES - 1) // frame_multiple) * frame_multiple + 1

SCHEDULER = {  # ModelScope's schedule: scaled-linear betas, DDIM, 1000 training steps
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
    "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1, "prediction_type": "epsilon",
}


def vocabulary() -> list[str]:
    """Every word a world caption can hold, sorted: ``a``, the shapes, colours and motion phrases."""
    phrases = [f"a {colour} {shape} {phrase}" for colour in world.COLOURS for shape in world.SHAPES
               for phrase in world.MOTION_PHRASES.values()]
    return sorted({word for phrase in phrases for word in phrase.split()})


def learn_merges(words: Iterable[str]) -> list[tuple[str, str]]:
    """BPE merges, learnt on ``words`` (each counted once), until every word is a single symbol.

    Classic BPE training: split each word into characters (the last one marked ``</w>`` as CLIP
    does), then repeatedly merge the most frequent adjacent pair (ties: the smallest pair) in every
    word. Encoding a word with these merges in this order reproduces the training segmentation,
    so each of ``words`` becomes exactly one token.
    """
    pieces = {word: [*word[:-1], word[-1] + "</w>"] for word in words}
    merges: list[tuple[str, str]] = []
    while True:
        pairs = Counter(pair for symbols in pieces.values() for pair in zip(symbols, symbols[1:]))
        if not pairs:
            return merges
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        for word, symbols in pieces.items():
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            pieces[word] = merged


def byte_alphabet() -> list[str]:
    """GPT-2/CLIP's byte-to-unicode alphabet: 256 printable characters, one per byte value."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + i) for i in range(len(extra))]


def write_bpe_tokenizer(folder: str | Path, merges: Iterable[tuple[str, str]]) -> Path:
    """A CLIP tokenizer folder (``vocab.json``, ``merges.txt``): the two special tokens, the 256 byte
    characters with and without ``</w>``, then one token per merge, in order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    merges = list(merges)
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for char in byte_alphabet():
            vocab.setdefault(char + suffix, len(vocab))
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return folder


def write_tokenizer(folder: str | Path, words: Iterable[str] | None = None) -> Path:
    """The toy tokenizer: merges that make each of ``words`` (default: :func:`vocabulary`) one token;
    other text falls back to bytes."""
    return write_bpe_tokenizer(folder, learn_merges(vocabulary() if words is None else words))


def build_parts(tokenizer_folder: str | Path, seed: int = 0) -> dict:
    """Untrained parts ``{tokenizer, text_encoder, vae, unet, scheduler}`` with seeded weights."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_folder, model_max_length=MAX_TOKENS)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=TEXT_DIM, intermediate_size=2 * TEXT_DIM, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=MAX_TOKENS, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(16, 32), norm_num_groups=8, sample_size=WIDTH, layers_per_block=1,
    )
    unet = UNet3DConditionModel(
        sample_size=WIDTH // 2, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
        down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D"),
        up_block_types=("CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=TEXT_DIM, attention_head_dim=8,
        norm_num_groups=8,
    )
    return {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": vae, "unet": unet,
            "scheduler": DDIMScheduler(**SCHEDULER)}


def load_parts(folder: str | Path) -> dict:
    """The parts ``{tokenizer, text_encoder, vae, unet, scheduler}`` of a folder :func:`save_model` wrote,
    in training mode's float32 (to train further; ``motion_core.backbones`` loads a folder for use).
    The UNet is the class its ``model_index.json`` names (a ``UNet3DConditionModel`` or, in the toy
    AnimateDiff model, a ``UNetMotionModel``)."""
    import diffusers
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    unet_class = getattr(diffusers, unet_class_name(folder))
    return {
        "tokenizer": CLIPTokenizer.from_pretrained(folder / "tokenizer", model_max_length=MAX_TOKENS),
        "text_encoder": CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=torch.float32),
        "vae": AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32),
        "unet": unet_class.from_pretrained(folder / "unet", torch_dtype=torch.float32),
        "scheduler": DDIMScheduler.from_pretrained(folder / "scheduler"),
    }


UNET_CLASSES = ("UNet3DConditionModel", "UNetMotionModel")
"""The denoisers a toy model folder holds: the toy text-to-video model's and the toy AnimateDiff model's."""


def unet_class_name(folder: str | Path) -> str:
    """The UNet class a toy model folder's ``model_index.json`` names (one of :data:`UNET_CLASSES`).

    Raises:
        ValueError: when the folder names another class.
    """
    name = json.loads((Path(folder) / "model_index.json").read_text())["unet"][1]
    if name not in UNET_CLASSES:
        raise ValueError(f"{folder}: its UNet is a {name}, not one of {', '.join(UNET_CLASSES)}")
    return name


def save_model(parts: dict, folder: str | Path, pipeline_class: str | None = None) -> Path:
    """Write ``parts`` as a ModelScope-layout diffusers folder (safetensors weights); ``pipeline_class``
    is the pipeline its ``model_index.json`` names (default ModelScope's; the toy AnimateDiff model
    names ``AnimateDiffPipeline``)."""
    from ..backbones.unet3d import PIPELINE_CLASS, save_folder

    folder = save_folder(folder, **{name: parts[name] for name in ("unet", "vae", "text_encoder", "tokenizer",
                                                                   "scheduler")},
                         pipeline_class=pipeline_class or PIPELINE_CLASS)
    for part in ("unet", "vae"):
        # A part loaded from a folder (``--init-from``) carries the path it came from; a shipped model
        # should not name a folder on the machine that trained it.
        config = folder / part / "config.json"
        settings = json.loads(config.read_text())
        if settings.pop("_name_or_path", None) is not None:
            config.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return folder
