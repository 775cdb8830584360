"""Plain noise-prediction loss."""

import torch


def noise_mse(eps_hat: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """``mean((eps_hat - eps)²)`` over every element, in fp32: two ``(b, c, f, h, w)`` tensors -> scalar."""
    return (eps_hat.float() - eps.float()).square().mean()
