"""Motion Inversion's parameterisation: motion embeddings added inside temporal attention.

For each selected temporal transformer (docs/METHODS.md §3), two zero-initialised embeddings over
``frame_slots`` (F_max, 32) frame slots:

- Motion Query-Key ``E_qk`` ``(1, F_max, C)``, shared by the block's ``attn1`` and ``attn2``;
- Motion Value ``E_v`` ``(h·w, F_max, C)``, one per attention (h, w = the block's latent grid at
  the training resolution).

With ``X`` the normed hidden states ``(b·h·w, F, C)`` an attention receives:
``Q = Wq(X + E_qk)``, ``K = Wk(X + E_qk)``, ``V = Wv(X + γ·E_v)`` (E_qk never enters V), then
PyTorch's scaled-dot-product attention. Tokens are ordered (b, y, x), so E_v tiles over the batch
(both halves of classifier-free guidance get it). Block sets: ``widest`` (default: the widest
down/up blocks, ModelScope/ZeroScope's 1280-channel ``down_blocks.2`` ×2 and ``up_blocks.1`` ×3),
or ``all`` down/up blocks (15; the paper's choice for complex motion). The mid block and
``transformer_in`` are never used.

Setting ``debias`` (generation; training always uses ``none``): ``object`` (as Motion Inversion's
inference) and ``hybrid`` use the frame differences of E_v (``D(E)_0 = E_0``, ``D(E)_k = E_k - E_{k-1}``),
``camera`` drops E_v, ``none`` uses it as trained; ``auto`` (the default when generating) is ``object``
on temporal attention, as published, and ``none`` on a DiT's joint attention, where the toy Wan model
measured the embeddings as trained far better (BENCHMARKS.md, toy-wan memorisation: 0.95 against 0.61
from fresh noise, transfer +0.79 against +0.42 over no adapter, the same adapters).

Beyond the released code: generation at another frame count resamples the trained frame slots
(linear, end slots kept), at another resolution resamples E_v's grid (bilinear) — then debiasing.

On a DiT's full 3-D self-attention (``joint`` sites, Wan; the pack's analogue, not a published
method): every block's ``attn1`` gets one ``E_qk`` ``(1, F_max, C)`` and one ``E_v``
``(h_v·w_v, F_max, C)``; each token (frame-major: index = f·h·w + y·w + x) receives its frame's
``E_qk`` on the query/key input and its frame's and position's ``E_v`` on the value input, so
``Q = Wq(X + E_qk)``, ``K = Wk(X + E_qk)``, ``V = Wv(X + γ·E_v)`` as above, with the attention's
own q/k norms and 3-D RoPE applied after the projections as usual. The token grid is fine (Wan at
832×480: 52×30), so ``E_v`` lives on a grid ``value_stride`` times coarser (option; 0 = auto: 4
on joint sites, 1 — the released form — on temporal attention) and is resized bilinearly to the
token grid.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..backbones.sites import MotionSite, motion_sites
from ..errors import InputError
from .base import Attachment, MotionAdapter, on_device, options_metadata

BLOCK_SETS = ("widest", "all")
DEBIAS_MODES = ("auto", "object", "none", "hybrid", "camera")
"""Generation-time debiasing of ``E_v``; the first is the default when generating (training uses ``none``)."""
AUTO_DEBIAS = {"frames": "object", "joint": "none"}
"""What ``auto`` means at each site layout: Motion Inversion's own ``object`` in temporal attention, the
embeddings as trained in a DiT's joint attention (measured; see the module docstring)."""
QUERY_KEY_SUFFIX = ".query_key"
VALUE_SUFFIX = ".value"


JOINT_VALUE_STRIDE = 4
"""``value_stride`` 0 (auto) on joint sites: E_v on a grid 4× coarser than the tokens' (Wan 832×480:
13×8 instead of 52×30), ~16× fewer numbers; on temporal attention auto is 1, as released."""


def embedding_blocks(unet: nn.Module, blocks: str = "widest") -> list[MotionSite]:
    """The motion sites that get embeddings: the widest down/up ones, or all down/up ones (a DiT's
    blocks are all equally wide: every block either way)."""
    if blocks not in BLOCK_SETS:
        raise InputError("blocks", f"{blocks!r} is not valid; use one of {', '.join(BLOCK_SETS)}")
    candidates = [t for t in motion_sites(unet)
                  if t.layout == "joint" or t.block.startswith(("down_blocks.", "up_blocks."))]
    if blocks == "widest" and candidates:
        widest = max(t.channels for t in candidates)
        candidates = [t for t in candidates if t.channels == widest]
    return candidates


def resample_frames(embedding: torch.Tensor, frames: int) -> torch.Tensor:
    """``(n, F_t, C)`` -> ``(n, frames, C)`` by linear interpolation between slots; the first and
    last slots map to the first and last frames (``align_corners``). Identity when ``F_t == frames``."""
    if embedding.shape[1] == frames:
        return embedding
    resampled = F.interpolate(embedding.transpose(1, 2).float(), size=frames, mode="linear", align_corners=True)
    return resampled.transpose(1, 2).to(embedding.dtype)


def resample_grid(embedding: torch.Tensor, trained: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """``(h_t·w_t, F, C)`` -> ``(h·w, F, C)`` by bilinear resizing of the spatial grid (identity if equal)."""
    if tuple(trained) == tuple(grid):
        return embedding
    (h_t, w_t), (h, w) = trained, grid
    frames, channels = embedding.shape[1:]
    image = rearrange(embedding.float(), "(h w) f c -> 1 (f c) h w", h=h_t, w=w_t)
    resized = F.interpolate(image, size=(h, w), mode="bilinear", align_corners=False)
    return rearrange(resized, "1 (f c) h w -> (h w) f c", f=frames).to(embedding.dtype)


def debias_values(embedding: torch.Tensor, mode: str, layout: str = "frames") -> torch.Tensor | None:
    """Motion Inversion's inference debiasing of ``E_v`` ``(n, F, C)`` along frames (None: dropped), at a
    site of ``layout`` (which ``auto`` resolves by: :data:`AUTO_DEBIAS`)."""
    if mode == "auto":
        mode = AUTO_DEBIAS[layout]
    if mode == "none":
        return embedding
    if mode == "camera":
        return None
    if mode in ("object", "hybrid"):
        return torch.cat([embedding[:, :1], embedding[:, 1:] - embedding[:, :-1]], dim=1)
    raise InputError("debias", f"{mode!r} is not valid; use one of {', '.join(DEBIAS_MODES)}")


def value_stride(site: MotionSite, stride: int) -> int:
    """The grid stride of ``E_v`` at ``site`` for the option ``stride`` (0 = auto: 4 joint, 1 frames)."""
    return stride or (JOINT_VALUE_STRIDE if site.layout == "joint" else 1)


def value_grid(site: MotionSite, latent_height: int, latent_width: int, stride: int) -> tuple[int, int]:
    """``(h_v, w_v)``: the site's token grid at that latent size, ``stride`` times coarser (rounded up)."""
    h, w = site.grid(latent_height, latent_width)
    stride = value_stride(site, stride)
    return -(-h // stride), -(-w // stride)


class _Grid:
    """The latent grid ``(h, w)`` of the current call of one temporal transformer (set by a pre-hook),
    and for a DiT its latent frames too (``frames``; set from the whole denoiser's input)."""

    hw: tuple[int, int] | None = None
    frames: int | None = None

    def __init__(self, patch: int = 1):
        self.patch = patch

    def hook(self, module, args, kwargs):
        hidden_states = args[0] if args else kwargs["hidden_states"]
        self.frames = hidden_states.shape[-3] if hidden_states.ndim == 5 else None
        self.hw = tuple(size // self.patch for size in hidden_states.shape[-2:])


class _Term:
    """One attachment's embeddings in one attention: what it adds to the query/key and value inputs."""

    def __init__(self, query_key: torch.Tensor, value: torch.Tensor | None, attachment: Attachment, grid: _Grid,
                 trained_frames: int, trained_grid: tuple[int, int], value_weight: float, layout: str = "frames"):
        self.query_key, self.value = query_key, value
        self.attachment, self.grid, self.layout = attachment, grid, layout
        self.trained_frames, self.trained_grid, self.value_weight = trained_frames, trained_grid, value_weight

    def additions(self, frames: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(s·E_qk (1, F, C), s·γ·E_v (h·w, F, C) or None)`` for a call with ``frames`` frames."""
        strength, slots = self.attachment.strength, self.trained_frames
        query_key = resample_frames(self.query_key[:, :slots], frames) * strength
        value = None
        if self.value is not None:
            value = resample_grid(resample_frames(self.value[:, :slots], frames), self.trained_grid, self.grid.hw)
            value = debias_values(value, self.attachment.settings["debias"], self.layout)
            value = value * (strength * self.value_weight) if value is not None else None
        return query_key, value


class MotionEmbeddingProcessor:
    """Temporal self-attention with motion embeddings added to its inputs (any number of adapters).

    Keeps the attention's own projections (whatever wraps them, e.g. LoRA) and PyTorch's
    ``scaled_dot_product_attention`` at the attention's scale.
    """

    def __init__(self, terms: tuple[_Term, ...]):
        self.terms = terms

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                 temb=None, **kwargs) -> torch.Tensor:
        if encoder_hidden_states is not None or hidden_states.ndim != 3:
            raise RuntimeError("motion embeddings apply to temporal self-attention only")
        if getattr(attn, "norm_q", None) is not None or kwargs.get("image_rotary_emb") is not None:
            raise RuntimeError("motion embeddings do not support attention with q/k norms or rotary embeddings")
        residual = hidden_states
        batch, frames, _ = hidden_states.shape
        qk_input, v_input = hidden_states, hidden_states
        for term in self.terms:
            query_key, value = term.additions(frames)
            qk_input = qk_input + query_key.to(hidden_states)
            if value is not None:
                tokens = value.shape[0]
                if batch % tokens:
                    raise RuntimeError(f"attention batch {batch} is not a multiple of the grid's {tokens} pixels")
                v_input = v_input + value.to(hidden_states).repeat(batch // tokens, 1, 1)
        query, key, value = attn.to_q(qk_input), attn.to_k(qk_input), attn.to_v(v_input)
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, frames, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (x.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for x in (query, key, value))
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, scale=attn.scale)
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class _JointEmbeddings:
    """One attachment's embeddings at one DiT block's ``attn1``, added by two forward pre-hooks: the
    attention's input gets ``E_qk`` (so its q, k and v projections all see ``X + E_qk``), and its
    ``to_v`` gets ``γ·E_v − E_qk`` on top, so that ``V = Wv(X + γ·E_v)``. Tokens ``(b, f·h·w, C)``
    are frame-major; the grid comes from the denoiser's input (:class:`_Grid`)."""

    def __init__(self, term: _Term):
        self.term = term
        self._pending: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def tokens(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(E_qk, γ·E_v)`` laid out as the attention's tokens ``(1, f·h·w, C)`` (E_v None if dropped)."""
        grid = self.term.grid
        (h, w), frames = grid.hw, grid.frames
        query_key, value = self.term.additions(frames)
        per_token = rearrange(query_key.expand(h * w, -1, -1), "(h w) f c -> 1 (f h w) c", h=h, w=w)
        return per_token, None if value is None else rearrange(value, "(h w) f c -> 1 (f h w) c", h=h, w=w)

    def attention_input(self, module, args, kwargs):
        self._pending = self.tokens()  # made once per call: to_v runs inside this attention, next
        query_key, _ = self._pending
        if args:
            return (args[0] + query_key.to(args[0]), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"] + query_key.to(kwargs["hidden_states"])}

    def value_input(self, module, args):
        query_key, value = self._pending if self._pending is not None else self.tokens()
        self._pending = None
        offset = -query_key if value is None else value - query_key
        return (args[0] + offset.to(args[0]), *args[1:])


class MotionEmbeddingAdapter(MotionAdapter):
    """Motion Inversion's ``E_qk`` / ``E_v`` for the chosen temporal transformers of a UNet3D.

    Tensors (as saved): ``"<transformer>.query_key"`` ``(1, F_max, C)`` and
    ``"<transformer>.transformer_blocks.<i>.attn<1|2>.value"`` ``(h·w, F_max, C)``. Metadata
    ``frames``, ``latent_height``, ``latent_width``: the training clip's latent size (which slots
    and which grid were trained). ZeroScope at 576×320, widest blocks: 5 × (1, 32, 1280) and
    10 × (180, 32, 1280).

    On a DiT (``joint`` sites): ``"blocks.<i>.query_key"`` ``(1, F_max, C)`` and
    ``"blocks.<i>.attn1.value"`` ``(h_v·w_v, F_max, C)`` for every block.

    Options: ``blocks`` (``widest`` | ``all``), ``frame_slots`` (32), ``value_weight`` γ (1.0),
    ``value_stride`` (0 = auto: 1 on temporal attention, 4 on a DiT's joint attention).
    Setting ``debias``: ``auto`` (default: ``object`` on temporal attention, ``none`` on joint), ``object``,
    ``none`` (as trained; what training uses), ``hybrid``, ``camera``.
    """

    kind = "motion_embeddings"
    LAYOUTS = ("frames", "joint")
    OPTIONS = {"blocks": "widest", "frame_slots": 32, "value_weight": 1.0, "value_stride": 0}
    SETTINGS = {"debias": DEBIAS_MODES}
    default_lr = 2e-2

    def __init__(self, embeddings: dict[str, torch.Tensor], metadata: dict[str, str] | None = None):
        super().__init__(metadata)
        self.names = tuple(embeddings)
        self.embeddings = nn.ParameterList([nn.Parameter(tensor) for tensor in embeddings.values()])

    @classmethod
    def check_options(cls, options) -> dict:
        options = super().check_options(options)
        if options["blocks"] not in BLOCK_SETS:
            raise InputError("blocks", f"{options['blocks']!r} is not valid; use one of {', '.join(BLOCK_SETS)}")
        slots, weight, stride = options["frame_slots"], options["value_weight"], options["value_stride"]
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 0:
            raise InputError("value_stride", f"{stride!r} is not valid; use a whole number >= 1, or 0 for auto (4 on "
                                             "a DiT, 1 on temporal attention)")
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise InputError("frame_slots", f"{slots!r} is not valid; use a whole number >= 1 (Motion Inversion: 32)")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise InputError("value_weight", f"{weight!r} is not valid; use a number (1.0 as published)")
        return {**options, "value_weight": float(weight)}

    @classmethod
    def for_unet(cls, unet: nn.Module, backbone: str = "", latent_shape: tuple[int, int, int] | None = None,
                 seed: int = 0, **options) -> MotionEmbeddingAdapter:
        """Zero embeddings (fp32, CPU) for training on latents of ``latent_shape`` = (frames, h, w)."""
        options = cls.check_options(options)
        if latent_shape is None:
            raise InputError("latents", "motion embeddings are sized by the training clip; give its latent shape")
        frames, height, width = latent_shape
        if frames > options["frame_slots"]:
            raise InputError("frames", f"the clip has {frames} frames but the embeddings {options['frame_slots']} "
                                       "frame slots; raise frame_slots or load fewer frames")
        cls.sites_in(unet)
        transformers = embedding_blocks(unet, options["blocks"])
        if not transformers:
            raise InputError("model", f"{type(unet).__name__} has no temporal transformers in its down/up blocks; "
                                      "motion embeddings need a ModelScope/ZeroScope-family UNet3D")
        slots, stride, embeddings = options["frame_slots"], options["value_stride"], {}
        for transformer in transformers:
            width_in = transformer.inner_dim if transformer.layout == "frames" else transformer.channels
            embeddings[transformer.name + QUERY_KEY_SUFFIX] = torch.zeros(1, slots, width_in)
            for name, _ in transformer.attentions:
                h_v, w_v = value_grid(transformer, height, width, stride)
                embeddings[name + VALUE_SUFFIX] = torch.zeros(h_v * w_v, slots, width_in)
        metadata = {**options_metadata(backbone, options), "frames": str(frames), "latent_height": str(height),
                    "latent_width": str(width)}
        return cls(embeddings, metadata)

    def training_settings(self) -> dict[str, str]:
        return {"debias": "none"}

    def trained_size(self) -> tuple[int, int, int]:
        """``(frames, latent_height, latent_width)`` the embeddings were made for."""
        return tuple(int(self.metadata[key]) for key in ("frames", "latent_height", "latent_width"))

    def _attach_to(self, view: nn.Module, attachment: Attachment) -> None:
        frames, height, width = self.trained_size()
        weight, stride = self.options["value_weight"], self.options["value_stride"]
        tensors = dict(zip(self.names, self.embeddings))
        by_name = {t.name: t for t in motion_sites(view)}
        joint_grid = None  # one per attachment: a DiT's tokens get their frames and grid from the denoiser's input
        for name in self.names:
            if not name.endswith(QUERY_KEY_SUFFIX):
                continue
            transformer = by_name.get(name[: -len(QUERY_KEY_SUFFIX)])
            query_key = tensors[name]
            joint = transformer is not None and transformer.layout == "joint"
            if transformer is None or (transformer.channels if joint else transformer.inner_dim) != query_key.shape[-1]:
                raise InputError("adapter", f"this model has no motion site {name[:-len(QUERY_KEY_SUFFIX)]} of width "
                                            f"{query_key.shape[-1]}; the embeddings were made for "
                                            f"{self.backbone or 'another model'}")
            if joint:
                if joint_grid is None:
                    joint_grid = _Grid(transformer.patch)
                    attachment.add_hook(view.register_forward_pre_hook(joint_grid.hook, with_kwargs=True))
                grid = joint_grid
            else:
                grid = _Grid()
                attachment.add_hook(transformer.module.register_forward_pre_hook(grid.hook, with_kwargs=True))
            device = next(transformer.module.parameters()).device
            for attention_name, attention in transformer.attentions:
                value = tensors.get(attention_name + VALUE_SUFFIX)
                trained_grid = value_grid(transformer, height, width, stride)
                if value is not None and value.shape[0] != trained_grid[0] * trained_grid[1]:
                    raise InputError("adapter", f"{attention_name} has a {trained_grid[0] * trained_grid[1]}-token "
                                                f"grid at the training size but the embedding {value.shape[0]}; the "
                                                "file is inconsistent")
                term = _Term(on_device(query_key, device), on_device(value, device) if value is not None else None,
                             attachment, grid, frames, trained_grid, weight, transformer.layout)
                if joint:
                    embeddings = _JointEmbeddings(term)
                    attachment.add_hook(attention.register_forward_pre_hook(embeddings.attention_input,
                                                                            with_kwargs=True))
                    attachment.add_hook(attention.to_v.register_forward_pre_hook(embeddings.value_input))
                    continue
                previous = attention.processor
                terms = previous.terms if isinstance(previous, MotionEmbeddingProcessor) else ()
                attachment.set_processor(attention, MotionEmbeddingProcessor(terms + (term,)))

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {name: tensor.detach() for name, tensor in zip(self.names, self.embeddings)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> MotionEmbeddingAdapter:
        for key in ("frames", "latent_height", "latent_width"):
            if not metadata.get(key, "").isdigit() or int(metadata[key]) < 1:
                raise InputError("adapter", f"motion embeddings need metadata {key!r} (a whole number); the file has "
                                            f"{metadata.get(key)!r}")
        slots = cls.check_options(cls.options_in(metadata))["frame_slots"]
        query_keys = {k[: -len(QUERY_KEY_SUFFIX)] for k in tensors if k.endswith(QUERY_KEY_SUFFIX)}
        for key, tensor in tensors.items():
            is_query_key = key.endswith(QUERY_KEY_SUFFIX)
            if not (is_query_key or key.endswith(VALUE_SUFFIX)) or tensor.ndim != 3 or not tensor.is_floating_point():
                raise InputError("adapter", f"tensor {key!r} {tuple(tensor.shape)} is not a motion embedding "
                                            f"(expected '<transformer>{QUERY_KEY_SUFFIX}' or '<attention>{VALUE_SUFFIX}', "
                                            "3-D float)")
            if tensor.shape[1] != slots or (is_query_key and tensor.shape[0] != 1):
                raise InputError("adapter", f"embedding {key!r} has shape {tuple(tensor.shape)}; expected "
                                            f"({'1' if is_query_key else 'pixels'}, {slots}, channels)")
            if not is_query_key and not any(key.startswith(site + ".") for site in query_keys):
                raise InputError("adapter", f"value embedding {key!r} has no query-key embedding; the file is incomplete")
        if not query_keys:
            raise InputError("adapter", "the file holds no motion embeddings")
        if int(metadata["frames"]) > slots:
            raise InputError("adapter", f"trained on {metadata['frames']} frames with only {slots} slots; the file is "
                                        "inconsistent")
        return cls(dict(tensors), metadata)
