"""MotionDirector's parameterisation: LoRA on the temporal transformers, optionally on the spatial ones.

Temporal LoRA (docs/METHODS.md §4) on ``attn1``, ``attn2`` (``to_q``, ``to_k``, ``to_v``,
``to_out.0``) and the feed-forward (``ff.net.0.proj``, ``ff.net.2``) of every temporal transformer,
``transformer_in`` included: ModelScope/ZeroScope 17 transformers × 10 = 170 linears.
Optional spatial LoRA on the self-attention (``attn1``) and feed-forward of every spatial
transformer (16 × 6 = 96 linears), trained by MotionDirector's dual path: each step, the motion
objective trains the temporal LoRA on the whole clip while the spatial LoRA is trained alone with
plain noise MSE on one random frame, the step skipped with probability ``spatial_skip_probability``
(0.2). The spatial LoRA takes the reference's appearance so the temporal one is left the motion; at
generation only the temporal LoRA applies unless ``parts`` asks for the spatial one.

The LoRA layers are peft's (``peft.tuners.lora.Linear``): ``y = base(x) + B·A·dropout(x) ·
strength·alpha/rank``, B zero-initialised so that an untrained adapter is the base model exactly.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..backbones.sites import appearance_sites, motion_sites
from ..errors import InputError
from .base import Attachment, MotionAdapter, layer_in_view, on_device, options_metadata

PARTS = ("temporal", "spatial")
ATTENTION_LINEARS = ("to_q", "to_k", "to_v", "to_out.0")
FEED_FORWARD_PATHS = ("net.0.proj", "net.2")
"""The two linears of a diffusers ``FeedForward`` (GELU / GEGLU projection in, projection out)."""
PEFT_NAME = "motion"
"""The adapter name inside each peft layer (one peft layer per attachment, so it never clashes)."""

USES = {"temporal": ("temporal",), "temporal+spatial": ("temporal", "spatial"), "spatial": ("spatial",)}


def lora_targets(unet: nn.Module, part: str, feed_forward_too: bool = True) -> list[tuple[str, nn.Module]]:
    """``(qualified name, linear)`` of the layers a ``part`` ("temporal" or "spatial") LoRA adapts
    (a temporal LoRA's feed-forward linears only with ``feed_forward_too``).

    temporal: q/k/v/out of every motion site's attentions and each of its blocks' feed-forward, block
    by block (a UNet3D's ``TransformerTemporalModel``: ``attn1``, ``attn2``, ``ff``); spatial: self-attention q/k/v/out and feed-forward of every
    appearance site (a ``Transformer2DModel``; never the cross-attention, whose keys and values come
    from the text). The sites are those the model's family declares (:mod:`motion_core.backbones.sites`).
    """
    targets = []
    if part == "temporal":
        for site in motion_sites(unet):
            for attentions, feed_forward in site.blocks():
                for name, _ in attentions:
                    targets += [(f"{name}.{linear}", unet.get_submodule(f"{name}.{linear}"))
                                for linear in ATTENTION_LINEARS]
                if feed_forward is not None and feed_forward_too:
                    targets += [(f"{feed_forward[0]}.{path}", feed_forward[1].get_submodule(path))
                                for path in FEED_FORWARD_PATHS]
        return targets
    for name, transformer in appearance_sites(unet):  # the spatial LoRA always adapts the feed-forwards
        for i, _ in enumerate(transformer.transformer_blocks):
            block = f"{name}.transformer_blocks.{i}"
            paths = [f"attn1.{linear}" for linear in ATTENTION_LINEARS] + [f"ff.{path}" for path in FEED_FORWARD_PATHS]
            targets += [(f"{block}.{path}", unet.get_submodule(f"{block}.{path}")) for path in paths]
    return targets


class LoRAAdapter(MotionAdapter):
    """Low-rank updates ``(A, B)`` of the temporal (and optionally spatial) transformers' linears.

    Tensors (as saved): ``"<part>.<layer>.lora_A.weight"`` ``(rank, in)`` and
    ``"<part>.<layer>.lora_B.weight"`` ``(out, rank)``, part ``temporal`` or ``spatial``, e.g.
    ``"temporal.down_blocks.2.temp_attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight"``.

    Options: ``rank`` (32), ``alpha`` (32: scale alpha/rank = 1 as MotionDirector), ``dropout``
    (0.1), ``spatial`` (False: no spatial LoRA), ``spatial_skip_probability`` (0.2),
    ``feed_forward`` (True: the transformers' feed-forward linears too, as MotionDirector; False:
    attention only, the part AnimateDiff-Evolved's motion-LoRA format carries, :mod:`.ade`).
    Setting ``parts``: ``temporal`` (default), ``temporal+spatial`` or ``spatial``.
    """

    kind = "lora"
    LAYOUTS = ("frames", "joint")  # on a DiT: each block's 3-D self-attention and feed-forward
    OPTIONS = {"rank": 32, "alpha": 32.0, "dropout": 0.1, "spatial": False, "spatial_skip_probability": 0.2,
               "feed_forward": True}
    SETTINGS = {"parts": tuple(USES)}
    default_lr = 5e-4
    attach_priority = 1  # peft layers wrap whatever is there; weight-delta adapters must come first

    def __init__(self, weights: dict[str, tuple[torch.Tensor, torch.Tensor]], metadata: dict[str, str] | None = None):
        super().__init__(metadata)
        self.names = tuple(weights)
        self.lora_A = nn.ParameterList([nn.Parameter(a) for a, _ in weights.values()])
        self.lora_B = nn.ParameterList([nn.Parameter(b) for _, b in weights.values()])

    @classmethod
    def check_options(cls, options) -> dict:
        options = super().check_options(options)
        rank, alpha, dropout, skip = (options[k] for k in ("rank", "alpha", "dropout", "spatial_skip_probability"))
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise InputError("rank", f"{rank!r} is not valid; use a whole number >= 1 (MotionDirector: 32)")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
            raise InputError("alpha", f"{alpha!r} is not valid; use a number > 0 (= rank for a scale of 1)")
        for name, value in (("dropout", dropout), ("spatial_skip_probability", skip)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise InputError(name, f"{value!r} is not valid; use a probability in [0, 1)")
        for name in ("spatial", "feed_forward"):
            if not isinstance(options[name], bool):
                raise InputError(name, f"{options[name]!r} is not valid; use true or false")
        return {**options, "alpha": float(alpha), "dropout": float(dropout), "spatial_skip_probability": float(skip)}

    @classmethod
    def for_unet(cls, unet: nn.Module, backbone: str = "", latent_shape: tuple[int, int, int] | None = None,
                 seed: int = 0, **options) -> LoRAAdapter:
        """A new LoRA for ``unet``: A as peft initialises it (Kaiming-uniform, from ``seed``), B zero."""
        options = cls.check_options(options)
        cls.sites_in(unet)
        layers = {}
        for part in PARTS[: 2 if options["spatial"] else 1]:
            layers[part] = lora_targets(unet, part, feed_forward_too=options["feed_forward"])
            if not layers[part]:
                raise InputError("spatial", f"this model has no {part} transformers to put LoRA on; train without "
                                            "the spatial LoRA")
        return cls.for_layers(layers, backbone, seed, **options)

    @classmethod
    def for_layers(cls, layers: dict[str, list[tuple[str, nn.Module]]], backbone: str = "", seed: int = 0,
                   **options) -> LoRAAdapter:
        """A new LoRA on the given linears, ``{part: [(qualified name, linear), ...]}`` (parts of
        :data:`PARTS`; ``options["spatial"]`` must say whether a spatial part is among them)."""
        options = cls.check_options(options)
        generator = torch.Generator().manual_seed(seed)
        weights = {}
        for part, targets in layers.items():
            for name, linear in targets:
                out_features, in_features = linear.weight.shape
                # peft's default init: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)).
                bound = 1 / math.sqrt(in_features)
                a = (torch.rand(options["rank"], in_features, generator=generator) * 2 - 1) * bound
                weights[f"{part}.{name}"] = (a, torch.zeros(out_features, options["rank"]))
        return cls(weights, options_metadata(backbone, options))

    def part_of(self, index: int) -> str:
        return self.names[index].split(".", 1)[0]

    def _attach_to(self, view: nn.Module, attachment: Attachment) -> None:
        from peft import LoraConfig
        from peft.tuners.lora import Linear as LoraLinear

        options = self.options
        rank, alpha, dropout = options["rank"], options["alpha"], options["dropout"]
        config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout)
        parts = USES[attachment.settings["parts"]]
        if "spatial" in parts and not options["spatial"]:
            raise InputError("adapter", "this LoRA has no spatial part (it was trained with spatial off); use it "
                                        "for its motion (parts: temporal)")
        for i, name in enumerate(self.names):
            if self.part_of(i) not in parts:
                continue
            layer_name = name.split(".", 1)[1]
            parent, attribute, layer = layer_in_view(view, layer_name, self)
            a, b = self.lora_A[i], self.lora_B[i]
            shape = (getattr(layer, "out_features", None), getattr(layer, "in_features", None))
            if shape != (b.shape[0], a.shape[1]):
                raise InputError("adapter", f"layer {layer_name} is {shape} (out, in) in this model but "
                                            f"{(b.shape[0], a.shape[1])} in the LoRA; it was made for "
                                            f"{self.backbone or 'another model'}")
            with warnings.catch_warnings():  # a weight-delta layer below is linear, though peft does not know it
                warnings.filterwarnings("ignore", message="Unsupported layer type")
                lora = LoraLinear(layer, PEFT_NAME, config=config, r=rank, lora_alpha=alpha, lora_dropout=dropout)
            device = next(layer.parameters()).device
            lora.lora_A[PEFT_NAME].weight = _parameter(on_device(a, device))
            lora.lora_B[PEFT_NAME].weight = _parameter(on_device(b, device))
            lora.train(view.training)  # dropout only while training; peft layers start in train mode
            attachment.on_strength(lambda strength, lora=lora: lora.set_scale(PEFT_NAME, strength))
            attachment.replace(parent, attribute, lora)

    def training_settings(self) -> dict[str, str]:
        return {"parts": "temporal+spatial"} if self.options["spatial"] else {}

    def objective_parameters(self) -> list[nn.Parameter]:
        return [p for i, p in enumerate(self.lora_A) if self.part_of(i) == "temporal"] + \
               [p for i, p in enumerate(self.lora_B) if self.part_of(i) == "temporal"]

    def auxiliary_loss(self, predict: Callable[[torch.Tensor], torch.Tensor], x_t: torch.Tensor, target: torch.Tensor,
                       generator: torch.Generator):
        """MotionDirector's spatial path: MSE to the target (the noise, for ε-prediction) on one random
        frame, skipped with the set probability."""
        options = self.options
        if not options["spatial"] or float(torch.rand((), generator=generator)) < options["spatial_skip_probability"]:
            return None
        frame = int(torch.randint(0, x_t.shape[2], (), generator=generator))
        prediction = predict(x_t[:, :, frame:frame + 1])
        loss = F.mse_loss(prediction.float(), target[:, :, frame:frame + 1].float())
        spatial = [p for i, p in enumerate(self.lora_A) if self.part_of(i) == "spatial"] + \
                  [p for i, p in enumerate(self.lora_B) if self.part_of(i) == "spatial"]
        return "spatial", loss, spatial

    def to_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {}
        for name, a, b in zip(self.names, self.lora_A, self.lora_B):
            tensors[f"{name}.lora_A.weight"] = a.detach()
            tensors[f"{name}.lora_B.weight"] = b.detach()
        return tensors

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> LoRAAdapter:
        pairs: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in tensors.items():
            name, _, which = key.rpartition(".lora_")
            if which not in ("A.weight", "B.weight") or name.split(".", 1)[0] not in PARTS \
                    or tensor.ndim != 2 or not tensor.is_floating_point():
                raise InputError("adapter", f"tensor {key!r} {tuple(tensor.shape)} is not a LoRA weight (expected "
                                            "'<temporal|spatial>.<layer>.lora_A.weight' or ...lora_B.weight, 2-D)")
            pairs.setdefault(name, {})[which[0]] = tensor
        options = cls.check_options(cls.options_in(metadata))
        weights = {}
        for name, pair in pairs.items():
            if set(pair) != {"A", "B"}:
                raise InputError("adapter", f"LoRA layer {name!r} has only {next(iter(pair))}; the file is incomplete")
            a, b = pair["A"], pair["B"]
            if a.shape[0] != options["rank"] or b.shape[1] != options["rank"]:
                raise InputError("adapter", f"LoRA layer {name!r} has rank {a.shape[0]}/{b.shape[1]} but the file "
                                            f"says rank {options['rank']}; the file is inconsistent")
            weights[name] = (a, b)
        if not weights:
            raise InputError("adapter", "the file holds no LoRA weights")
        if options["spatial"] != any(name.startswith("spatial.") for name in weights):
            raise InputError("adapter", "the file's spatial option does not match its tensors; the file is inconsistent")
        return cls(weights, metadata)


def _parameter(tensor: torch.Tensor) -> nn.Parameter:
    """``tensor`` as an ``nn.Linear`` weight: the adapter's parameter itself, or a frozen copy's wrapper."""
    return tensor if isinstance(tensor, nn.Parameter) else nn.Parameter(tensor, requires_grad=False)
