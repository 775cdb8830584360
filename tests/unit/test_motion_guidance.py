"""FlowMotion's training-free motion guidance (docs/METHODS.md §11): its loss terms against plain
computations, the velocity regulariser against the released formula, the guided latent moving toward
lower loss, and ``generate(..., guidance=...)`` on the tiny UNet3D and the tiny Wan: unguided when no
step is guided, the shared model untouched, progress and cancel, adapters on top, bad settings named."""

from functools import partial

import pytest
import torch

from motion_core import pipeline
from motion_core.backbones import ModelOptions, load_backbone
from motion_core.errors import InputError
from motion_core.motion_guidance import (
    LatentGuidance,
    MotionGuidance,
    frame_differences,
    guidance_loss,
    guided_step_count,
    rectified,
    sideways,
)
from motion_core.sample import guided
from motion_core.sampling import DiscreteDiffusion, FlowMatching
from motion_core.testing import write_tiny_text_to_video_folder, write_tiny_wan_folder

SHAPE = (1, 4, 4, 8, 8)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --- the loss, the regulariser, the step count ---------------------------------------------------------

def test_frame_differences_are_the_absolute_differences_of_consecutive_frames_then_of_every_ordered_pair():
    x = randn(2, 3, 4, 2, 5)
    expected = [(x[:, :, k + 1] - x[:, :, k]).abs() for k in range(3)]
    expected += [(x[:, :, i] - x[:, :, j]).abs() for i in range(4) for j in range(4) if i != j]
    differences = frame_differences(x)
    assert differences.shape == (2, 3, 4 * 4 - 1, 2, 5)
    assert torch.equal(differences, torch.stack(expected, dim=2))


def test_the_loss_is_alpha_times_the_estimates_mse_plus_beta_times_the_differences_mse():
    x0_hat, reference = randn(2, 4, 3, 4, 4, seed=1), randn(1, 4, 3, 4, 4, seed=2)
    loss, terms = guidance_loss(x0_hat, reference, latent_weight=20.0, difference_weight=5.0)
    latent = ((x0_hat - reference) ** 2).mean()
    pairs = [(k + 1, k) for k in range(2)] + [(i, j) for i in range(3) for j in range(3) if i != j]
    difference = torch.stack([(((x0_hat[:, :, i] - x0_hat[:, :, j]).abs()
                                - (reference[:, :, i] - reference[:, :, j]).abs()) ** 2).mean()
                              for i, j in pairs]).mean()  # every pair term has the same size
    torch.testing.assert_close(loss, 20 * latent + 5 * difference)
    assert terms == pytest.approx({"loss": float(loss), "latent": float(latent), "difference": float(difference)})
    assert guidance_loss(reference.expand(2, -1, -1, -1, -1), reference, 20.0, 5.0)[0] == 0


def test_the_guided_share_of_steps_is_rounded_up():
    assert [guided_step_count(0.2, steps) for steps in (50, 25, 2, 1)] == [10, 5, 1, 1]
    assert guided_step_count(0.0, 50) == 0 and guided_step_count(1.0, 7) == 7


def test_every_familys_latent_in_rectified_coordinates_lies_on_the_straight_path_from_x0_to_the_noise():
    x0, eps = randn(2, 4, 3, 4, 4, seed=3), randn(2, 4, 3, 4, 4, seed=4)
    for sampling, t in ((DiscreteDiffusion({"beta_schedule": "scaled_linear", "beta_start": 0.00085,
                                            "beta_end": 0.012}), torch.tensor([981, 400])),
                        (FlowMatching(shift=3.0), torch.tensor([950.0, 400.0]))):
        point, sigma = rectified(sampling, sampling.noised(x0, eps, t), t)
        torch.testing.assert_close(point, (1 - sigma) * x0 + sigma * eps)
    flow_point, flow_sigma = rectified(FlowMatching(), x0, torch.tensor([250.0, 250.0]))
    assert torch.equal(flow_point, x0) and torch.equal(flow_sigma.flatten(), torch.tensor([0.25, 0.25]))


def test_the_sideways_part_is_perpendicular_to_the_direction_at_each_position():
    velocity, direction = randn(2, 4, 3, 4, 4, seed=5), randn(2, 4, 3, 4, 4, seed=6)
    across = sideways(velocity, direction)
    assert (across * direction).sum(1).abs().max() < 1e-5
    along = velocity - across
    torch.testing.assert_close(along / direction, (along / direction)[:, :1].expand_as(along))  # parallel


def test_on_a_flow_model_the_regulariser_is_the_released_formula():
    """Released code: ``x0 = x − σ·(proj + 0.1·perp)`` of the predicted velocity against the mean velocity
    ``(x − x_T) / (σ − σ_0)`` since the first step."""
    flow = FlowMatching(shift=3.0)
    x_T, x, v_hat = randn(*SHAPE, seed=7), randn(*SHAPE, seed=8), randn(*SHAPE, seed=9)
    t0, t = torch.tensor([1000.0]), torch.tensor([850.0])
    reference = pipeline.VideoLatents(randn(*SHAPE), "any")
    guide = LatentGuidance(MotionGuidance(reference), flow, None, None, steps=50)
    guide.start = rectified(flow, x_T, t0)
    mean = guide.mean_velocity(x, t)
    torch.testing.assert_close(mean, (x - x_T) / (0.85 - 1.0))
    x0_hat = flow.x0_from(v_hat, x, t)
    dot = (v_hat * mean).sum(1, keepdim=True)
    proj = dot / ((mean * mean).sum(1, keepdim=True) + 1e-8) * mean
    released = x - 0.85 * (proj + 0.1 * (v_hat - proj))
    torch.testing.assert_close(x0_hat + guide.regularisation(x, x0_hat, t, mean), released, atol=1e-5, rtol=1e-5)


def test_a_sampler_calls_the_guide_before_each_step_and_continues_from_its_latent():
    flow, seen = FlowMatching(shift=2.0), []
    x_T = randn(*SHAPE)

    def guide(x, t, index):
        seen.append((index, float(t[0])))
        return torch.zeros_like(x) if index == 1 else x

    velocities = []
    flow.sample(lambda x, t: velocities.append(x.clone()) or torch.zeros_like(x), x_T, 3, guide=guide)
    assert [index for index, _ in seen] == [0, 1, 2]
    assert [t for _, t in seen] == pytest.approx((flow.grid(3)[:-1] * 1000).tolist())
    assert torch.equal(velocities[0], x_T) and torch.equal(velocities[1], torch.zeros(SHAPE))


# --- generate with guidance on the tiny models -----------------------------------------------------------

@pytest.fixture(scope="module")
def unet3d(tmp_path_factory):
    return load_backbone(write_tiny_text_to_video_folder(tmp_path_factory.mktemp("t2v") / "tiny"))


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    return load_backbone(write_tiny_wan_folder(tmp_path_factory.mktemp("wan") / "tiny-wan"),
                         ModelOptions(dtype="fp32", device="cpu"))


def latents_of(backbone, frames=4, seed=0, noise=False):
    shape = (1, backbone.denoiser_module.config.in_channels, frames, 4, 4)
    return pipeline.VideoLatents(randn(*shape, seed=seed), backbone.fingerprint, noise=noise)


def weights(backbone):
    return {name: tensor.clone() for name, tensor in backbone.denoiser_module.state_dict().items()}


@pytest.mark.parametrize("family", ["unet3d", "wan"])
def test_guidance_moves_the_latent_toward_lower_loss_and_leaves_the_model_as_it_was(family, request):
    backbone = request.getfixturevalue(family)
    reference, noise = latents_of(backbone), latents_of(backbone, seed=1, noise=True)
    before = weights(backbone)
    grads = [p.requires_grad for p in backbone.denoiser_module.parameters()]
    predict = partial(backbone.call_denoiser, backbone.denoiser_module)
    denoise = guided(predict, backbone.encode_prompt(["a red square"]))
    history = []
    settings = MotionGuidance(reference, fraction=0.5, adam_steps=6, lr=0.05).validate()
    guide = LatentGuidance(settings, backbone.sampling, denoise, guided(predict, backbone.encode_prompt([""])),
                           steps=4, history=history)
    with torch.no_grad():
        backbone.sampling.sample(denoise, noise.samples.clone(), 4, guide=guide)
    assert [entry["step"] for entry in history] == [0] * 6 + [1] * 6
    first_step = [entry["loss"] for entry in history[:6]]
    assert first_step[-1] < first_step[0], first_step
    after = weights(backbone)
    assert all(torch.equal(before[name], tensor) for name, tensor in after.items())
    assert all(p.grad is None for p in backbone.denoiser_module.parameters())
    assert [p.requires_grad for p in backbone.denoiser_module.parameters()] == grads


@pytest.mark.parametrize("family", ["unet3d", "wan"])
def test_generate_with_no_guided_step_is_plain_generate_bit_for_bit_and_with_some_it_differs(family, request):
    backbone = request.getfixturevalue(family)
    reference, noise = latents_of(backbone), latents_of(backbone, seed=1, noise=True)
    before = weights(backbone)
    plain = pipeline.generate(backbone, noise, "a red square", steps=4, cfg=3.0).samples
    unguided = pipeline.generate(backbone, noise, "a red square", steps=4, cfg=3.0,
                                 guidance=MotionGuidance(reference, fraction=0.0)).samples
    assert torch.equal(plain, unguided)
    guided_once = pipeline.generate(backbone, noise, "a red square", steps=4, cfg=3.0,
                                    guidance=MotionGuidance(reference, fraction=0.25, lr=0.05)).samples
    assert not torch.allclose(guided_once, plain, atol=1e-4)
    again = pipeline.generate(backbone, noise, "a red square", steps=4, cfg=3.0,
                              guidance=MotionGuidance(reference, fraction=0.25, lr=0.05)).samples
    assert torch.equal(guided_once, again), "the fresh noise of the reference comes from the seed"
    other_seed = pipeline.generate(backbone, noise, "a red square", steps=4, cfg=3.0,
                                   guidance=MotionGuidance(reference, fraction=0.25, lr=0.05, seed=1)).samples
    assert not torch.equal(other_seed, guided_once)
    assert all(torch.equal(before[name], tensor) for name, tensor in weights(backbone).items())


def test_the_clean_reference_variant_compares_with_the_clean_latents_and_needs_no_reference_call(unet3d):
    reference = latents_of(unet3d)
    calls = []
    guide = LatentGuidance(MotionGuidance(reference, estimate="clean"), unet3d.sampling, None,
                           lambda x, t: calls.append(x), steps=5)
    assert torch.equal(guide.reference_estimate(torch.zeros(SHAPE), torch.tensor(981)), reference.samples)
    assert not calls


def test_progress_counts_sampler_steps_and_a_cancel_inside_a_guided_step_stops_generation(unet3d):
    reference, noise = latents_of(unet3d), latents_of(unet3d, seed=1, noise=True)
    seen = []
    settings = MotionGuidance(reference, fraction=0.5)
    pipeline.generate(unet3d, noise, "a red square", steps=4, cfg=3.0, guidance=settings,
                      progress=lambda done, total: seen.append((done, total)))
    # before each Adam step of the two guided steps: the steps done so far; after each step: the count
    assert seen == [(0, 4)] * 3 + [(1, 4)] + [(1, 4)] * 3 + [(2, 4), (3, 4), (4, 4)]

    class Cancelled(Exception):
        pass

    def cancel_in_the_second_guided_step(done, total):
        if done == 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        pipeline.generate(unet3d, noise, "a red square", steps=4, cfg=3.0, guidance=settings,
                          progress=cancel_in_the_second_guided_step)


def test_guidance_stacks_with_an_adapter(unet3d):
    reference, noise = latents_of(unet3d), latents_of(unet3d, seed=1, noise=True)
    adapter = pipeline.train_adapter(unet3d, reference, "a square moving", steps=2, lr=1e-2).adapter
    settings = MotionGuidance(reference, fraction=0.5, lr=0.05)
    both = pipeline.generate(unet3d, noise, "a red square", steps=4, cfg=3.0, adapters=[(adapter, 1.0)],
                             guidance=settings).samples
    adapter_only = pipeline.generate(unet3d, noise, "a red square", steps=4, cfg=3.0, adapters=[(adapter, 1.0)]).samples
    guidance_only = pipeline.generate(unet3d, noise, "a red square", steps=4, cfg=3.0, guidance=settings).samples
    assert not torch.allclose(both, adapter_only, atol=1e-4) and not torch.allclose(both, guidance_only, atol=1e-4)


@pytest.mark.parametrize("changes, input_name", [
    ({"fraction": 1.5}, "guided_fraction"), ({"fraction": float("nan")}, "guided_fraction"),
    ({"adam_steps": 0}, "adam_steps"), ({"adam_steps": 2.0}, "adam_steps"), ({"lr": 0.0}, "lr"),
    ({"latent_weight": -1.0}, "latent_weight"), ({"difference_weight": float("inf")}, "difference_weight"),
    ({"latent_weight": 0.0, "difference_weight": 0.0}, "difference_weight"),
    ({"regulariser": 1.2}, "velocity_regulariser"), ({"seed": -1}, "seed"),
    ({"estimate": "inverted"}, "reference_estimate"),
])
def test_bad_settings_are_refused_by_the_inputs_name(changes, input_name):
    reference = pipeline.VideoLatents(randn(*SHAPE), "any")
    with pytest.raises(InputError) as error:
        MotionGuidance(reference, **changes).validate()
    assert error.value.input_name == input_name


def test_a_reference_that_does_not_fit_the_noise_or_the_model_is_refused(unet3d):
    noise = latents_of(unet3d, seed=1, noise=True)
    with pytest.raises(InputError, match="^latents: expected the clean reference latents"):
        MotionGuidance(noise).validate()
    with pytest.raises(InputError, match=r"^motion_guidance: the reference latents are \(4, 2, 4, 4\) .* but the "
                                         r"noise is \(4, 4, 4, 4\); encode the reference at the size"):
        pipeline.generate(unet3d, noise, "a red square", steps=2, guidance=MotionGuidance(latents_of(unet3d, 2)))
    other = pipeline.VideoLatents(randn(*SHAPE), "another model")
    with pytest.raises(InputError, match="^motion_guidance: these latents were made by another model"):
        pipeline.generate(unet3d, noise, "a red square", steps=2, guidance=MotionGuidance(other))
    with pytest.raises(InputError, match="^motion_guidance: expected the output of Motion Guidance"):
        pipeline.generate(unet3d, noise, "a red square", steps=2, guidance="guidance")
