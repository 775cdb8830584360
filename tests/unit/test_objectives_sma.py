"""SMA's wavelet and Fourier terms and the x0-space motion they compare (docs/METHODS.md §2), against
plain computations: explicit loops over pixels and frames, numpy's FFT, PyWavelets' own DWT."""

import cmath
import math

import numpy as np
import pytest
import pywt
import torch

from motion_core.objectives.sma import radial_weight, sma_global, sma_local, wrap_phase
from motion_core.objectives.step import StepTensors, x0_motion
from motion_core.sampling import ABAR_FLOOR
from motion_core.testing import random_step


def motion(*shape, seed=0):
    """Non-negative random motion magnitudes, like |Δ_f x0|."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).abs()


def plain_haar_level(x):
    """One Haar level, zero mode: pad an odd signal with one zero, then pairwise sum and difference / sqrt(2)."""
    x = list(x) + ([0.0] if len(x) % 2 else [])
    pairs = [(x[2 * k], x[2 * k + 1]) for k in range(len(x) // 2)]
    return [(a + b) / math.sqrt(2) for a, b in pairs], [(a - b) / math.sqrt(2) for a, b in pairs]


def plain_global(d_hat, d, levels, wavelet, weights):
    """w_0·mean|yl - yl_hat| + Σ_j w_j·mean|yh_j - yh_hat_j|, one pixel's time series at a time."""
    b, c, f, h, w = d.shape
    groups = [[] for _ in range(levels + 1)]  # [lowpass, finest, ..., coarsest] absolute differences
    for bi in range(b):
        for ci in range(c):
            for y in range(h):
                for x in range(w):
                    series = [d[bi, ci, k, y, x].item() for k in range(f)]
                    series_hat = [d_hat[bi, ci, k, y, x].item() for k in range(f)]
                    if wavelet == "haar":
                        coeffs, coeffs_hat = [], []
                        low, low_hat = series, series_hat
                        for _ in range(levels):
                            low, high = plain_haar_level(low)
                            low_hat, high_hat = plain_haar_level(low_hat)
                            coeffs.append(high)
                            coeffs_hat.append(high_hat)
                        coeffs, coeffs_hat = [low, *coeffs], [low_hat, *coeffs_hat]
                    else:  # PyWavelets' C implementation: [lowpass, coarsest, ..., finest]
                        coeffs = pywt.wavedec(series, wavelet, mode="zero", level=levels)
                        coeffs_hat = pywt.wavedec(series_hat, wavelet, mode="zero", level=levels)
                        coeffs, coeffs_hat = [coeffs[0], *coeffs[:0:-1]], [coeffs_hat[0], *coeffs_hat[:0:-1]]
                    for group, p, q in zip(groups, coeffs, coeffs_hat):
                        group.extend(abs(a - b) for a, b in zip(p, q))
    return sum(weight * sum(group) / len(group) for weight, group in zip(weights, groups))


@pytest.mark.filterwarnings("ignore:Level value")  # PyWavelets on very short signals
@pytest.mark.parametrize("wavelet, frames, levels, weights", [
    ("haar", 7, 2, (1, 1, 1)),
    ("haar", 7, 3, (0.5, 1, 2, 0.25)),
    ("haar", 15, 3, (1, 1, 1, 1)),
    ("db2", 7, 2, (1, 0.5, 2)),
    ("sym3", 15, 3, (1, 1, 1, 1)),
])
def test_global_term_equals_plain_computation(wavelet, frames, levels, weights):
    d_hat, d = motion(2, 2, frames, 3, 4, seed=1), motion(2, 2, frames, 3, 4, seed=2)
    got = sma_global(d_hat, d, levels, wavelet, weights).item()
    assert got == pytest.approx(plain_global(d_hat, d, levels, wavelet, weights), abs=1e-5)


def plain_radial_weight(height, width, delta, base):
    return [[((height / 2) ** 2 + (width / 2) ** 2) ** delta - ((u - height / 2) ** 2 + (v - width / 2) ** 2) ** delta + base
             for v in range(width)] for u in range(height)]


def plain_local(d_hat, d, delta, base, phase):
    """Per frame: numpy fftshift(fft2), amplitude and angle, weighted absolute differences, means."""
    b, c, f, h, w = d.shape
    weight = plain_radial_weight(h, w, delta, base)
    amplitude, phase_terms = [], []
    for bi in range(b):
        for ci in range(c):
            for k in range(f):
                spectrum = np.fft.fftshift(np.fft.fft2(d[bi, ci, k].double().numpy()))
                spectrum_hat = np.fft.fftshift(np.fft.fft2(d_hat[bi, ci, k].double().numpy()))
                for u in range(h):
                    for v in range(w):
                        z, z_hat = complex(spectrum[u, v]), complex(spectrum_hat[u, v])
                        amplitude.append(abs(abs(z) - abs(z_hat)) * weight[u][v])
                        diff = cmath.phase(z) - cmath.phase(z_hat)
                        if phase == "wrapped":
                            diff = cmath.phase(cmath.exp(1j * diff))  # the angle between, in (−π, π]
                        phase_terms.append(abs(diff) * weight[u][v])
    return sum(amplitude) / len(amplitude), sum(phase_terms) / len(phase_terms)


@pytest.mark.parametrize("height, width, phase", [(5, 7, "raw"), (5, 7, "wrapped"), (6, 8, "wrapped"), (6, 7, "wrapped")])
@pytest.mark.parametrize("delta, base", [(0.05, 1.0), (0.3, 0.5)])
def test_local_term_equals_plain_computation(height, width, phase, delta, base):
    """Raw phases are compared on odd sizes only: at even sizes the Nyquist bins are real and
    numpy and torch may return +π and −π for the same bin (docs/METHODS.md §2)."""
    d_hat, d = motion(2, 2, 3, height, width, seed=1), motion(2, 2, 3, height, width, seed=2)
    amplitude, phase_term = sma_local(d_hat, d, delta, base, phase)
    want_amplitude, want_phase = plain_local(d_hat, d, delta, base, phase)
    assert amplitude.item() == pytest.approx(want_amplitude, abs=1e-5)
    assert phase_term.item() == pytest.approx(want_phase, abs=1e-5)


def test_radial_weight_matches_reference_figures():
    weight = radial_weight(40, 64)
    assert weight[20, 32].item() == pytest.approx(2.44, abs=0.005)  # DC after fftshift
    assert weight[0, 0].item() == pytest.approx(1.0)
    assert weight.min().item() == pytest.approx(1.0)
    assert weight.argmax().item() == 20 * 64 + 32
    torch.testing.assert_close(radial_weight(6, 7, 0.2, 0.5), torch.tensor(plain_radial_weight(6, 7, 0.2, 0.5)))


def test_wrap_phase_maps_into_half_open_interval():
    angles = torch.tensor([0.0, math.pi, -math.pi, 1.5 * math.pi, -1.5 * math.pi, 2 * math.pi - 1e-3, 4.0])
    wrapped = wrap_phase(angles)
    assert ((wrapped > -math.pi) & (wrapped <= math.pi + 1e-6)).all()
    torch.testing.assert_close(torch.cos(wrapped), torch.cos(angles), atol=1e-5, rtol=0)
    assert wrapped[2].item() == pytest.approx(math.pi)  # −π and +π are the same angle: no 2π jump


def test_raw_phase_jumps_by_two_pi_where_wrapped_sees_nearly_equal_phases():
    """One row of 3 pixels: frame [0, 1, 1+ε] has its first non-DC bin just above the negative real
    axis (phase π - O(ε)), [0, 1+ε, 1] just below it (−π + O(ε)). The phases are almost the same
    angle; the raw difference calls them ~2π apart."""
    eps = 1e-3
    d = torch.tensor([0.0, 1.0, 1.0 + eps]).reshape(1, 1, 1, 1, 3)
    d_hat = torch.tensor([0.0, 1.0 + eps, 1.0]).reshape(1, 1, 1, 1, 3)
    weight = radial_weight(1, 3).flatten().tolist()  # fftshift order: bins -1, 0 (DC), 1
    raw = sma_local(d_hat, d, phase="raw")[1].item()
    wrapped = sma_local(d_hat, d, phase="wrapped")[1].item()
    assert raw == pytest.approx(2 * math.pi * (weight[0] + weight[2]) / 3, rel=1e-2)
    assert wrapped < 1e-2


@pytest.mark.parametrize("phase", ["raw", "wrapped"])
def test_identical_motion_gives_zero(phase):
    d = motion(2, 4, 7, 8, 8)
    assert sma_global(d.clone(), d, 2).item() == 0
    assert [t.item() for t in sma_local(d.clone(), d, phase=phase)] == [0, 0]


def test_scaling_both_sides_scales_magnitude_terms_and_keeps_phase():
    d_hat, d = motion(1, 4, 7, 8, 8, seed=1), motion(1, 4, 7, 8, 8, seed=2)
    amplitude, phase = sma_local(d_hat, d)
    amplitude3, phase3 = sma_local(3 * d_hat, 3 * d)
    assert amplitude3.item() == pytest.approx(3 * amplitude.item(), rel=1e-5)
    assert phase3.item() == pytest.approx(phase.item(), rel=1e-5)
    assert sma_global(3 * d_hat, 3 * d, 2).item() == pytest.approx(3 * sma_global(d_hat, d, 2).item(), rel=1e-5)


def test_amplitude_ignores_where_motion_is_phase_does_not():
    """|F| is invariant to a circular shift of a frame; the phase records the position."""
    d_hat, d = motion(1, 4, 7, 8, 8, seed=1), motion(1, 4, 7, 8, 8, seed=2)
    shifted = torch.roll(d_hat, shifts=(3, 2), dims=(-2, -1))
    amplitude, phase = sma_local(d_hat, d)
    amplitude_s, phase_s = sma_local(shifted, d)
    assert amplitude_s.item() == pytest.approx(amplitude.item(), rel=1e-5)
    assert abs(phase_s.item() - phase.item()) > 1e-2


def test_local_term_is_per_frame_global_term_is_not():
    """Shuffling the residual frames of both sides alike keeps every frame pair, so the Fourier term
    is unchanged; the wavelet term compares sequences in time, so it changes."""
    d = motion(1, 4, 7, 8, 8, seed=2)
    d_hat = d + torch.tensor([1.0, 0, 1, 0, 1, 0, 1]).reshape(1, 1, 7, 1, 1)  # a fast flicker...
    order = torch.tensor([0, 2, 4, 6, 1, 3, 5])  # ...becomes one slow step
    for got, want in zip(sma_local(d_hat[:, :, order], d[:, :, order]), sma_local(d_hat, d)):
        assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert abs(sma_global(d_hat[:, :, order], d[:, :, order], 2).item() - sma_global(d_hat, d, 2).item()) > 0.1


def plain_x0_motion(step, mode):
    """|Δ_f x0_hat| and |Δ_f x0| element by element, from x0_hat = (x_t - sqrt(1-abar)·eps_hat)/sqrt(abar)."""
    abar = float(step.signal_scale.square().reshape(-1)[0])
    x_t, eps_hat, x0 = (t.double() for t in (step.x_t, step.prediction.detach(), step.x0))
    scale = math.sqrt(abar) if mode == "scaled" else 1.0
    x0_hat = (x_t - math.sqrt(1 - abar) * eps_hat) / math.sqrt(max(abar, ABAR_FLOOR))
    b, c, f, h, w = x0.shape
    d_hat, d = torch.zeros(b, c, f - 1, h, w, dtype=torch.float64), torch.zeros(b, c, f - 1, h, w, dtype=torch.float64)
    for k in range(f - 1):
        d_hat[:, :, k] = (scale * (x0_hat[:, :, k + 1] - x0_hat[:, :, k])).abs()
        d[:, :, k] = (scale * (x0[:, :, k + 1] - x0[:, :, k])).abs()
    return d_hat, d


@pytest.mark.parametrize("mode", ["scaled", "released"])
@pytest.mark.parametrize("abar", [0.9991, 0.3, 2.43e-9])
def test_x0_motion_equals_plain_computation(mode, abar):
    step = random_step((1, 2, 5, 4, 4), abar_t=abar, requires_grad=False)
    d_hat, d = x0_motion(step, mode)
    want_hat, want = plain_x0_motion(step, mode)
    assert d_hat.dtype == torch.float32
    torch.testing.assert_close(d_hat.double(), want_hat, rtol=1e-5, atol=1e-5 * max(1.0, want_hat.abs().max().item()))
    torch.testing.assert_close(d.double(), want, rtol=1e-5, atol=1e-5)


def test_exact_prediction_recovers_the_clean_motion():
    step = random_step((1, 2, 5, 4, 4), abar_t=0.4, error=0.0)
    released_hat, released = x0_motion(step, "released")
    torch.testing.assert_close(released_hat, released, atol=1e-5, rtol=1e-5)
    scaled_hat, scaled = x0_motion(step, "scaled")
    torch.testing.assert_close(scaled_hat, scaled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scaled, math.sqrt(0.4) * released, atol=1e-5, rtol=1e-5)


def test_scaled_estimate_stays_bounded_where_released_explodes():
    step = random_step((1, 4, 8, 8, 8), abar_t=2.43e-9, requires_grad=False)  # cosine schedule, t = 999
    released_hat, _ = x0_motion(step, "released")
    scaled_hat, _ = x0_motion(step, "scaled")
    assert released_hat.max().item() > 1e3  # 1/sqrt(abar) ≈ 2·10⁴ times the noise error
    assert scaled_hat.max().item() < 10


def test_released_estimate_is_finite_for_zero_terminal_snr():
    step = random_step((1, 2, 4, 4, 4), abar_t=0.0, requires_grad=False)
    assert torch.isfinite(x0_motion(step, "released")[0]).all()


def test_per_sample_abar_applies_to_each_sample():
    abar = torch.tensor([0.9, 0.1])
    both = random_step((2, 2, 4, 4, 4), abar_t=abar, requires_grad=False)
    for i in range(2):
        single = StepTensors.for_noise_prediction(*(t[i : i + 1] for t in (both.prediction, both.target, both.x0,
                                                                            both.x_t, abar)))
        torch.testing.assert_close(x0_motion(both, "released")[0][i : i + 1], x0_motion(single, "released")[0])
