"""The runtime DWT (torch + PyWavelets taps) is pytorch_wavelets' DWT1DForward(mode='zero'), without
importing it."""

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from motion_core.objectives.dwt import WAVELETS, _analysis_taps, dwt1d, max_levels


def reference_dwt(levels, wavelet):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its pkg_resources import warns on current setuptools
        from pytorch_wavelets import DWT1DForward
    return DWT1DForward(J=levels, wave=wavelet, mode="zero")


@pytest.mark.parametrize("wavelet", ["haar", "db2", "sym3"])
@pytest.mark.parametrize("length", [7, 15])
@pytest.mark.parametrize("levels", [1, 2, 3])
def test_equals_pytorch_wavelets(wavelet, length, levels):
    x = torch.randn(2, 3, length, generator=torch.Generator().manual_seed(length * 10 + levels))
    want_low, want_highs = reference_dwt(levels, wavelet)(x)
    low, highs = dwt1d(x, levels, wavelet)
    assert low.shape == want_low.shape
    torch.testing.assert_close(low, want_low, rtol=0, atol=1e-6)
    assert [h.shape for h in highs] == [h.shape for h in want_highs]
    for high, want in zip(highs, want_highs):
        torch.testing.assert_close(high, want, rtol=0, atol=1e-6)


def test_haar_lengths_halve_rounding_up():
    low, highs = dwt1d(torch.randn(1, 15), 3, "haar")
    assert [h.shape[-1] for h in highs] == [8, 4, 2]
    assert low.shape[-1] == 2


@pytest.mark.parametrize("wavelet", ["haar", "db2"])
def test_gradient_equals_the_reference_backward(wavelet):
    """pytorch_wavelets has a hand-written backward; autograd through conv1d must agree with it."""
    x = torch.randn(2, 3, 15, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(2)

    def grad_of(transform):
        leaf = x.clone().requires_grad_()
        low, highs = transform(leaf)
        probe = sum((c * torch.randn(c.shape, generator=gen)).sum() for c in [low, *highs])
        probe.backward()
        return leaf.grad

    gen.manual_seed(2)
    want = grad_of(reference_dwt(3, wavelet))
    gen.manual_seed(2)
    got = grad_of(lambda leaf: dwt1d(leaf, 3, wavelet))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_backward_works_after_a_first_call_in_inference_mode():
    """ComfyUI runs nodes under torch.inference_mode(); cached filters made there must still serve training."""
    _analysis_taps.cache_clear()
    with torch.inference_mode():
        dwt1d(torch.randn(3, 7), 2, "db3")
    x = torch.randn(3, 7, requires_grad=True)
    low, highs = dwt1d(x, 2, "db3")
    (low.sum() + highs[0].sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_any_leading_shape_and_dtype():
    x = torch.randn(2, 3, 4, 7, dtype=torch.float64)
    low, highs = dwt1d(x, 2, "db2")
    flat_low, flat_highs = dwt1d(x.reshape(-1, 7), 2, "db2")
    assert low.dtype == torch.float64 and low.shape[:-1] == (2, 3, 4)
    torch.testing.assert_close(low.reshape(-1, low.shape[-1]), flat_low)
    torch.testing.assert_close(highs[1].reshape(-1, highs[1].shape[-1]), flat_highs[1])


@pytest.mark.parametrize("length, levels", [(1, 0), (2, 1), (3, 2), (4, 2), (7, 3), (8, 3), (15, 4), (16, 4), (17, 5)])
def test_max_levels_is_halvings_to_one_coefficient(length, levels):
    assert max_levels(length) == levels
    low, _ = dwt1d(torch.randn(1, length), levels, "haar")
    assert low.shape[-1] == 1


def test_wavelet_names_are_pywavelets_discrete_families():
    assert {"haar", "db2", "sym4", "coif1", "bior2.2"} <= set(WAVELETS)
    assert "morl" not in WAVELETS  # continuous wavelets have no filter bank


def test_runtime_never_imports_pytorch_wavelets_or_pkg_resources():
    code = ("import sys, motion_core.objectives, motion_core.testing; "
            "bad = {'pytorch_wavelets', 'pkg_resources'} & set(sys.modules); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
