"""DDIM inversion and sampling (the UNet3D family's :class:`DiscreteDiffusion`): exact inverses step by
step, counted model calls, guidance."""

import pytest
import torch

from motion_core.backbones import load_backbone
from motion_core.errors import InputError
from motion_core.sample import guided
from motion_core.testing import write_tiny_text_to_video_folder


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return load_backbone(write_tiny_text_to_video_folder(tmp_path_factory.mktemp("m") / "tiny"))


@pytest.fixture(scope="module")
def latents():
    return torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(0))


class Counting:
    """The backbone's noise prediction, counting model calls and the batch each call saw."""

    def __init__(self, backbone, freeze_input=None):
        self.backbone, self.freeze_input, self.batches = backbone, freeze_input, []

    def __call__(self, x, t, text):
        self.batches.append(x.shape[0])
        x_in = self.freeze_input.expand_as(x) if self.freeze_input is not None else x
        return self.backbone.call_denoiser(self.backbone.denoiser_module, x_in, t, text)


@torch.no_grad()
def test_inversion_is_the_exact_inverse_of_each_sampling_step(backbone, latents):
    """With the UNet's prediction taken at a fixed input, each inversion step undoes one sampling
    step exactly: the round trip is exact to float32 rounding, at any step count."""
    empty = backbone.encode_prompt([""])
    predict = Counting(backbone, freeze_input=latents)
    for steps in (5, 25):
        x_T = backbone.sampling.invert(guided(predict, empty), latents, steps)
        back = backbone.sampling.sample(guided(predict, empty), x_T, steps)
        assert (back - latents).abs().max() < 1e-4
        assert not torch.allclose(x_T, latents, atol=0.1)


@torch.no_grad()
def test_round_trip_error_with_the_real_unet_shrinks_with_the_step_size(backbone, latents):
    """DDIM inversion predicts the noise at x_{t-Δ} where sampling uses x_t, so its error is of order
    Δ · ∂eps/∂x, amplified by 1/sqrt(abar) at the noisiest steps. The random tiny UNet is far from
    smooth (∂eps/∂x ≈ 0.2), so the round trip is only approximate here (this test measured std
    error on unit latents of 0.51 at 10 steps and 0.26 at 40):
    the tolerance is that the error falls as the steps grow. The test above shows the inversion
    itself is exact; what remains is the method's approximation, which trained models keep small."""
    empty = backbone.encode_prompt([""])
    predict = Counting(backbone)
    errors = {}
    for steps in (10, 40):
        x_T = backbone.sampling.invert(guided(predict, empty), latents, steps)
        errors[steps] = (backbone.sampling.sample(guided(predict, empty), x_T, steps) - latents).std()
    assert errors[40] < 0.7 * errors[10]
    assert errors[40] < 0.35


@torch.no_grad()
def test_model_calls_match_the_step_count(backbone, latents):
    text, empty = backbone.encode_prompt(["a square"]), backbone.encode_prompt([""])
    predict = Counting(backbone)
    backbone.sampling.invert(guided(predict, empty), latents, 7)
    assert predict.batches == [1] * 7
    predict.batches.clear()
    backbone.sampling.sample(guided(predict, text, empty, scale=9.0), latents, 5)
    assert predict.batches == [2] * 5  # conditional and unconditional in one batch
    predict.batches.clear()
    backbone.sampling.sample(guided(predict, text, empty, scale=1.0), latents, 5)
    assert predict.batches == [1] * 5  # guidance 1 needs no unconditional half


@torch.no_grad()
def test_guidance_combines_the_two_predictions(backbone, latents):
    text, empty = backbone.encode_prompt(["a square"]), backbone.encode_prompt([""])

    def predict(x, t, c):
        return backbone.call_denoiser(backbone.denoiser_module, x, t, c)

    t = torch.tensor(500)
    eps_c, eps_u = predict(latents, t, text), predict(latents, t, empty)
    combined = guided(predict, text, empty, scale=7.5)(latents, t)
    assert torch.allclose(combined, eps_u + 7.5 * (eps_c - eps_u), atol=1e-5)


def test_progress_reports_and_cancels(backbone, latents):
    empty = backbone.encode_prompt([""])
    seen = []

    class Cancelled(Exception):
        pass

    def progress(done, total):
        seen.append((done, total))
        if done == 3:
            raise Cancelled

    with torch.no_grad(), pytest.raises(Cancelled):
        backbone.sampling.sample(guided(Counting(backbone), empty), latents, 10, progress)
    assert seen == [(1, 10), (2, 10), (3, 10)]


@torch.no_grad()
def test_a_latent_preview_sees_each_steps_clean_estimate_before_its_progress(backbone, latents):
    """``preview(x0_hat)`` after each step, then ``progress``: DDIM's x0 estimate of that step, which
    comes close to the sample by the last step (that step ends at abar_0, not 1, so not onto it)."""
    empty = backbone.encode_prompt([""])
    events = []
    for run in (backbone.sampling.sample, backbone.sampling.invert):
        events.clear()
        run(guided(Counting(backbone), empty), latents, 4, lambda done, total: events.append(done),
                     lambda x0: events.append(x0.clone()))
        assert [e if isinstance(e, int) else "x0" for e in events] == ["x0", 1, "x0", 2, "x0", 3, "x0", 4]
        assert all(e.shape == latents.shape for e in events if not isinstance(e, int))
    sampled = backbone.sampling.sample(guided(Counting(backbone), empty), latents, 4)
    estimates = []
    backbone.sampling.sample(guided(Counting(backbone), empty), latents, 4, preview=estimates.append)
    distances = [float((estimate - sampled).abs().max()) for estimate in estimates]
    assert distances[-1] < 0.1 * distances[0], distances


def test_bad_step_count_is_named(backbone, latents):
    with pytest.raises(InputError, match="^steps: 0 is not valid"):
        backbone.sampling.sample(lambda x, t: x, latents, 0)


@pytest.mark.parametrize("direction", ["sample", "invert"])
def test_a_step_count_past_the_schedule_is_named_with_the_largest_that_fits(backbone, latents, direction):
    """Found by the fuzz tier: Generate Video at its maximum, 1000 steps, raised an IndexError ("index
    1000 is out of bounds") on every model whose scheduler has steps_offset 1 (leading spacing puts the
    first timestep at 1000); Invert Video did the same at its last step."""
    calls = []
    with pytest.raises(InputError, match=r"^steps: 1000 steps run past the end of this model's noise schedule "
                                         r"\(1000 timesteps, shifted by its steps_offset 1\); use at most 999$"):
        getattr(backbone.sampling, direction)(lambda x, t: calls.append(t) or x, latents, 1000)
    assert not calls, "refused before any model call"


def test_guidance_doubles_per_sample_timesteps_with_the_batch():
    seen = []

    def predict(x, t, text):
        seen.append(t)
        return x * text.reshape(-1, 1) + torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1)

    cond, uncond = torch.full((1, 1), 2.0), torch.zeros(1, 1)
    x, t = torch.ones(3, 1), torch.tensor([10.0, 20.0, 30.0])  # a batch of three, each its own timestep
    out = guided(predict, cond, uncond, 3.0)(x, t)
    assert seen[0].tolist() == [10, 20, 30, 10, 20, 30]
    # eps_u = t, eps_c = 2 + t: eps_u + 3 (eps_c - eps_u) = t + 6
    torch.testing.assert_close(out, (t + 6).reshape(-1, 1))
    assert guided(predict, cond, uncond, 3.0)(x, torch.tensor(5.0)).shape == (3, 1)  # one timestep for all
