"""VMC's residual motion loss (Jeong, Park, Ye, CVPR 2024; docs/METHODS.md §1).

The loss compares the frame residuals of predicted and sampled noise, ``Δ_f eps_hat`` and
``Δ_f eps``, instead of the noise itself, so that what is fitted is how the clip changes from frame
to frame rather than what any frame looks like.
"""

import torch
import torch.nn.functional as F

from .step import frame_diff

VMC_VARIANTS = ("released", "paper", "l2")
"""``released``: the authors' code (default); ``paper``: the paper's reading; ``l2``: eq. 16's form."""


def vmc_loss(eps_hat: torch.Tensor, eps: torch.Tensor, variant: str = "released", stride: int = 1) -> torch.Tensor:
    """VMC residual loss of ``(b, c, f, h, w)`` predicted and sampled noise -> fp32 scalar.

    With ``Δ = Δ_f`` at frame ``stride`` (``z[:, :, s:] - z[:, :, :-s]``):

    - ``"released"`` (default, the released code): ``d_hat = |Δ eps_hat|``, ``d = |Δ eps|``;
      ``1 - mean_{b,c,h,w} cos(d_hat, d)`` with the cosine along the frame axis, one per pixel.
      In [0, 1] (both sides are non-negative).
    - ``"paper"`` (the paper's reading): signed residuals; one cosine per sample and frame pair over
      the flattened ``c·h·w``; ``1 - mean_{b,f} cos``. In [0, 2].
    - ``"l2"``: ``mean((Δ eps_hat - Δ eps)²)``; aligning x0-space motion vectors up to the factor
      ``(1-abar_t)/abar_t`` (paper eq. 16).

    The cosine forms are invariant to a positive rescaling of ``eps_hat``; every form ignores a
    frame-independent offset of ``eps_hat`` (``Δ`` removes it).
    """
    d_hat, d = frame_diff(eps_hat.float(), stride), frame_diff(eps.float(), stride)
    if variant == "released":
        return 1.0 - F.cosine_similarity(d_hat.abs(), d.abs(), dim=2).mean()
    if variant == "paper":
        # (b, c, f', h, w) -> (b, f', c·h·w): one motion vector per frame pair.
        return 1.0 - F.cosine_similarity(d_hat.transpose(1, 2).flatten(2), d.transpose(1, 2).flatten(2), dim=2).mean()
    if variant == "l2":
        return (d_hat - d).square().mean()
    raise ValueError(f"unknown VMC variant {variant!r}; use one of {VMC_VARIANTS}")
