"""What Edit-Your-Motion trains, as one adapter over a private view of an AnimateDiff UNet.

The paper fine-tunes the temporal attention (stage 1), the projections Recurrent Causal Attention
uses — the spatial self-attention's (stage 2) — and its Motion Attention module (both stages),
docs/METHODS.md §7. Here the first two are LoRA (peft, as :class:`~motion_core.adapters.LoRAAdapter`):
the base weights stay bit-identical and the adapter is small; the paper's own choice (the
Tune-A-Video lineage) is full fine-tuning of those projections, which the pack does not do to a
shared model. Tensors:

- ``lora.temporal.<layer>.lora_A/B.weight``: q/k/v/out of every motion-module attention;
- ``lora.spatial.<layer>.lora_A/B.weight``: q/k/v/out of every spatial self-attention (``attn1``,
  what RCA computes with);
- ``motion_attention.blocks.<j>.…``: :class:`~.motion_attention.MotionAttention`, one block per
  ControlNet residual.

Attached (:meth:`EditAdapter.attach`), it puts RCA in place of spatial self-attention, both LoRA
parts, and the pose conditioning of :attr:`EditAdapter.condition` through Motion Attention, so that
``motion_core.train.train``, inversion and sampling run it unchanged. Which parameters a training run
moves is :attr:`EditAdapter.stage`. The options ``rca`` and ``motion_attention`` switch those parts
off (the ablations of the method).
"""

from __future__ import annotations

import json
from dataclasses import replace

import torch
from torch import nn

from ..adapters.base import Attachment, MotionAdapter, options_metadata
from ..adapters.lora import ATTENTION_LINEARS, LoRAAdapter, lora_targets
from ..errors import InputError
from .motion_attention import MotionAttention, PoseCondition, attach_pose_control
from .rca import attach_rca, spatial_self_attentions

STAGES = ("subject", "full", "all")
"""What a training run moves: ``subject`` (stage 1: temporal LoRA + Motion Attention), ``full``
(stage 2: RCA's projections + Motion Attention), ``all`` (everything at once: the one-stage ablation)."""
LORA_PREFIX, MOTION_ATTENTION_PREFIX = "lora.", "motion_attention."


class EditAdapter(MotionAdapter, register=False):
    """Edit-Your-Motion's trained parts (see the module doc).

    Options: ``rank`` (16) and ``alpha`` (16) of both LoRA parts, ``heads`` (8) of the Motion
    Attention blocks, ``rca`` (True), ``motion_attention`` (True).

    Attributes:
        stage: one of :data:`STAGES`; which parameters :meth:`objective_parameters` gives training.
        condition: the poses the pose ControlNet sees while attached (:meth:`conditioned`); an
            adapter without one cannot attach.
    """

    kind = "edit_your_motion"
    OPTIONS = {"rank": 16, "alpha": 16.0, "heads": 8, "rca": True, "motion_attention": True}
    default_lr = 5e-4

    def __init__(self, lora: LoRAAdapter, motion_attention: MotionAttention | None,
                 metadata: dict[str, str] | None = None, stage: str = "subject",
                 condition: PoseCondition | None = None):
        super().__init__(metadata)
        self.lora = lora
        self.motion_attention = motion_attention
        self.stage = stage
        self.condition = condition

    # --- building ---------------------------------------------------------------------------------

    @classmethod
    def check_options(cls, options) -> dict:
        options = super().check_options(options)
        for name in ("rca", "motion_attention"):
            if not isinstance(options[name], bool):
                raise InputError(name, f"{options[name]!r} is not valid; use true or false")
        heads = options["heads"]
        if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1:
            raise InputError("heads", f"{heads!r} is not valid; use a whole number >= 1")
        LoRAAdapter.check_options(_lora_options(options))
        return {**options, "alpha": float(options["alpha"])}

    @classmethod
    def for_unet(cls, unet: nn.Module, backbone: str = "", latent_shape=None, seed: int = 0,
                 controlnet: nn.Module | None = None, **options) -> EditAdapter:
        """A new adapter for ``unet`` (an AnimateDiff ``UNetMotionModel``) and the pose ``controlnet``
        whose residuals its Motion Attention takes (required unless ``motion_attention`` is off)."""
        options = cls.check_options(options)
        cls.sites_in(unet)
        spatial = [(f"{name}.{linear}", attention.get_submodule(linear))
                   for name, attention in spatial_self_attentions(unet) for linear in ATTENTION_LINEARS]
        layers = {"temporal": lora_targets(unet, "temporal", feed_forward_too=False), "spatial": spatial}
        lora = LoRAAdapter.for_layers(layers, backbone, seed, **_lora_options(options))
        motion_attention = None
        if options["motion_attention"]:
            if controlnet is None:
                raise InputError("controlnet", "Motion Attention is sized from the pose ControlNet; give one")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                motion_attention = MotionAttention.for_controlnet(controlnet, options["heads"])
        return cls(lora, motion_attention, options_metadata(backbone, options))

    def conditioned(self, condition: PoseCondition) -> EditAdapter:
        """This adapter (same tensors) conditioned on ``condition``'s poses."""
        return self._like(condition=condition)

    def at_stage(self, stage: str) -> EditAdapter:
        """This adapter (same tensors) set to train the parameters of ``stage``."""
        if stage not in STAGES:
            raise InputError("stage", f"{stage!r} is not valid; use one of {', '.join(STAGES)}")
        return self._like(stage=stage)

    def _like(self, **changes) -> EditAdapter:
        fields = {"stage": self.stage, "condition": self.condition, **changes}
        return EditAdapter(self.lora, self.motion_attention, dict(self.metadata), **fields)

    # --- attaching --------------------------------------------------------------------------------

    def _attach_to(self, view: nn.Module, attachment: Attachment) -> None:
        if self.condition is None:
            raise InputError("pose", "Edit-Your-Motion's adapter needs the poses to condition on; none were given")
        options = self.options
        device = next(view.parameters()).device
        # Moved in place, not copied (the LoRA's tensors are small enough to copy; the ControlNet and
        # Motion Attention are hundreds of megabytes at SD1.5 size): their values are never changed.
        condition = replace(self.condition, controlnet=self.condition.controlnet.to(device))
        if self.motion_attention is not None:
            self.motion_attention.to(device)
        if options["rca"]:
            attachment.add_hook(attach_rca(view))  # undone with the rest (RCAAttachment.remove)
        attachment.include(self.lora.attach(view, attachment.strength, parts="temporal+spatial"))
        for handle in attach_pose_control(view, condition, self.motion_attention):
            attachment.add_hook(handle)

    def objective_parameters(self) -> list[nn.Parameter]:
        parts = {"subject": ("temporal",), "full": ("spatial",), "all": ("temporal", "spatial")}[self.stage]
        chosen = [p for i, p in enumerate(self.lora.lora_A) if self.lora.part_of(i) in parts] + \
                 [p for i, p in enumerate(self.lora.lora_B) if self.lora.part_of(i) in parts]
        if self.motion_attention is not None:
            chosen += list(self.motion_attention.parameters())
        return chosen

    # --- tensors ----------------------------------------------------------------------------------

    def to_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {LORA_PREFIX + name: tensor for name, tensor in self.lora.to_tensors().items()}
        if self.motion_attention is not None:
            tensors.update({MOTION_ATTENTION_PREFIX + name: p.detach()
                            for name, p in self.motion_attention.named_parameters()})
        return tensors

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> EditAdapter:
        options = cls.check_options(cls.options_in(metadata))
        lora_tensors = {k.removeprefix(LORA_PREFIX): v for k, v in tensors.items() if k.startswith(LORA_PREFIX)}
        lora_metadata = {"options": json.dumps(_lora_options(options), sort_keys=True)}
        lora = LoRAAdapter.from_tensors(lora_tensors, lora_metadata)
        motion_attention = None
        attention = {k.removeprefix(MOTION_ATTENTION_PREFIX): v for k, v in tensors.items()
                     if k.startswith(MOTION_ATTENTION_PREFIX)}
        if options["motion_attention"]:
            blocks = sorted({int(name.split(".")[1]) for name in attention})
            channels = [attention[f"blocks.{j}.norms.0.weight"].shape[0] for j in blocks]
            motion_attention = MotionAttention(channels, options["heads"])
            missing, unexpected = motion_attention.load_state_dict(attention, strict=False)
            if unexpected or any(not name.endswith("frame_position.pe") for name in missing):
                raise InputError("adapter", f"the Motion Attention tensors do not fit ({(missing + unexpected)[:3]})")
        unknown = [k for k in tensors if not k.startswith((LORA_PREFIX, MOTION_ATTENTION_PREFIX))]
        if unknown or (attention and motion_attention is None):
            raise InputError("adapter", f"tensor {(unknown or list(attention))[0]!r} is not part of an "
                                        "Edit-Your-Motion adapter with these options")
        return cls(lora, motion_attention, metadata)

    def copy(self) -> EditAdapter:
        copied = super().copy()
        copied.stage, copied.condition = self.stage, self.condition
        return copied


def _lora_options(options: dict) -> dict:
    """The :class:`LoRAAdapter` options of both LoRA parts (no dropout, attention linears only)."""
    return {"rank": options["rank"], "alpha": options["alpha"], "dropout": 0.0, "spatial": True,
            "feed_forward": False}
