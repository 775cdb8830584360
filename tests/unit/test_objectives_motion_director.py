"""MotionDirector's appearance-debiased loss (docs/METHODS.md §4) against a plain computation."""

import math

import pytest
import torch

from motion_core.objectives.motion_director import debiased_loss, draw_anchor


def randn(*shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def plain_debiased(eps_hat, eps, anchor, beta):
    """``MSE(eps_hat, eps)`` and ``MSE(φ(eps_hat), φ(eps))``, element by element."""
    e_hat, e = eps_hat.double().tolist(), eps.double().tolist()
    b, c, f, h, w = eps.shape
    alpha = math.sqrt(beta ** 2 + 1)
    plain, debiased = [], []
    for bi in range(b):
        for ci in range(c):
            for k in range(f):
                for y in range(h):
                    for x in range(w):
                        p, q = e_hat[bi][ci][k][y][x], e[bi][ci][k][y][x]
                        plain.append((p - q) ** 2)
                        phi_p = alpha * p - beta * e_hat[bi][ci][anchor][y][x]
                        phi_q = alpha * q - beta * e[bi][ci][anchor][y][x]
                        debiased.append((phi_p - phi_q) ** 2)
    return sum(plain) / len(plain), sum(debiased) / len(debiased)


@pytest.mark.parametrize("anchor, beta", [(0, 1.0), (3, 1.0), (5, 0.5), (2, 2.0)])
def test_equals_plain_computation(anchor, beta):
    eps_hat, eps = randn(2, 3, 6, 4, 5, seed=1), randn(2, 3, 6, 4, 5, seed=2)
    mse, debiased = debiased_loss(eps_hat, eps, anchor, beta)
    want_mse, want_debiased = plain_debiased(eps_hat, eps, anchor, beta)
    assert mse.item() == pytest.approx(want_mse, abs=1e-5)
    assert debiased.item() == pytest.approx(want_debiased, abs=1e-5)


def test_identical_prediction_gives_zero():
    eps = randn(1, 4, 8, 6, 6)
    assert [t.item() for t in debiased_loss(eps.clone(), eps, anchor=3)] == [0, 0]


def test_beta_zero_is_plain_mse_twice():
    eps_hat, eps = randn(1, 4, 8, 6, 6, seed=1), randn(1, 4, 8, 6, 6, seed=2)
    mse, debiased = debiased_loss(eps_hat, eps, anchor=4, beta=0.0)
    assert debiased.item() == pytest.approx(mse.item(), rel=1e-6)


def test_anchor_frame_error_is_weighted_less():
    """φ subtracts the anchor from every frame: an error on the anchor frame alone costs
    (sqrt(2) - 1)² of the plain MSE at β = 1, an error elsewhere 2×."""
    eps = torch.zeros(1, 1, 4, 2, 2)
    on_anchor, elsewhere = eps.clone(), eps.clone()
    on_anchor[:, :, 1] = 1.0
    elsewhere[:, :, 2] = 1.0
    mse_a, deb_a = debiased_loss(on_anchor, eps, anchor=1)
    mse_e, deb_e = debiased_loss(elsewhere, eps, anchor=1)
    assert mse_a.item() == mse_e.item() == pytest.approx(0.25)
    # anchor frame: (sqrt2 - 1)² on it, 1² on each of the 3 others; elsewhere: 2 on that frame only.
    assert deb_a.item() == pytest.approx(((math.sqrt(2) - 1) ** 2 + 3) / 4, rel=1e-6)
    assert deb_e.item() == pytest.approx(2 / 4, rel=1e-6)


def test_anchor_comes_from_the_callers_generator():
    draws = [draw_anchor(8, torch.Generator().manual_seed(seed)) for seed in range(40)]
    assert draws == [draw_anchor(8, torch.Generator().manual_seed(seed)) for seed in range(40)]
    assert set(draws) <= set(range(8)) and len(set(draws)) > 4
    gen = torch.Generator().manual_seed(0)
    sequence = [draw_anchor(8, gen) for _ in range(20)]
    assert len(set(sequence)) > 4, "successive draws from one generator move on"
