"""MotionDirector's appearance-debiased temporal loss (Zhao et al.; docs/METHODS.md §4).

Subtracting a scaled anchor frame from every frame removes what all frames share (appearance), so
the second MSE term weighs the differences between frames more than the plain MSE does.
"""

import math

import torch

from .mse import noise_mse


def draw_anchor(frames: int, generator: torch.Generator | None = None) -> int:
    """One random anchor frame index in ``[0, frames)``, drawn from ``generator`` (on its own device).

    ``None`` draws from torch's global CPU generator; pass a seeded :class:`torch.Generator` for
    reproducible training.
    """
    device = generator.device if generator is not None else "cpu"
    return int(torch.randint(frames, (1,), generator=generator, device=device).item())


def debias(z: torch.Tensor, anchor: int, beta: float = 1.0) -> torch.Tensor:
    """``φ(z) = sqrt(β²+1)·z - β·z[:, :, r]`` for ``(b, c, f, h, w)`` z and anchor frame ``r``."""
    return math.sqrt(beta * beta + 1.0) * z - beta * z[:, :, anchor : anchor + 1]


def debiased_loss(eps_hat: torch.Tensor, eps: torch.Tensor, anchor: int, beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The released loss' two terms for ``(b, c, f, h, w)`` noise: ``(MSE(eps_hat, eps), MSE(φ(eps_hat), φ(eps)))``.

    The released code trains on their sum; ``anchor`` is the same frame for prediction and target.
    Both terms are fp32 scalars.
    """
    eps_hat, eps = eps_hat.float(), eps.float()
    return noise_mse(eps_hat, eps), noise_mse(debias(eps_hat, anchor, beta), debias(eps, anchor, beta))
