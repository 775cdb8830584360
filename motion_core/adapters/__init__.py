"""Adapters: what one-shot training changes, applied to private views of a shared model.

- :func:`make_view`: a copy of a UNet's module tree over the same weight tensors.
- :class:`MotionAdapter` / :class:`Attachment`: attach at a strength, detach, tensors + metadata.
- :class:`TemporalAttentionAdapter`: VMC's temporal-attention q/k/v (REFERENCE.md §1).
- :func:`save_adapter` / :func:`load_adapter`: safetensors files with validated metadata.
"""

from .base import ADAPTER_KINDS, Attachment, MotionAdapter
from .files import FORMAT, FORMAT_VERSION, adapter_writer, load_adapter, save_adapter
from .temporal_attention import DeltaLinear, TemporalAttentionAdapter
from .view import make_view

__all__ = ["ADAPTER_KINDS", "Attachment", "MotionAdapter", "FORMAT", "FORMAT_VERSION", "adapter_writer", "load_adapter",
           "save_adapter", "DeltaLinear", "TemporalAttentionAdapter", "make_view"]
