"""VMC residual loss (docs/METHODS.md §1) against a plain per-pixel / per-frame-pair computation."""

import math

import pytest
import torch

from motion_core.objectives.mse import noise_mse
from motion_core.objectives.vmc import vmc_loss


def randn(*shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def cosine(p, q):
    dot = sum(a * b for a, b in zip(p, q))
    return dot / (math.sqrt(sum(a * a for a in p)) * math.sqrt(sum(b * b for b in q)))


def plain_vmc(eps_hat, eps, variant, stride):
    """Written from the formulas alone: explicit loops over samples, channels, frames and pixels."""
    e_hat, e = eps_hat.double().tolist(), eps.double().tolist()
    b, c, f, h, w = eps.shape
    pairs = range(f - stride)

    def residual(z, bi, ci, k, y, x):
        return z[bi][ci][k + stride][y][x] - z[bi][ci][k][y][x]

    if variant == "released":  # |residuals|, one cosine along frames per pixel
        cosines = [cosine([abs(residual(e_hat, bi, ci, k, y, x)) for k in pairs],
                          [abs(residual(e, bi, ci, k, y, x)) for k in pairs])
                   for bi in range(b) for ci in range(c) for y in range(h) for x in range(w)]
        return 1 - sum(cosines) / len(cosines)
    if variant == "paper":  # signed residuals, one cosine per frame pair over c·h·w
        cosines = [cosine([residual(e_hat, bi, ci, k, y, x) for ci in range(c) for y in range(h) for x in range(w)],
                          [residual(e, bi, ci, k, y, x) for ci in range(c) for y in range(h) for x in range(w)])
                   for bi in range(b) for k in pairs]
        return 1 - sum(cosines) / len(cosines)
    squares = [(residual(e_hat, bi, ci, k, y, x) - residual(e, bi, ci, k, y, x)) ** 2
               for bi in range(b) for ci in range(c) for k in pairs for y in range(h) for x in range(w)]
    return sum(squares) / len(squares)


VARIANTS = ["released", "paper", "l2"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("stride", [1, 2])
def test_equals_plain_computation(variant, stride):
    eps_hat, eps = randn(2, 3, 6, 4, 5, seed=1), randn(2, 3, 6, 4, 5, seed=2)
    assert vmc_loss(eps_hat, eps, variant, stride).item() == pytest.approx(plain_vmc(eps_hat, eps, variant, stride), abs=1e-5)


def test_noise_mse_equals_plain_mean_of_squares():
    eps_hat, eps = randn(2, 3, 4, 5, 6, seed=1), randn(2, 3, 4, 5, 6, seed=2)
    squares = [(p - q) ** 2 for p, q in zip(eps_hat.flatten().tolist(), eps.flatten().tolist())]
    assert noise_mse(eps_hat, eps).item() == pytest.approx(sum(squares) / len(squares), abs=1e-5)
    assert noise_mse(eps, eps).item() == 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_identical_prediction_gives_zero(variant):
    eps = randn(2, 4, 8, 6, 6)
    assert vmc_loss(eps.clone(), eps, variant).item() == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_frame_constant_offset_is_ignored(variant):
    """Only frame-to-frame change counts: adding the same image to every frame changes nothing."""
    eps_hat, eps = randn(2, 3, 6, 4, 5, seed=1), randn(2, 3, 6, 4, 5, seed=2)
    offset = 5 * randn(2, 3, 1, 4, 5, seed=3)
    assert vmc_loss(eps_hat + offset, eps, variant).item() == pytest.approx(vmc_loss(eps_hat, eps, variant).item(), abs=1e-5)


@pytest.mark.parametrize("variant", ["released", "paper"])
def test_cosines_ignore_the_prediction_scale(variant):
    eps_hat, eps = randn(2, 3, 6, 4, 5, seed=1), randn(2, 3, 6, 4, 5, seed=2)
    assert vmc_loss(7.5 * eps_hat, eps, variant).item() == pytest.approx(vmc_loss(eps_hat, eps, variant).item(), abs=1e-5)


def test_l2_is_not_scale_invariant():
    eps_hat, eps = randn(2, 3, 6, 4, 5, seed=1), randn(2, 3, 6, 4, 5, seed=2)
    assert vmc_loss(7.5 * eps_hat, eps, "l2") > 2 * vmc_loss(eps_hat, eps, "l2")


def test_released_form_ignores_direction_paper_form_does_not():
    """Absolute residuals (released code) cannot tell opposite motion apart; signed ones (paper) can."""
    eps = randn(2, 3, 6, 4, 5)
    assert vmc_loss(-eps, eps, "released").item() == pytest.approx(0, abs=1e-6)
    assert vmc_loss(-eps, eps, "paper").item() == pytest.approx(2, abs=1e-6)


def test_fp16_input_gives_fp32_loss_equal_to_fp32_computation():
    eps_hat, eps = randn(1, 4, 8, 8, 8, seed=1), randn(1, 4, 8, 8, 8, seed=2)
    half = vmc_loss(eps_hat.half(), eps.half())
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(vmc_loss(eps_hat.half().float(), eps.half().float()).item(), abs=1e-6)
