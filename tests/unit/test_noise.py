"""motion_core.noise: each initial-noise strategy keeps the promise its formula makes."""

import numpy as np
import pytest
import torch

from motion_core.errors import InputError
from motion_core.noise import (STRATEGIES, fresh_noise, gaussian_low_pass_mask, initial_noise, low_pass)

SHAPE = (2, 4, 8, 32, 32)


@pytest.fixture
def inverted():
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(123))


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_same_seed_same_noise_other_seed_other_noise(inverted, strategy):
    first = initial_noise(strategy, inverted, seed=7)
    assert first.shape == inverted.shape and first.dtype == inverted.dtype
    assert torch.equal(first, initial_noise(strategy, inverted, seed=7))
    if strategy != "direct":
        assert not torch.allclose(first, initial_noise(strategy, inverted, seed=8))


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_input_is_never_modified(inverted, strategy):
    before = inverted.clone()
    out = initial_noise(strategy, inverted, seed=1)
    out += 1
    assert torch.equal(inverted, before)


def test_direct_is_the_inversion(inverted):
    assert torch.equal(initial_noise("direct", inverted, 0), inverted)


def test_random_ignores_the_inversion(inverted):
    assert torch.equal(initial_noise("random", inverted, 3), initial_noise("random", torch.zeros(SHAPE), 3))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_blend_keeps_unit_variance_and_correlates_by_sqrt_p(inverted, p):
    out = initial_noise("blend", inverted, seed=5, ratio=p)
    assert out.var().item() == pytest.approx(1.0, abs=0.03)
    correlation = torch.corrcoef(torch.stack([out.flatten(), inverted.flatten()]))[0, 1].item()
    assert correlation == pytest.approx(p**0.5, abs=0.02)


def test_blend_endpoints(inverted):
    assert torch.allclose(initial_noise("blend", inverted, 2, ratio=1.0), inverted)
    assert torch.allclose(initial_noise("blend", inverted, 2, ratio=0.0), fresh_noise(inverted, 2))


@pytest.mark.parametrize("strategy", ["low_frequency", "blend_low_frequency"])
def test_low_frequency_strategies_keep_the_inversions_low_band(inverted, strategy):
    out = initial_noise(strategy, inverted, seed=9, ratio=0.0 if strategy == "blend_low_frequency" else None)
    z = fresh_noise(inverted, 9)
    kept = (low_pass(out) - low_pass(inverted)).norm()
    unrelated = (low_pass(z) - low_pass(inverted)).norm()
    assert kept < 0.25 * unrelated
    # and the high band is the fresh noise's, not the inversion's
    high = out - low_pass(out)
    assert torch.corrcoef(torch.stack([high.flatten(), (z - low_pass(z)).flatten()]))[0, 1] > 0.9


def test_blend_low_frequency_at_p1_is_the_inversion(inverted):
    assert torch.allclose(initial_noise("blend_low_frequency", inverted, 4, ratio=1.0), inverted, atol=1e-6)


def test_freeinit_keeps_the_inversions_mean_and_slow_components(inverted):
    out = initial_noise("freeinit", inverted, seed=11)
    # mask is 1 at DC: the mean over (frames, height, width) is the inversion's
    assert torch.allclose(out.mean(dim=(2, 3, 4)), inverted.mean(dim=(2, 3, 4)), atol=1e-5)
    # spectrum (numpy's FFT, centred): the mask's share of the inversion's, the rest the fresh noise's
    z = fresh_noise(inverted, 11).numpy()
    mask = gaussian_low_pass_mask(*SHAPE[2:]).numpy()
    axes = (-3, -2, -1)

    def spectrum(x):
        return np.fft.fftshift(np.fft.fftn(np.asarray(x, np.float64), axes=axes), axes=axes)

    expected = spectrum(inverted) * mask + spectrum(z) * (1 - mask)
    np.testing.assert_allclose(spectrum(out), expected, atol=1e-2 * np.abs(expected).max() / 100)
    assert mask.max() == 1.0 and mask.min() < 1e-4  # both bands are really exercised


def test_gaussian_mask_shape_and_values():
    mask = gaussian_low_pass_mask(8, 16, 16, 0.25, 0.25)
    assert mask.shape == (8, 16, 16)
    assert mask[4, 8, 8] == pytest.approx(1.0)  # DC after fftshift
    # one stop radius away along height (normalised frequency 0.25 = 2 bins of 16): exp(-1/2)
    assert mask[4, 10, 8] == pytest.approx(torch.exp(torch.tensor(-0.5)).item(), rel=1e-6)
    assert mask[4, 8, 8] > mask[4, 8, 12] > mask[4, 8, 15]


def test_half_precision_stays_half():
    inverted = torch.randn(SHAPE).half()
    for strategy in STRATEGIES:
        assert initial_noise(strategy, inverted, 0).dtype == torch.float16


def test_bad_options_are_named(inverted):
    with pytest.raises(InputError, match="^strategy: 'warm' is not a noise strategy; choose one of"):
        initial_noise("warm", inverted, 0)
    with pytest.raises(InputError, match="^ratio: 1.5 is not valid"):
        initial_noise("blend", inverted, 0, ratio=1.5)
    with pytest.raises(InputError, match="^ratio: 0.0 is not valid for freeinit"):
        initial_noise("freeinit", inverted, 0, ratio=0.0)
