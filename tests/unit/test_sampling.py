"""motion_core.sampling.DiscreteDiffusion: the DDPM schedule diffusers builds, noising, training
targets and x0 estimates for ε- and v-prediction, against the formulas written out here."""

import pytest
import torch

from motion_core.errors import InputError
from motion_core.sampling import DiscreteDiffusion, TimestepDistribution

CONFIG = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


def tensors():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(2, 4, 3, 5, 5, generator=gen), torch.randn(2, 4, 3, 5, 5, generator=gen), torch.tensor([10, 900])


def test_the_schedule_is_diffusers_ddpm_schedule():
    from diffusers import DDPMScheduler

    sampling = DiscreteDiffusion(CONFIG)
    assert torch.equal(sampling.alphas_cumprod, DDPMScheduler(**CONFIG).alphas_cumprod.float())
    assert sampling.prediction == "epsilon"


def test_epsilon_prediction_noises_targets_and_estimates_by_the_formulas():
    sampling = DiscreteDiffusion(CONFIG)
    x0, eps, t = tensors()
    abar = sampling.alphas_cumprod[t].reshape(-1, 1, 1, 1, 1)
    x_t = sampling.noised(x0, eps, t)
    torch.testing.assert_close(x_t, abar.sqrt() * x0 + (1 - abar).sqrt() * eps)
    assert torch.equal(sampling.target(x0, eps, t), eps)
    eps_hat = eps + 0.1
    torch.testing.assert_close(sampling.x0_from(eps_hat, x_t, t), (x_t - (1 - abar).sqrt() * eps_hat) / abar.sqrt())
    assert torch.equal(sampling.signal_from(eps_hat, x_t, t), x_t - (1 - abar).sqrt() * eps_hat)


def test_v_prediction_targets_and_estimates_by_the_formulas():
    sampling = DiscreteDiffusion({**CONFIG, "prediction_type": "v_prediction"})
    x0, eps, t = tensors()
    abar = sampling.alphas_cumprod[t].reshape(-1, 1, 1, 1, 1)
    x_t = sampling.noised(x0, eps, t)
    v = sampling.target(x0, eps, t)
    torch.testing.assert_close(v, abar.sqrt() * eps - (1 - abar).sqrt() * x0)
    torch.testing.assert_close(sampling.x0_from(v, x_t, t), x0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sampling.signal_from(v, x_t, t), abar.sqrt() * x0, rtol=1e-5, atol=1e-5)


def test_training_timesteps_cover_the_schedule_uniformly():
    sampling = DiscreteDiffusion(CONFIG)
    t = sampling.draw_timesteps(20_000, torch.Generator().manual_seed(0))
    assert t.dtype == torch.int64 and t.min() >= 0 and t.max() <= 999
    assert abs(float((t < 500).float().mean()) - 0.5) < 0.02


def test_a_prediction_type_the_pack_cannot_train_is_refused():
    with pytest.raises(InputError, match="predicts 'sample'; the pack trains models that predict epsilon or "
                                         "v_prediction"):
        DiscreteDiffusion({**CONFIG, "prediction_type": "sample"})


def test_the_default_distribution_is_the_released_uniform_draw_bit_for_bit():
    sampling = DiscreteDiffusion(CONFIG)
    drawn = sampling.draw_timesteps(64, torch.Generator().manual_seed(3))
    assert torch.equal(drawn, torch.randint(0, 1000, (64,), generator=torch.Generator().manual_seed(3)))


def test_a_timestep_range_and_shift_draw_where_they_say():
    sampling = DiscreteDiffusion(CONFIG)
    high_noise = sampling.draw_timesteps(20_000, torch.Generator().manual_seed(0), TimestepDistribution(0.6, 1.0))
    assert high_noise.min() == round(0.6 * 999) and high_noise.max() == 999
    assert abs(float(high_noise.float().mean()) - (599 + 999) / 2) < 5  # uniform inside the range
    shifted = sampling.draw_timesteps(20_000, torch.Generator().manual_seed(0), TimestepDistribution(shift=3.0))
    # u' = 3u / (1 + 2u) > 1/2 exactly when u > 1/4: three quarters of the draws land in the noisier half.
    assert abs(float((shifted >= 500).float().mean()) - 0.75) < 0.02


@pytest.mark.parametrize("distribution, name", [
    (TimestepDistribution(0.7, 0.3), "timestep_low"), (TimestepDistribution(-0.1, 1.0), "timestep_low"),
    (TimestepDistribution(0.0, 1.5), "timestep_low"), (TimestepDistribution(shift=0.0), "timestep_shift"),
    (TimestepDistribution(high=float("nan")), "timestep_high"),
])
def test_an_invalid_distribution_names_the_setting(distribution, name):
    with pytest.raises(InputError) as refused:
        distribution.validate()
    assert refused.value.input_name == name
