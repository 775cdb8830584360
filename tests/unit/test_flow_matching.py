"""Flow matching (Wan's process) as the pack writes it, against plain computations: the identities
between x_σ, x0, ε and v; training timesteps with the model's shift; Euler sampling and inversion."""

import pytest
import torch

from motion_core.errors import InputError
from motion_core.sampling import FlowMatching, TimestepDistribution, flow_shift

SHAPE = (2, 4, 5, 6, 6)


@pytest.fixture
def tensors():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(SHAPE, generator=gen), torch.randn(SHAPE, generator=gen), torch.randn(SHAPE, generator=gen)


def test_noising_target_and_estimates_are_the_flow_identities(tensors):
    x0, eps, error = tensors
    flow = FlowMatching(shift=3.0)
    t = torch.tensor([250.0, 900.0])
    sigma = (t / 1000).reshape(-1, 1, 1, 1, 1)
    x_t = flow.noised(x0, eps, t)
    torch.testing.assert_close(x_t, (1 - sigma) * x0 + sigma * eps)
    v = flow.target(x0, eps, t)
    torch.testing.assert_close(v, eps - x0)
    v_hat = v + 0.1 * error
    x0_hat = flow.x0_from(v_hat, x_t, t)
    torch.testing.assert_close(x0_hat, x_t - sigma * v_hat)
    torch.testing.assert_close(x0_hat - x0, -sigma * (v_hat - v), atol=1e-6, rtol=0)  # x0 error = -σ·(v error)
    eps_hat = x_t + (1 - sigma) * v_hat  # ε estimate: its error is (1-σ)·(v error)
    torch.testing.assert_close(eps_hat - eps, (1 - sigma) * (v_hat - v), atol=1e-6, rtol=0)
    torch.testing.assert_close(flow.signal_from(v_hat, x_t, t), (1 - sigma) * x0_hat)
    signal, noise = flow.scales(t)
    torch.testing.assert_close(flow.snr(t), (signal / noise).square())


def test_training_timesteps_carry_the_models_shift_and_the_chosen_range():
    flow = FlowMatching(shift=3.0)
    t = flow.draw_timesteps(20000, torch.Generator().manual_seed(1))
    assert t.dtype == torch.float32 and 0 <= t.min() and t.max() < 1000
    u = torch.rand(20000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(t, (3 * u / (1 + 2 * u) * 1000).float())
    assert (t > 500).float().mean() > 0.7  # shift 3 puts 3/4 of the draws above σ = 0.5
    high = flow.draw_timesteps(1000, torch.Generator().manual_seed(2), TimestepDistribution(low=0.6, high=1.0))
    assert high.min() >= float(flow_shift(torch.tensor(0.6), 3.0)) * 1000 - 1e-3


def straight_path_denoiser(x0):
    """The exact velocity field of the straight paths ending in ``x0``: v(x, σ) = (x - x0) / σ."""
    def denoise(x, t):
        sigma = (t / 1000).reshape(-1, 1, 1, 1, 1).clamp_min(1e-12)
        return (x - x0) / sigma
    return denoise


def test_euler_sampling_and_inversion_follow_straight_paths_exactly(tensors):
    """On straight paths Euler is exact: sampling from ε reaches x0, and inverting x0 with the
    velocity of the paths through it returns to the noise the velocity points to."""
    x0, eps, _ = tensors
    flow = FlowMatching(shift=5.0)
    seen = []
    sampled = flow.sample(straight_path_denoiser(x0), eps.clone(), 7, progress=lambda done, total: seen.append(done))
    torch.testing.assert_close(sampled, x0, atol=1e-5, rtol=0)
    assert seen == list(range(1, 8))
    velocity = lambda x, t: eps - x0  # noqa: E731 - the constant velocity of the straight path x0 → ε
    torch.testing.assert_close(flow.invert(velocity, x0.clone(), 7), eps, atol=1e-5, rtol=0)
    grid = flow.grid(4)
    torch.testing.assert_close(grid, flow_shift(torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64), 5.0))


@torch.no_grad()
def test_the_latent_preview_of_euler_sampling_is_x0_hat_of_each_step(tensors):
    """Each step's preview is x_σ − σ·v; on straight paths every estimate is x0 already."""
    x0, eps, _ = tensors
    estimates = []
    FlowMatching(shift=5.0).sample(straight_path_denoiser(x0), eps.clone(), 5, preview=estimates.append)
    assert len(estimates) == 5
    for estimate in estimates:
        torch.testing.assert_close(estimate, x0, atol=1e-5, rtol=0)


def test_bad_values_are_refused():
    with pytest.raises(InputError, match="flow shift 0 is not valid"):
        FlowMatching(shift=0)
    with pytest.raises(InputError, match="^steps: 0 is not valid"):
        FlowMatching().grid(0)


def test_loss_weighting_of_a_flow_model_is_the_x0_error_weighted_as_named():
    """weight · |v_hat - v|² equals the x0-space squared error times the named x0 weight."""
    from motion_core.sampling import LossWeighting

    flow = FlowMatching(shift=3.0)
    t = torch.tensor([100.0, 500.0, 950.0])
    sigma = t / 1000
    snr = ((1 - sigma) / sigma).square()
    x0_error_per_v_error = sigma.square()  # |x0_hat - x0|² = σ²·|v_hat - v|²
    expected = {"x0": x0_error_per_v_error, "min_snr": snr.clamp_max(5) * x0_error_per_v_error,
                "v": torch.ones(3)}
    for kind, want in expected.items():
        torch.testing.assert_close(LossWeighting(kind).weights(flow, t), want.float(), rtol=1e-5, atol=1e-7)
    assert LossWeighting("none").weights(flow, t) is None
