"""The one-shot training loop on the tiny UNet3D (8 frames, 16×16 latents): what it trains, that it
learns, that it is reproducible, that the shared model is never changed, and how it stops."""

import dataclasses
import json
import math

import pytest
import torch

from motion_core.adapters import TemporalAttentionAdapter, make_view
from motion_core.errors import InputError
from motion_core.objectives import ObjectiveSpec, StepTensors, build_objective
from motion_core.sampling import LossWeighting, TimestepDistribution
from motion_core.train import TrainOptions, train
from motion_core.testing import TINY_TEXT_DIM, tiny_denoiser, tiny_unet3d

SPEC = ObjectiveSpec()  # VMC + SMA, the default
FIXED_TIMESTEPS = (50, 200, 400, 600, 800)


def moving_blob(frames=8, size=16):
    """A Gaussian blob crossing the frame left to right, in 4 latent channels ``(1, 4, f, h, w)``."""
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    video = torch.stack([torch.exp(-((xs - 3 - 1.3 * k) ** 2 + (ys - size / 2) ** 2) / 6) for k in range(frames)])
    return 2 * torch.stack([video, -video, 0.5 * video, video.flip(-1)])[None]


@pytest.fixture(scope="module")
def setup():
    denoiser = tiny_denoiser()
    text = torch.randn(1, 7, TINY_TEXT_DIM, generator=torch.Generator().manual_seed(0))
    return denoiser.module, moving_blob(), text, denoiser


def fresh(unet):
    return TemporalAttentionAdapter.for_unet(unet, "unet3d:tiny")


def fit(setup, adapter=None, call=None, **kwargs):
    unet, x0, text, denoiser = setup
    denoiser = dataclasses.replace(denoiser, call=call) if call else denoiser
    kwargs = {"steps": 3, "lr": 1e-3, "seed": 0, **kwargs}
    return train(denoiser, adapter or fresh(unet), kwargs.pop("latents", x0), kwargs.pop("text", text),
                 kwargs.pop("objective", SPEC), **kwargs)


@pytest.fixture(scope="module")
def trained(setup):
    unet = setup[0]
    before = {name: tensor.clone() for name, tensor in unet.state_dict().items()}
    processors = dict(unet.attn_processors)
    other_view = make_view(unet)
    start = fresh(unet)
    result = fit(setup, start, steps=30, lr=3e-3, prompt="a blob moves right", metadata={"width": "32"})
    return result, before, processors, other_view, start


def fixed_eval_loss(setup, adapter):
    """The objective averaged over fixed timesteps and noise, with ``adapter`` attached at strength 1."""
    unet, x0, text, denoiser = setup
    alphas = denoiser.sampling.alphas_cumprod
    view = make_view(unet)
    adapter.attach(view)
    objective, gen, losses = build_objective(SPEC), torch.Generator().manual_seed(123), []
    with torch.no_grad():
        for t in FIXED_TIMESTEPS:
            eps, abar = torch.randn(x0.shape, generator=gen), alphas[t]
            x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
            eps_hat = view(x_t, torch.tensor([t]), encoder_hidden_states=text).sample
            losses.append(objective(StepTensors.for_noise_prediction(eps_hat, eps, x0, x_t, abar),
                                    torch.Generator().manual_seed(0)).total.item())
    return sum(losses) / len(losses)


def outputs(unet, setup):
    _, x0, text, _ = setup
    with torch.no_grad():
        return unet(x0, torch.tensor([500]), encoder_hidden_states=text).sample


# --- what is trained, and what is not --------------------------------------------------------------

def test_the_loss_goes_down_on_a_fixed_clip(setup, trained):
    result = trained[0]
    before, after = fixed_eval_loss(setup, fresh(setup[0])), fixed_eval_loss(setup, result.adapter)
    print(f"\nfixed-batch loss {before:.4f} -> {after:.4f} after 30 steps")
    assert after < 0.9 * before
    assert len(result.history) == 30 and all(math.isfinite(h["total"]) for h in result.history)
    assert {"total", "base", "sma_global", "sma_local"} <= set(result.history[0])


def test_only_the_temporal_q_k_v_deltas_are_trained_and_every_one_of_them(trained):
    result, _, _, _, start = trained
    assert result.adapter.names == start.names
    assert all(torch.count_nonzero(delta) == delta.numel() for delta in result.adapter.deltas)


def test_the_base_model_is_bit_identical_afterwards(setup, trained):
    unet = setup[0]
    _, before, processors, _, _ = trained
    after = unet.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], before[k]) for k in before)
    assert all(unet.attn_processors[k] is v for k, v in processors.items())
    assert not any(p.requires_grad or p.grad is not None for p in unet.parameters())
    assert all("forward" not in vars(m) for m in unet.modules())  # no checkpoint wrapper left behind


def test_the_starting_adapter_is_not_changed(trained):
    assert all(torch.count_nonzero(delta) == 0 for delta in trained[4].deltas)


def test_another_view_of_the_base_sees_the_untouched_model(setup, trained):
    other_view = trained[3]
    assert torch.equal(outputs(other_view, setup), outputs(setup[0], setup))


def test_strength_zero_is_the_base_and_one_the_trained_model(setup, trained):
    adapter, unet = trained[0].adapter, setup[0]
    view = make_view(unet)
    attachment = adapter.attach(view, strength=0.0)
    assert torch.equal(outputs(view, setup), outputs(unet, setup))
    attachment.strength = 1.0
    assert not torch.allclose(outputs(view, setup), outputs(unet, setup), atol=1e-3)


def test_training_is_recorded_in_the_metadata(trained):
    metadata = trained[0].adapter.metadata
    assert ObjectiveSpec.from_json(metadata.pop("objective")) == SPEC
    assert metadata == {"backbone": "unet3d:tiny", "prompt": "a blob moves right", "steps": "30", "lr": "0.003",
                        "seed": "0", "frames": "8", "latent_height": "16", "latent_width": "16",
                        "precision": "float32", "pack_version": "0.1.0", "width": "32"}


# --- reproducibility --------------------------------------------------------------------------------

def same_tensors(a, b):
    ta, tb = a.to_tensors(), b.to_tensors()
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


@pytest.mark.parametrize("objective", [SPEC, ObjectiveSpec(base_loss="motion_director")])
def test_the_same_seed_gives_the_same_adapter_and_another_seed_another(setup, objective):
    first, again, other = (fit(setup, seed=s, objective=objective) for s in (7, 7, 8))
    assert same_tensors(first.adapter, again.adapter) and first.history == again.history
    assert not same_tensors(first.adapter, other.adapter)


# --- stopping ---------------------------------------------------------------------------------------

class Cancelled(Exception):
    pass


def test_a_callback_sees_every_step_and_can_cancel_with_nothing_left_behind(setup):
    unet = setup[0]
    before = {name: tensor.clone() for name, tensor in unet.state_dict().items()}
    start, calls = fresh(unet), []

    def callback(step, total, terms):
        calls.append((step, total, sorted(terms)))
        if step == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        fit(setup, start, steps=5, callback=callback)
    assert [c[:2] for c in calls] == [(1, 5), (2, 5)] and "total" in calls[0][2]
    assert all(torch.count_nonzero(delta) == 0 for delta in start.deltas)
    assert all(torch.equal(unet.state_dict()[k], v) for k, v in before.items())
    assert not any(p.grad is not None for p in unet.parameters())


def test_a_nan_loss_stops_with_a_clear_message(setup):
    def broken(unet, x_t, t, text):
        return setup[3].call(unet, x_t, t, text) * float("nan")

    with pytest.raises(InputError, match=r"diverged at step 1 of 3: the loss became nan; lower the learning rate "
                                         r"\(now 0.001, e.g. to 0.0001\)") as err:
        fit(setup, call=broken)
    assert err.value.input_name == "lr"


def test_an_infinite_gradient_stops_with_a_clear_message(setup):
    class Explode(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            return grad * float("inf")

    def exploding(unet, x_t, t, text):
        return Explode.apply(setup[3].call(unet, x_t, t, text))

    with pytest.raises(InputError, match="diverged at step 1 of 3: the gradient became"):
        fit(setup, call=exploding)


# --- ComfyUI's inference mode -----------------------------------------------------------------------

def test_training_under_inference_mode_with_inference_tensors_works_and_equals_plain_training(setup):
    unet, x0, text, denoiser = setup
    plain = fit(setup)
    with torch.inference_mode():
        inputs = (x0.clone(), text.clone())
        start = fresh(unet)
        assert inputs[0].is_inference() and start.deltas[0].is_inference()
        result = train(denoiser, start, *inputs, SPEC, steps=3, lr=1e-3, seed=0)
    assert same_tensors(result.adapter, plain.adapter)


def test_a_model_loaded_under_inference_mode_can_be_trained_and_is_left_as_it_was(setup):
    _, x0, text, denoiser = setup
    with torch.inference_mode():
        unet = tiny_unet3d().requires_grad_(False)
        before = {name: tensor.clone() for name, tensor in unet.state_dict().items()}
        result = train(dataclasses.replace(denoiser, module=unet), fresh(unet), x0, text, SPEC, steps=2, lr=1e-3)
    assert all(torch.count_nonzero(delta) > 0 for delta in result.adapter.deltas)
    assert all(p.is_inference() for p in unet.parameters())
    assert all(torch.equal(unet.state_dict()[k], v) for k, v in before.items())


# --- bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, name", [
    (dict(steps=0), "steps"), (dict(lr=-1.0), "lr"), (dict(lr=float("nan")), "lr"),
    (dict(options=TrainOptions(precision="fp8")), "precision"), (dict(options=TrainOptions(grad_clip=-1)), "grad_clip"),
    (dict(objective={"version": 1, "base_loss": "vmc", "vmc_frame_stride": 8}), "vmc_frame_stride"),
    ({"options": TrainOptions(loss_weighting=LossWeighting("snr"))}, "loss_weighting"),
    ({"options": TrainOptions(loss_weighting=LossWeighting("min_snr", -5))}, "min_snr_gamma"),
])
def test_invalid_settings_name_the_input(setup, change, name):
    with pytest.raises(InputError) as err:
        fit(setup, **change)
    assert err.value.input_name == name


def test_wrongly_shaped_tensors_name_the_input(setup):
    unet, x0, text, denoiser = setup
    with pytest.raises(InputError, match="latents: expected float video latents") as err:
        train(denoiser, fresh(unet), x0[0], text, SPEC, steps=1)
    with pytest.raises(InputError, match=r"prompt: expected prompt embeddings \(1, tokens, dim\); got shape \(7, 32\)"):
        train(denoiser, fresh(unet), x0, text[0], SPEC, steps=1)


def test_a_timestep_range_is_used_and_recorded(setup):
    """Training on high noise only (t >= 600 of 1000) gives another adapter than the uniform draw with
    the same seed, and the adapter records the distribution; the default records nothing."""
    import json

    high = TimestepDistribution(0.6, 1.0)
    ranged, uniform = fit(setup, options=TrainOptions(timesteps=high)), fit(setup)
    assert json.loads(ranged.adapter.metadata["timesteps"]) == {"low": 0.6, "high": 1.0, "shift": 1.0}
    assert "timesteps" not in uniform.adapter.metadata
    assert not same_tensors(ranged.adapter, uniform.adapter)


MSE = ObjectiveSpec(base_loss="mse", sma_global_weight=0.0, sma_local_weight=0.0)
ONLY_T = {50: TimestepDistribution(0.05, 0.0505), 500: TimestepDistribution(0.5, 0.5005)}
"""Ranges that hold one timestep of the 1000 (``round(0.05·999) = round(0.0505·999) = 50``)."""


@pytest.mark.parametrize("t, weighting", [(50, LossWeighting("min_snr")), (500, LossWeighting("x0")),
                                          (500, LossWeighting("v"))])
def test_the_loss_of_each_step_is_weighted_by_its_noise_level(setup, t, weighting):
    """The first step (same timestep, noise and starting adapter) has the unweighted loss times the
    weight of its timestep; later steps differ because training took another path."""
    sampling = setup[3].sampling
    abar = float(sampling.alphas_cumprod[t])
    snr = abar / (1 - abar)
    expected = {"min_snr": min(snr, 5.0) / snr, "x0": 1 / snr, "v": (snr + 1) / snr}[weighting.kind]
    assert expected != pytest.approx(1, abs=0.1)
    plain = fit(setup, objective=MSE, options=TrainOptions(timesteps=ONLY_T[t]))
    weighted = fit(setup, objective=MSE, options=TrainOptions(timesteps=ONLY_T[t], loss_weighting=weighting))
    assert weighted.history[0]["total"] == pytest.approx(expected * plain.history[0]["total"], rel=1e-5)
    assert not same_tensors(weighted.adapter, plain.adapter)


def test_loss_weighting_is_recorded_and_none_trains_exactly_as_the_default(setup):
    import json

    default, none = fit(setup), fit(setup, options=TrainOptions(loss_weighting=LossWeighting("none", 2.0)))
    assert same_tensors(default.adapter, none.adapter) and default.history == none.history
    assert "loss_weighting" not in none.adapter.metadata
    min_snr, x0 = (fit(setup, options=TrainOptions(loss_weighting=LossWeighting(kind, 3.0))) for kind in ("min_snr", "x0"))
    assert json.loads(min_snr.adapter.metadata["loss_weighting"]) == {"kind": "min_snr", "gamma": 3.0}
    assert json.loads(x0.adapter.metadata["loss_weighting"]) == {"kind": "x0"}


# --- several clips (MotionDirector's multi-video training) -----------------------------------------

def clip_texts(count):
    """One distinct prompt embedding per clip, so that a denoiser call shows which clip it was given."""
    return [torch.full((1, 7, TINY_TEXT_DIM), float(number)) for number in range(count)]


def recording_call(denoiser, seen):
    """The denoiser's call, noting the clip (the constant of its prompt embedding) of every call."""
    def call(module, x, t, text):
        seen.append(int(text[0, 0, 0]))
        return denoiser.call(module, x, t, text)
    return call


def test_each_step_trains_one_clip_and_every_round_takes_each_clip_once(setup):
    _, x0, _, denoiser = setup
    clips = [x0, x0.flip(-1), x0.flip(-2)]
    seen = []
    fit(setup, call=recording_call(denoiser, seen), steps=9, latents=clips, text=clip_texts(3))
    assert len(seen) == 9  # VMC + SMA: one denoiser call per step
    rounds = [sorted(seen[i:i + 3]) for i in range(0, 9, 3)]
    assert rounds == [[0, 1, 2]] * 3
    assert len({tuple(seen[i:i + 3]) for i in range(0, 9, 3)}) > 1, "the order should be drawn afresh each round"


def fit_clips(setup, clips, texts, **kwargs):
    unet, _, _, denoiser = setup
    return train(denoiser, fresh(unet), clips, texts, SPEC, steps=4, lr=1e-3, seed=0, **kwargs)


def test_one_clip_in_a_list_trains_exactly_as_one_clip(setup):
    _, x0, text, _ = setup
    assert same_tensors(fit_clips(setup, [x0], [text]).adapter, fit_clips(setup, x0, text).adapter)


def test_the_second_clip_is_trained_on(setup):
    _, x0, text, _ = setup
    both = fit_clips(setup, [x0, x0.flip(-1)], [text, text]).adapter
    assert not same_tensors(both, fit_clips(setup, x0, text).adapter)
    assert not same_tensors(both, fit_clips(setup, x0.flip(-1), text).adapter)


def test_every_clips_prompt_is_recorded(setup):
    _, x0, text, _ = setup
    result = fit_clips(setup, [x0, x0.flip(-1)], [text, text], prompt=["a blob moves right", "a blob moves left"])
    metadata = result.adapter.metadata
    assert metadata["prompt"] == "a blob moves right"
    assert json.loads(metadata["references"]) == [{"prompt": "a blob moves right"}, {"prompt": "a blob moves left"}]
    assert "references" not in fit_clips(setup, x0, text, prompt="one").adapter.metadata


def test_clips_of_another_size_or_a_prompt_count_that_does_not_match_are_refused(setup):
    _, x0, text, _ = setup
    with pytest.raises(InputError, match=r"latents: clip 2 has latents of 4 frames of 16×16 but the first has 8 "
                                         r"frames of 16×16; encode every reference clip at the same width"):
        fit_clips(setup, [x0, x0[:, :, :4]], [text, text])
    with pytest.raises(InputError, match="prompt: 3 prompts for 2 clips; give one prompt per clip"):
        fit_clips(setup, [x0, x0], [text] * 3)
    with pytest.raises(InputError, match="latents: no clip to train on"):
        fit_clips(setup, [], [text])


# --- previews while training ----------------------------------------------------------------------

def test_previews_come_every_n_steps_in_eval_mode_without_gradients_and_change_nothing(setup):
    seen = []

    def preview(module, step):
        seen.append((step, module.training, torch.is_grad_enabled()))

    with_previews = fit(setup, steps=7, preview_every=3, preview=preview)
    assert seen == [(3, False, False), (6, False, False)]
    plain = fit(setup, steps=7)
    assert same_tensors(with_previews.adapter, plain.adapter) and with_previews.history == plain.history


@pytest.mark.parametrize("every", [-1, 1.5, True])
def test_a_preview_interval_that_is_not_a_whole_number_of_steps_is_refused(setup, every):
    with pytest.raises(InputError, match="preview_every: .* is not valid; use a whole number of steps"):
        fit(setup, preview_every=every, preview=lambda module, step: None)
