"""What every adapter (a parameterisation: what one-shot training changes) can do.

An adapter holds only its own tensors. It is applied to a private view of a backbone's UNet
(:func:`~motion_core.adapters.view.make_view`), never to the shared model::

    view = make_view(backbone.unet)
    attachment = adapter.attach(view, strength=0.8)
    eps = view(x_t, t, encoder_hidden_states=text).sample
    attachment.detach()            # the view is the plain model again

Kinds: temporal-attention q/k/v deltas (VMC, :mod:`.temporal_attention`); LoRA and motion
embeddings follow the same interface. Files: :mod:`.files`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
import torch.nn as nn

from ..errors import InputError

ADAPTER_KINDS: dict[str, type[MotionAdapter]] = {}
"""Every adapter class by its :attr:`MotionAdapter.kind` (what adapter files record)."""


class Attachment:
    """One adapter applied to one view, at a strength that can be changed between calls.

    ``strength`` scales what the adapter adds: 1.0 is the model as trained, 0.0 the base model
    exactly, values in between (or above 1) interpolate (extrapolate).
    """

    def __init__(self, adapter: MotionAdapter, view: nn.Module, strength: float):
        self.adapter, self.view = adapter, view
        self.strength = strength
        self._replaced: list[tuple[nn.Module, str, nn.Module, nn.Module]] = []

    @property
    def strength(self) -> float:
        return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError("strength", f"{value!r} is not valid; use a number (1.0 = as trained, 0 = off)")
        self._strength = float(value)

    @property
    def attached(self) -> bool:
        return bool(self._replaced)

    def replace(self, parent: nn.Module, attribute: str, module: nn.Module) -> None:
        """Put ``module`` at ``parent.<attribute>`` in the view, remembering what was there."""
        self._replaced.append((parent, attribute, getattr(parent, attribute), module))
        setattr(parent, attribute, module)

    def detach(self) -> None:
        """Put back every module this attachment replaced (last first); the view is as before."""
        while self._replaced:
            parent, attribute, original, module = self._replaced.pop()
            if getattr(parent, attribute) is not module:
                raise RuntimeError(f"{attribute} was replaced again after this adapter was attached; "
                                   "detach adapters in the reverse order of attaching them")
            setattr(parent, attribute, original)


class MotionAdapter(nn.Module, ABC):
    """Base class of adapters: trainable tensors + metadata, attachable to a view.

    Attributes:
        kind: the registry name, written to files (``"temporal_attention"``, ...).
        metadata: ``str -> str`` (safetensors metadata): ``backbone`` (the fingerprint of the model
            it was made for) and, once trained, what training recorded (see ``motion_core.train``).
    """

    kind: ClassVar[str]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            ADAPTER_KINDS[cls.kind] = cls

    def __init__(self, metadata: dict[str, str] | None = None):
        super().__init__()
        self.metadata: dict[str, str] = dict(metadata or {})

    @property
    def backbone(self) -> str:
        """Fingerprint of the model this adapter was made for (``""`` when unknown)."""
        return self.metadata.get("backbone", "")

    def check_backbone(self, fingerprint: str, input_name: str = "adapter") -> None:
        """Raise :class:`InputError` if this adapter was made for another model architecture."""
        if self.backbone and fingerprint and self.backbone != fingerprint:
            raise InputError(input_name, f"adapter was trained on {self.backbone}, this model is {fingerprint}; "
                                         "use it with the model family and size it was trained on")

    def attach(self, view: nn.Module, strength: float = 1.0) -> Attachment:
        """Apply this adapter to ``view`` (a :func:`make_view` of the base; never the shared model).

        The adapter's tensors are used by reference: training the adapter changes what the view
        computes. Raises :class:`InputError` when the view's model does not fit the adapter.
        """
        attachment = Attachment(self, view, strength)
        try:
            self._attach_to(view, attachment)
        except BaseException:
            attachment.detach()
            raise
        return attachment

    @abstractmethod
    def _attach_to(self, view: nn.Module, attachment: Attachment) -> None:
        """Replace modules / processors of ``view`` through ``attachment.replace``."""

    @abstractmethod
    def to_tensors(self) -> dict[str, torch.Tensor]:
        """The adapter's tensors by name, as saved (detached; any device)."""

    @classmethod
    @abstractmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> MotionAdapter:
        """Rebuild an adapter from :meth:`to_tensors` and its metadata (raises :class:`InputError`)."""

    def copy(self) -> MotionAdapter:
        """An independent copy with normal (non-inference) fp32 tensors, ready to train."""
        with torch.inference_mode(False):
            tensors = {name: tensor.detach().float().clone() for name, tensor in self.to_tensors().items()}
            return type(self).from_tensors(tensors, dict(self.metadata))
