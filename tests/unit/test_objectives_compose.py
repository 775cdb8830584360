"""The composed objective: L = base + λ_g·L_g + λ_l·L_l, its logged terms, and finite gradients at
every timestep in fp32, fp16 and bf16."""

import pytest
import torch
from diffusers import DDPMScheduler

from motion_core.errors import InputError
from motion_core.objectives import ObjectiveSpec, StepTensors, build_objective, x0_motion
from motion_core.objectives.motion_director import debiased_loss, draw_anchor
from motion_core.objectives.sma import sma_global, sma_local
from motion_core.objectives.vmc import vmc_loss
from motion_core.testing import random_step

SCHEDULES = {
    # 1/sqrt(abar) reaches 2·10⁴ at t = 999 (Show-1 / DeepFloyd IF): the released x0 estimate's worst case.
    "cosine": DDPMScheduler(beta_schedule="squaredcos_cap_v2").alphas_cumprod,
    # ModelScope / ZeroScope training schedule.
    "scaled_linear": DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).alphas_cumprod,
    # abar = 0 at t = 999: division by zero unless handled.
    "zero_snr": DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              rescale_betas_zero_snr=True).alphas_cumprod,
}


def test_total_is_base_plus_weighted_sma_terms():
    spec = ObjectiveSpec(sma_global_weight=0.4, sma_local_weight=0.2, sma_global_levels=2)
    step = random_step((1, 4, 8, 8, 8), abar_t=0.6, seed=3)
    result = build_objective(spec)(step)
    d_hat, d = x0_motion(step, spec.x0_estimate)  # the default: released
    base = vmc_loss(step.prediction, step.target).item()
    global_term = sma_global(d_hat, d, 2, "haar").item()
    amplitude, phase = (t.item() for t in sma_local(d_hat, d))
    terms = {k: v.item() for k, v in result.terms.items()}
    assert terms == pytest.approx({"base": base, "sma_global": global_term, "sma_local_amplitude": amplitude,
                                   "sma_local_phase": phase, "sma_local": amplitude + phase,
                                   "total": base + 0.4 * global_term + 0.2 * (amplitude + phase)}, rel=1e-6)
    assert result.total.item() == pytest.approx(terms["total"], rel=1e-6)
    assert result.total.requires_grad and not any(v.requires_grad for v in result.terms.values())


def test_zero_weights_switch_terms_off():
    step = random_step((1, 4, 8, 8, 8))
    result = build_objective(ObjectiveSpec(base_loss="mse", sma_global_weight=0, sma_local_weight=0))(step)
    assert set(result.terms) == {"base", "total"}
    assert result.total.item() == pytest.approx((step.prediction.detach() - step.target).square().mean().item())


def test_motion_director_anchor_follows_the_callers_generator():
    spec = ObjectiveSpec(base_loss="motion_director", sma_global_weight=0, sma_local_weight=0, debias_beta=1.0)
    step = random_step((1, 4, 8, 8, 8))
    objective = build_objective(spec)
    first = objective(step, torch.Generator().manual_seed(7))
    again = objective(step, torch.Generator().manual_seed(7))
    assert first.total.item() == again.total.item()
    anchor = draw_anchor(8, torch.Generator().manual_seed(7))
    mse, debiased = debiased_loss(step.prediction, step.target, anchor)
    assert first.terms["mse"].item() == pytest.approx(mse.item(), rel=1e-6)
    assert first.terms["debiased"].item() == pytest.approx(debiased.item(), rel=1e-6)
    assert first.terms["base"].item() == pytest.approx(mse.item() + debiased.item(), rel=1e-6)
    others = {objective(step, torch.Generator().manual_seed(s)).terms["debiased"].item() for s in range(12)}
    assert len(others) > 1, "different seeds draw different anchors"


@pytest.mark.parametrize("base", ["vmc", "motion_director", "mse"])
def test_identical_prediction_gives_zero_for_every_term(base):
    step = random_step((1, 4, 8, 8, 8), abar_t=0.3, error=0.0)
    for x0_estimate in ("scaled", "released"):
        spec = ObjectiveSpec(base_loss=base, x0_estimate=x0_estimate, sma_local_phase="raw")
        result = build_objective(spec)(step, torch.Generator().manual_seed(0))
        for name, value in result.terms.items():
            assert value.item() == pytest.approx(0, abs=1e-4), (name, x0_estimate)


SPECS = {
    "vmc+sma": ObjectiveSpec(),
    "vmc_paper": ObjectiveSpec(vmc_variant="paper", sma_global_weight=0, sma_local_weight=0),
    "vmc_l2": ObjectiveSpec(vmc_variant="l2", sma_global_weight=0, sma_local_weight=0),
    "motion_director+sma_raw": ObjectiveSpec(base_loss="motion_director", sma_local_phase="raw"),
    "sma_global_only": ObjectiveSpec(base_loss="mse", sma_local_weight=0),
    "sma_local_only": ObjectiveSpec(base_loss="mse", sma_global_weight=0),
    "released_x0": ObjectiveSpec(x0_estimate="released", sma_local_phase="raw"),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("t", [0, 500, 999])
@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("spec_name", list(SPECS))
def test_gradients_reach_eps_hat_and_are_finite(spec_name, schedule, t, dtype):
    step = random_step((1, 4, 8, 8, 8), abar_t=SCHEDULES[schedule][t], dtype=dtype, seed=t)
    result = build_objective(SPECS[spec_name])(step, torch.Generator().manual_seed(0))
    assert result.total.dtype == torch.float32
    assert all(torch.isfinite(v) for v in result.terms.values()), result.terms
    result.total.backward()
    grad = step.prediction.grad
    assert grad is not None and grad.dtype == dtype
    assert torch.isfinite(grad).all()
    assert grad.abs().max() > 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("term", ["sma_global", "sma_local"])
def test_each_sma_term_alone_sends_a_gradient_at_the_noisiest_step(term, dtype):
    """The released estimate at t = 999 of the cosine schedule (1/sqrt(abar) ≈ 2·10⁴) in half precision."""
    step = random_step((1, 4, 8, 8, 8), abar_t=SCHEDULES["cosine"][999], dtype=dtype)
    d_hat, d = x0_motion(step, "released")
    loss = sma_global(d_hat, d, 2) if term == "sma_global" else sum(sma_local(d_hat, d, phase="raw"))
    loss.backward()
    assert torch.isfinite(step.prediction.grad).all() and step.prediction.grad.abs().max() > 0


def test_per_sample_timesteps():
    abar = SCHEDULES["cosine"][torch.tensor([0, 999])]
    step = random_step((2, 4, 8, 8, 8), abar_t=abar)
    result = build_objective(ObjectiveSpec())(step)
    result.total.backward()
    assert torch.isfinite(step.prediction.grad).all()


def test_frames_too_few_for_the_levels_is_a_clear_error():
    step = random_step((1, 4, 4, 8, 8))
    with pytest.raises(InputError) as caught:
        build_objective(ObjectiveSpec(sma_global_levels=3))(step)
    assert caught.value.input_name == "sma_global_levels"


def test_mismatched_tensors_are_a_clear_error():
    step = random_step((1, 4, 8, 8, 8))
    bad = StepTensors.for_noise_prediction(step.prediction, step.target[:, :, :4], step.x0, step.x_t,
                                           step.signal_scale.square())
    with pytest.raises(InputError) as caught:
        build_objective(ObjectiveSpec())(bad)
    assert caught.value.input_name == "target"
