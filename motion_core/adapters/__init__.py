"""Adapters: what one-shot training changes, applied to private views of a shared model.

- :func:`make_view`: a copy of a UNet's module tree over the same weight tensors.
- :class:`MotionAdapter` / :class:`Attachment` / :class:`AdapterUse`: attach at a strength with
  use-time settings, detach, tensors + metadata.
- Kinds (:data:`ADAPTER_KINDS`): :class:`TemporalAttentionAdapter` (VMC's temporal-attention q/k/v,
  docs/METHODS.md §1), :class:`LoRAAdapter` (MotionDirector's temporal + spatial LoRA through peft, §4),
  :class:`MotionEmbeddingAdapter` (Motion Inversion's query-key / value embeddings, §3).
- :func:`save_adapter` / :func:`load_adapter`: one safetensors format for every kind, validated metadata.
"""

from .base import ADAPTER_KINDS, AdapterUse, Attachment, MotionAdapter
from .embeddings import MotionEmbeddingAdapter
from .files import FORMAT, FORMAT_VERSION, adapter_writer, load_adapter, save_adapter
from .lora import LoRAAdapter
from .temporal_attention import DeltaLinear, TemporalAttentionAdapter
from .view import make_view

__all__ = ["ADAPTER_KINDS", "AdapterUse", "Attachment", "MotionAdapter", "MotionEmbeddingAdapter", "FORMAT",
           "FORMAT_VERSION", "adapter_writer", "load_adapter", "save_adapter", "LoRAAdapter", "DeltaLinear",
           "TemporalAttentionAdapter", "make_view"]
