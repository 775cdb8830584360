"""Loss weighting by noise level (motion_core.sampling.LossWeighting; docs/METHODS.md §1, "Timesteps and
loss weighting"): the weights against numpy from the schedule's betas, what each option means in x0 / v
space, and how the objectives apply them per sample."""

import numpy as np
import pytest
import torch

from motion_core.errors import InputError
from motion_core.objectives import ObjectiveSpec, StepTensors, build_objective
from motion_core.sampling import LOSS_WEIGHTINGS, DiscreteDiffusion, LossWeighting

# ZeroScope's / ModelScope's schedule
CONFIG = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
PREDICTIONS = ("epsilon", "v_prediction")
ALL_T = torch.arange(1000)
RTOL = 1e-4
"""The schedule is fp32, as diffusers builds it: near t = 0, ``1 - abar_t`` keeps about four digits (2.6e-5)."""


def numpy_snr() -> np.ndarray:
    """``SNR_t = abar_t / (1 - abar_t)`` in float64, the scaled_linear schedule written out (DDPM: betas
    evenly spaced in sqrt, ``abar_t = prod_{s<=t} (1 - beta_s)``)."""
    betas = np.linspace(CONFIG["beta_start"] ** 0.5, CONFIG["beta_end"] ** 0.5, 1000, dtype=np.float64) ** 2
    abar = np.cumprod(1 - betas)
    return abar / (1 - abar)


def sampling_for(prediction: str) -> DiscreteDiffusion:
    return DiscreteDiffusion({**CONFIG, "prediction_type": prediction})


def test_snr_is_abar_over_one_minus_abar():
    sampling = sampling_for("epsilon")
    np.testing.assert_allclose(sampling.snr(ALL_T).numpy(), numpy_snr(), rtol=RTOL)
    signal, noise = sampling.scales(ALL_T)
    torch.testing.assert_close(sampling.snr(ALL_T), signal.square() / noise.square())


@pytest.mark.parametrize("gamma", [5.0, 1.0])
def test_min_snr_is_min_snr_gamma_over_snr_for_epsilon_and_over_snr_plus_one_for_v(gamma):
    """Hang et al. 2023: ε-prediction ``min(SNR, γ)/SNR``, v-prediction ``min(SNR, γ)/(SNR + 1)``."""
    snr = numpy_snr()
    weighting = LossWeighting("min_snr", gamma)
    epsilon = weighting.weights(sampling_for("epsilon"), ALL_T)
    v = weighting.weights(sampling_for("v_prediction"), ALL_T)
    assert epsilon.dtype == v.dtype == torch.float32 and epsilon.shape == v.shape == (1000,)
    np.testing.assert_allclose(epsilon.numpy(), np.minimum(snr, gamma) / snr, rtol=RTOL)
    np.testing.assert_allclose(v.numpy(), np.minimum(snr, gamma) / (snr + 1), rtol=RTOL)
    # ε: only the nearly clean timesteps (SNR > γ) are weighted down, the rest keep weight 1
    assert (epsilon[torch.from_numpy(snr <= gamma)] == 1).all() and (epsilon[torch.from_numpy(snr > gamma)] < 1).all()


def test_x0_and_v_weights_are_one_over_snr_and_snr_plus_one_over_snr_for_epsilon():
    snr = numpy_snr()
    epsilon, v = sampling_for("epsilon"), sampling_for("v_prediction")
    np.testing.assert_allclose(LossWeighting("x0").weights(epsilon, ALL_T).numpy(), 1 / snr, rtol=RTOL)
    np.testing.assert_allclose(LossWeighting("v").weights(epsilon, ALL_T).numpy(), (snr + 1) / snr, rtol=RTOL)
    np.testing.assert_allclose(LossWeighting("x0").weights(v, ALL_T).numpy(), 1 / (snr + 1), rtol=RTOL)
    assert torch.equal(LossWeighting("v").weights(v, ALL_T), torch.ones(1000))
    # the figures the docs quote: 8.5e-4 at t = 0, 214 at t = 999
    assert LossWeighting("x0").weights(epsilon, torch.tensor([0, 999])).tolist() == pytest.approx([8.5e-4, 214],
                                                                                                   rel=3e-3)


def test_none_has_no_weights_so_the_loss_is_the_plain_mean():
    for prediction in PREDICTIONS:
        assert LossWeighting().weights(sampling_for(prediction), ALL_T) is None


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("space", ["x0", "v"])
def test_x0_and_v_weighting_turn_the_noise_mse_into_the_mse_of_x0_or_v(prediction, space):
    """What the options mean: the weighted loss of a sample equals the squared error of the x0 estimate
    (``x0``) or of the v the prediction implies (``v``), measured directly."""
    sampling = sampling_for(prediction)
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 4, 3, 5, 5, generator=gen), torch.randn(3, 4, 3, 5, 5, generator=gen)
    t = torch.tensor([5, 400, 990])
    x_t, target = sampling.noised(x0, eps, t), sampling.target(x0, eps, t)
    prediction_ = target + 0.3 * torch.randn(target.shape, generator=gen)
    weight = LossWeighting(space).weights(sampling, t)
    step = StepTensors(prediction_, target, x0, sampling.x0_from(prediction_, x_t, t),
                       sampling.signal_from(prediction_, x_t, t), x_t, sampling.scales(t)[0], weight)
    weighted = build_objective(ObjectiveSpec(base_loss="mse", sma_global_weight=0, sma_local_weight=0))(step).total
    if space == "x0":
        direct = (sampling.x0_from(prediction_, x_t, t) - x0).square().mean()
    else:  # v = signal·eps - noise·x0, with the eps the prediction implies
        signal, noise = (s.reshape(-1, 1, 1, 1, 1) for s in sampling.scales(t))
        x0_hat = sampling.x0_from(prediction_, x_t, t)
        eps_hat = (x_t - signal * x0_hat) / noise
        direct = ((signal * eps_hat - noise * x0_hat) - sampling_for("v_prediction").target(x0, eps, t)).square().mean()
    torch.testing.assert_close(weighted, direct, rtol=1e-4, atol=0)


def test_zero_terminal_snr_weights_stay_finite():
    """``SNR_T = 0``: ε's ``min(SNR, γ)/SNR`` takes its limit 1; ``1/SNR`` is capped (SNR floored at ≈1e-9)."""
    sampling = DiscreteDiffusion({**CONFIG, "rescale_betas_zero_snr": True})
    assert sampling.snr(torch.tensor([999])).item() == 0
    assert LossWeighting("min_snr").weights(sampling, torch.tensor([999])).item() == 1
    x0_weight = LossWeighting("x0").weights(sampling, torch.tensor([999])).item()
    assert x0_weight == pytest.approx(1e9, rel=1e-3)
    v = DiscreteDiffusion({**CONFIG, "rescale_betas_zero_snr": True, "prediction_type": "v_prediction"})
    assert LossWeighting("min_snr").weights(v, torch.tensor([999])).item() == 0
    assert LossWeighting("x0").weights(v, torch.tensor([999])).item() == 1


@pytest.mark.parametrize("weighting, name", [
    (LossWeighting("snr"), "loss_weighting"), (LossWeighting(None), "loss_weighting"),
    (LossWeighting("min_snr", 0.0), "min_snr_gamma"), (LossWeighting("min_snr", float("nan")), "min_snr_gamma"),
    (LossWeighting("min_snr", True), "min_snr_gamma"), (LossWeighting("min_snr", "5"), "min_snr_gamma"),
])
def test_bad_values_name_the_input(weighting, name):
    with pytest.raises(InputError) as err:
        weighting.validate()
    assert err.value.input_name == name
    assert LOSS_WEIGHTINGS[0] == "none" and LossWeighting().validate() == LossWeighting("none", 5.0)


def test_a_model_of_another_prediction_type_is_refused_by_name():
    class Sample:
        prediction = "sample"  # a model predicting x0 itself

        def snr(self, t):
            return torch.ones(len(t))

    with pytest.raises(InputError, match=r"^loss_weighting: min_snr is defined for ε-, v- and flow-prediction "):
        LossWeighting("min_snr").weights(Sample(), torch.tensor([3]))


# --- how the objectives apply the weights ---------------------------------------------------------

def step_of(batch: int, weight=None, seed: int = 0) -> StepTensors:
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, 4, 6, 8, 8)
    eps, eps_hat, x0 = (torch.randn(shape, generator=gen) for _ in range(3))
    abar = torch.tensor([0.9, 0.3, 0.05][:batch])
    step = StepTensors.for_noise_prediction(eps_hat, eps, x0, abar.sqrt().reshape(-1, 1, 1, 1, 1) * x0
                                            + (1 - abar).sqrt().reshape(-1, 1, 1, 1, 1) * eps, abar)
    return StepTensors(*[getattr(step, name) for name in ("prediction", "target", "x0", "x0_hat", "signal_hat", "x_t",
                                                          "signal_scale")], weight)


def sample(step: StepTensors, i: int) -> StepTensors:
    """Sample ``i`` of the step alone, without weights."""
    return StepTensors(*[getattr(step, name)[i:i + 1] for name in ("prediction", "target", "x0", "x0_hat",
                                                                   "signal_hat", "x_t", "signal_scale")])


@pytest.mark.parametrize("spec", [
    ObjectiveSpec(),  # VMC + SMA
    ObjectiveSpec(base_loss="motion_director"),
    ObjectiveSpec(base_loss="mse", vmc_variant="paper"),
    ObjectiveSpec(vmc_variant="paper", sma_global_weight=0, sma_local_weight=0),
    ObjectiveSpec(vmc_variant="l2", x0_estimate="released"),
])
def test_the_weights_scale_each_samples_base_loss_and_leave_the_sma_terms_alone(spec):
    """Base terms (and MotionDirector's two parts): ``Σ_i w_i·term(sample i) / b``; SMA terms as unweighted."""
    weight = torch.tensor([0.25, 2.0, 7.0])
    objective = build_objective(spec)
    weighted = objective(step_of(3, weight), torch.Generator().manual_seed(1))
    plain = objective(step_of(3), torch.Generator().manual_seed(1))
    alone = [objective(sample(step_of(3), i), torch.Generator().manual_seed(1)).terms for i in range(3)]
    for name in ("base", "mse", "debiased"):
        if name in plain.terms:
            expected = sum(w * terms[name] for w, terms in zip(weight.tolist(), alone)) / 3
            torch.testing.assert_close(weighted.terms[name], expected)
    for name in ("sma_global", "sma_local"):
        if name in plain.terms:
            assert torch.equal(weighted.terms[name], plain.terms[name])
    sma = weighted.terms["total"] - weighted.terms["base"]
    torch.testing.assert_close(sma, plain.terms["total"] - plain.terms["base"])


def test_weight_one_on_a_single_sample_is_exactly_the_unweighted_loss_and_gradient():
    spec = ObjectiveSpec(base_loss="mse")
    unweighted, weighted = step_of(1), step_of(1, torch.ones(1))
    for step in (unweighted, weighted):
        step.prediction.requires_grad_(True)
    first, second = (build_objective(spec)(step).total for step in (unweighted, weighted))
    first.backward(), second.backward()
    assert torch.equal(first, second) and torch.equal(unweighted.prediction.grad, weighted.prediction.grad)


@pytest.mark.parametrize("weight", [torch.ones(2), torch.tensor([1.0, float("nan"), 1.0]),
                                    torch.tensor([1.0, -1.0, 1.0])])
def test_weights_that_do_not_fit_the_batch_are_refused(weight):
    with pytest.raises(InputError, match="^weight: expected 3 finite weights >= 0, one per sample"):
        build_objective(ObjectiveSpec())(step_of(3, weight))
