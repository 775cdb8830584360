"""What every adapter (a parameterisation: what one-shot training changes) can do.

An adapter holds only its own tensors. It is applied to a private view of a backbone's UNet
(:func:`~motion_core.adapters.view.make_view`), never to the shared model::

    view = make_view(backbone.unet)
    attachment = adapter.attach(view, strength=0.8)
    eps = view(x_t, t, encoder_hidden_states=text).sample
    attachment.detach()            # the view is the plain model again

Kinds (:data:`ADAPTER_KINDS`): temporal-attention q/k/v deltas (VMC, :mod:`.temporal_attention`),
LoRA through peft (MotionDirector, :mod:`.lora`), motion embeddings (Motion Inversion,
:mod:`.embeddings`). Each kind declares the options it is built with (:attr:`MotionAdapter.OPTIONS`,
saved in the file) and the settings it is used with (:attr:`MotionAdapter.SETTINGS`, chosen at each
use, e.g. debiasing). Files: :mod:`.files`.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn as nn

from ..backbones.sites import LAYOUTS, MotionSite, family_of, motion_sites
from ..errors import InputError

ADAPTER_KINDS: dict[str, type[MotionAdapter]] = {}
"""Every adapter class by its :attr:`MotionAdapter.kind` (what adapter files record)."""


class Attachment:
    """One adapter applied to one view, at a strength that can be changed between calls.

    ``strength`` scales what the adapter adds: 1.0 is the model as trained, 0.0 the base model
    exactly, values in between (or above 1) interpolate (extrapolate). ``settings`` are the kind's
    use-time choices (:attr:`MotionAdapter.SETTINGS`), validated, defaults filled in.

    Adapters change the view only through this object (:meth:`replace`, :meth:`set_processor`,
    :meth:`add_hook`), so that :meth:`detach` can undo every change, last first.
    """

    def __init__(self, adapter: MotionAdapter, view: nn.Module, strength: float, settings: Mapping[str, str]):
        self.adapter, self.view = adapter, view
        self.settings = dict(settings)
        self._strength_listeners: list[Callable[[float], None]] = []
        self.strength = strength
        self._undo: list[Callable[[], None]] = []

    @property
    def strength(self) -> float:
        return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError("strength", f"{value!r} is not valid; use a number (1.0 = as trained, 0 = off)")
        self._strength = float(value)
        for listener in self._strength_listeners:
            listener(self._strength)

    def on_strength(self, listener: Callable[[float], None]) -> None:
        """Call ``listener(strength)`` now and whenever the strength changes (for modules that cache it)."""
        self._strength_listeners.append(listener)
        listener(self._strength)

    @property
    def attached(self) -> bool:
        return bool(self._undo)

    def replace(self, parent: nn.Module, attribute: str, module: nn.Module) -> None:
        """Put ``module`` at ``parent.<attribute>`` in the view, remembering what was there."""
        original = getattr(parent, attribute)
        setattr(parent, attribute, module)

        def undo():
            if getattr(parent, attribute) is not module:
                raise RuntimeError(f"{attribute} was replaced again after this adapter was attached; "
                                   "detach adapters in the reverse order of attaching them")
            setattr(parent, attribute, original)

        self._undo.append(undo)

    def set_processor(self, attention: nn.Module, processor: Callable) -> None:
        """Give a diffusers ``Attention`` of the view another processor, remembering the old one."""
        original = attention.processor
        attention.set_processor(processor)

        def undo():
            if attention.processor is not processor:
                raise RuntimeError("an attention processor was replaced again after this adapter was attached; "
                                   "detach adapters in the reverse order of attaching them")
            attention.set_processor(original)

        self._undo.append(undo)

    def add_hook(self, handle) -> None:
        """Remember a hook handle (``module.register_forward_pre_hook(...)``, or anything with a
        ``remove()`` that undoes a change to the view) to remove at detach."""
        self._undo.append(handle.remove)

    def include(self, inner: Attachment) -> None:
        """Follow this attachment's strength and detach with it: for an adapter made of another
        adapter (``inner``, attached to the same view)."""
        self.on_strength(lambda strength: setattr(inner, "strength", strength))
        self._undo.append(inner.detach)

    def detach(self) -> None:
        """Undo every change this attachment made (last first); the view is as before."""
        while self._undo:
            self._undo.pop()()
        self._strength_listeners.clear()


@dataclass(frozen=True)
class AdapterUse:
    """One adapter of a stack applied together (``pipeline.adapted_denoiser``), with how it is used.

    Attributes:
        adapter: the adapter.
        strength: 1.0 as trained, 0 off.
        settings: use-time choices of its kind (:attr:`MotionAdapter.SETTINGS`); others are refused.
    """

    adapter: MotionAdapter
    strength: float = 1.0
    settings: Mapping[str, str] = field(default_factory=dict)


class MotionAdapter(nn.Module, ABC):
    """Base class of adapters: trainable tensors + metadata, attachable to a view.

    Attributes:
        kind: the registry name, written to files (``"temporal_attention"``, ``"lora"``, ...).
        LAYOUTS: the motion-site layouts (:data:`motion_core.backbones.LAYOUTS`) it can attach to;
            a model whose sites have another layout is refused by name (:meth:`sites_in`).
        OPTIONS: how the adapter is built (``name -> default``); the values used are kept in
            ``metadata["options"]`` (JSON) and saved with the tensors.
        SETTINGS: how it is used (``name -> allowed values``, the first the default), chosen per
            use (:meth:`attach`), e.g. the debiasing of motion embeddings.
        default_lr: the learning rate its method publishes (what the command line uses by default).
        attach_priority: stacks attach lower values first (weight replacements before wrappers).
        metadata: ``str -> str`` (safetensors metadata): ``backbone`` (the fingerprint of the model
            it was made for), ``options`` and, once trained, what training recorded (``motion_core.train``).
    """

    kind: ClassVar[str]
    LAYOUTS: ClassVar[tuple[str, ...]] = ("frames",)
    OPTIONS: ClassVar[dict[str, Any]] = {}
    SETTINGS: ClassVar[dict[str, tuple[str, ...]]] = {}
    default_lr: ClassVar[float] = 1e-4
    attach_priority: ClassVar[int] = 0

    def __init_subclass__(cls, register: bool = True, **kwargs):
        """``register=False`` keeps a kind out of :data:`ADAPTER_KINDS` (and so out of Train Motion
        Adapter's choices and the adapter files): one that only a method's own pipeline builds, e.g.
        Edit-Your-Motion's, which needs poses to attach."""
        super().__init_subclass__(**kwargs)
        if register and "kind" in cls.__dict__:
            ADAPTER_KINDS[cls.kind] = cls

    def __init__(self, metadata: dict[str, str] | None = None):
        super().__init__()
        self.metadata: dict[str, str] = dict(metadata or {})

    @classmethod
    @abstractmethod
    def for_unet(cls, unet: nn.Module, backbone: str = "", latent_shape: tuple[int, int, int] | None = None,
                 seed: int = 0, **options) -> MotionAdapter:
        """A new, untrained adapter for the denoiser ``unet`` (any family's; the name is historical).

        Args:
            unet: the base denoiser (or a view); only its structure is read.
            backbone: its fingerprint, recorded in the metadata.
            latent_shape: ``(frames, height, width)`` of the training latents (kinds sized by the clip).
            seed: of random initial values (LoRA's A).
            options: the kind's :attr:`OPTIONS`.
        """

    @classmethod
    def sites_in(cls, unet: nn.Module) -> list[MotionSite]:
        """The motion sites of ``unet`` this kind attaches to; :class:`InputError` naming the kind and the
        model family when the model has none or only sites of a layout the kind cannot use."""
        family = family_of(unet).family
        sites = motion_sites(unet)
        if not sites:
            raise InputError("model", f"this {family} model has no motion sites (temporal attention) for "
                                      f"{cls.kind} adapters to attach to")
        unsupported = sorted({site.layout for site in sites} - set(cls.LAYOUTS))
        if unsupported:
            raise InputError("parameterisation", f"{cls.kind} adapters attach to {' or '.join(cls.LAYOUTS)} motion "
                                                 f"sites; {family} models have {unsupported[0]} sites "
                                                 f"({LAYOUTS[unsupported[0]]}); choose another parameterisation")
        return sites

    @property
    def backbone(self) -> str:
        """Fingerprint of the model this adapter was made for (``""`` when unknown)."""
        return self.metadata.get("backbone", "")

    @property
    def options(self) -> dict[str, Any]:
        """The options it was built with (:attr:`OPTIONS` defaults for those not recorded)."""
        return self.options_in(self.metadata)

    @classmethod
    def options_in(cls, metadata: Mapping[str, str]) -> dict[str, Any]:
        """The options recorded in ``metadata`` (JSON under ``options``), defaults filled in."""
        try:
            recorded = json.loads(metadata.get("options", "{}"))
        except json.JSONDecodeError:
            raise InputError("adapter", f"its options metadata is not JSON: {metadata['options'][:80]!r}") from None
        return {**cls.OPTIONS, **recorded}

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` with defaults filled in; :class:`InputError` for unknown names or invalid values."""
        unknown = sorted(set(options) - set(cls.OPTIONS))
        if unknown:
            known = ", ".join(cls.OPTIONS) or "none"
            raise InputError(unknown[0], f"is not an option of {cls.kind} adapters (options: {known})")
        return {**cls.OPTIONS, **options}

    def check_backbone(self, fingerprint: str, input_name: str = "adapter") -> None:
        """Raise :class:`InputError` if this adapter was made for another model architecture."""
        if self.backbone and fingerprint and self.backbone != fingerprint:
            raise InputError(input_name, f"adapter was trained on {self.backbone}, this model is {fingerprint}; "
                                         "use it with the model family and size it was trained on")

    def check_settings(self, settings: Mapping[str, str], input_name: str = "adapter") -> dict[str, str]:
        """``settings`` with defaults filled in; :class:`InputError` for ones this kind does not have."""
        for name, value in settings.items():
            if name not in self.SETTINGS:
                have = ", ".join(self.SETTINGS) or "none"
                raise InputError(input_name, f"{self.kind} adapters have no setting {name!r} (settings: {have})")
            if value not in self.SETTINGS[name]:
                raise InputError(name, f"{value!r} is not valid for a {self.kind} adapter; use one of "
                                       f"{', '.join(self.SETTINGS[name])}")
        return {name: settings.get(name, choices[0]) for name, choices in self.SETTINGS.items()}

    def attach(self, view: nn.Module, strength: float = 1.0, **settings: str) -> Attachment:
        """Apply this adapter to ``view`` (a :func:`make_view` of the base; never the shared model).

        The adapter's tensors are used by reference: training the adapter changes what the view
        computes. Raises :class:`InputError` when the view's model does not fit the adapter or a
        setting is not one of :attr:`SETTINGS`.
        """
        attachment = Attachment(self, view, strength, self.check_settings(settings))
        try:
            self._attach_to(view, attachment)
        except BaseException:
            attachment.detach()
            raise
        return attachment

    @abstractmethod
    def _attach_to(self, view: nn.Module, attachment: Attachment) -> None:
        """Change ``view`` through ``attachment`` (``replace``, ``set_processor``, ``add_hook``)."""

    @abstractmethod
    def to_tensors(self) -> dict[str, torch.Tensor]:
        """The adapter's tensors by name, as saved (detached; any device)."""

    @classmethod
    @abstractmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> MotionAdapter:
        """Rebuild an adapter from :meth:`to_tensors` and its metadata (raises :class:`InputError`)."""

    def training_settings(self) -> dict[str, str]:
        """The settings it is attached with while it trains (defaults unless a kind says otherwise)."""
        return {}

    def objective_parameters(self) -> list[nn.Parameter]:
        """The parameters the motion objective trains (all of them, unless a kind has a second path)."""
        return list(self.parameters())

    def auxiliary_loss(self, predict: Callable[[torch.Tensor], torch.Tensor], x_t: torch.Tensor, target: torch.Tensor,
                       generator: torch.Generator) -> tuple[str, torch.Tensor, list[nn.Parameter]] | None:
        """A second training path, run after the objective's each step, or None (the default).

        Args:
            predict: ``predict(x_t') -> prediction'`` with the step's timestep and prompt, on the view.
            x_t, target: the step's noisy latents and training target ``(b, c, f, h, w)``
                (the noise, for ε-prediction).
            generator: this path's random stream (seeded by the training seed).

        Returns:
            ``(term name, loss, parameters it alone trains)``; those parameters get no gradient
            from the objective (MotionDirector's spatial LoRA, :mod:`.lora`).
        """
        return None

    def copy(self) -> MotionAdapter:
        """An independent copy with normal (non-inference) fp32 tensors, ready to train."""
        with torch.inference_mode(False):
            tensors = {name: tensor.detach().float().clone() for name, tensor in self.to_tensors().items()}
            return type(self).from_tensors(tensors, dict(self.metadata))


def options_metadata(backbone: str, options: Mapping[str, Any]) -> dict[str, str]:
    """The metadata of a new adapter: its model's fingerprint and its options as JSON."""
    metadata = {"backbone": backbone} if backbone else {}
    if options:
        metadata["options"] = json.dumps(dict(options), sort_keys=True)
    return metadata


def on_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """An adapter tensor for a view on ``device``: the tensor itself if it is there (so that training
    updates what the view computes), else a detached copy there (generation on another device)."""
    return tensor if tensor.device == device else tensor.detach().to(device)


def layer_in_view(view: nn.Module, name: str, adapter: MotionAdapter) -> tuple[nn.Module, str, nn.Module]:
    """``(parent, attribute, layer)`` of the qualified layer ``name`` in ``view``; :class:`InputError`
    naming the model ``adapter`` was made for if the view has no such layer."""
    parent_name, _, attribute = name.rpartition(".")
    try:
        parent = view.get_submodule(parent_name)
        return parent, attribute, getattr(parent, attribute)
    except AttributeError:
        raise InputError("adapter", f"this model has no layer {name}; the adapter was made for "
                                    f"{adapter.backbone or 'another model'}") from None
