"""VMC's parameterisation: the q/k/v projections of every temporal attention (docs/METHODS.md §1).

Each trained projection keeps its base weight and gets a zero-initialised delta of the same shape:
``W = W_base + strength·delta``. Only the deltas are trained and saved; ``to_out``, feed-forward,
norms and convs stay as they are; biases (UNet3D's q/k/v have none) stay frozen. Strength 0 is the
base model exactly, 1 the trained one.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..backbones.sites import PROJECTIONS
from ..errors import InputError
from .base import Attachment, MotionAdapter, layer_in_view, options_metadata

DELTA_SUFFIX = ".weight_delta"


class DeltaLinear(nn.Module):
    """A linear layer computing with ``base.weight + strength·delta`` (the base layer is not changed).

    The sum is formed in fp32 and rounded once to the base weight's dtype, so that an fp16 model
    sees a delta smaller than its weights' resolution as well as it can.
    """

    def __init__(self, base: nn.Module, delta: nn.Parameter, attachment: Attachment):
        super().__init__()
        self.base = base
        self._delta = (delta,)  # a tuple: the delta belongs to the adapter, not to the view's parameters
        self._attachment = (attachment,)

    @property
    def in_features(self) -> int:
        return self.base.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.base.weight.shape[0]

    @property
    def bias(self):
        return self.base.bias

    @property
    def weight(self) -> torch.Tensor:
        """The weight in effect: base weight + strength·delta, in the base weight's dtype and device."""
        base, strength = self.base.weight, self._attachment[0].strength
        if strength == 0:
            return base
        delta = self._delta[0].to(base.device)
        return (base.float() + strength * delta.float()).to(base.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.base.bias)


class TemporalAttentionAdapter(MotionAdapter):
    """Deltas for ``to_q``, ``to_k``, ``to_v`` of every attention of every motion site (temporal attention).

    Tensors (as saved): ``"<qualified linear name>.weight_delta"`` of shape ``(out, in)``, e.g.
    ``"down_blocks.2.temp_attentions.0.transformer_blocks.0.attn1.to_q.weight_delta"``.
    ModelScope/ZeroScope: 102 deltas, 75.9 M numbers (fp32: 304 MB). On a DiT (layout ``joint``,
    Wan) the same deltas sit on each block's 3-D self-attention, VMC's analogue there.
    """

    kind = "temporal_attention"
    LAYOUTS = ("frames", "joint")

    def __init__(self, deltas: dict[str, torch.Tensor], metadata: dict[str, str] | None = None):
        super().__init__(metadata)
        self.names = tuple(deltas)
        self.deltas = nn.ParameterList([nn.Parameter(tensor) for tensor in deltas.values()])

    @classmethod
    def for_unet(cls, unet: nn.Module, backbone: str = "", latent_shape: tuple[int, int, int] | None = None,
                 seed: int = 0, **options) -> TemporalAttentionAdapter:
        """Zero deltas (fp32, CPU) for every temporal q/k/v of ``unet``; ``backbone`` is its fingerprint.

        ``latent_shape`` and ``seed`` (used by other kinds) do not matter here; there are no options.
        """
        cls.check_options(options)
        deltas = {f"{name}.{projection}": torch.zeros(tuple(getattr(attention, projection).weight.shape))
                  for site in cls.sites_in(unet) for name, attention in site.attentions for projection in PROJECTIONS}
        return cls(deltas, options_metadata(backbone, {}))

    def _attach_to(self, view: nn.Module, attachment: Attachment) -> None:
        for name, delta in zip(self.names, self.deltas):
            parent, attribute, linear = layer_in_view(view, name, self)
            weight = getattr(linear, "weight", None)
            if not isinstance(linear, (nn.Linear, DeltaLinear)) or weight is None or weight.shape != delta.shape:
                found = tuple(weight.shape) if weight is not None else type(linear).__name__
                raise InputError("adapter", f"layer {name} is {found} in this model but {tuple(delta.shape)} in "
                                            f"the adapter; it was made for {self.backbone or 'another model'}")
            attachment.replace(parent, attribute, DeltaLinear(linear, delta, attachment))

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {name + DELTA_SUFFIX: delta.detach() for name, delta in zip(self.names, self.deltas)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> TemporalAttentionAdapter:
        deltas = {}
        for key, tensor in tensors.items():
            if not key.endswith(DELTA_SUFFIX) or tensor.ndim != 2 or not tensor.is_floating_point():
                raise InputError("adapter", f"tensor {key!r} {tuple(tensor.shape)} is not a temporal-attention "
                                            f"weight delta (expected '<layer>{DELTA_SUFFIX}', 2-D float)")
            deltas[key[: -len(DELTA_SUFFIX)]] = tensor
        if not deltas:
            raise InputError("adapter", "the file holds no weight deltas")
        return cls(deltas, metadata)
