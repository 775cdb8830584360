"""Edit-Your-Motion's model and training (docs/METHODS.md §7): the pose ControlNet's residuals reach the
UNet exactly where diffusers adds them; Motion Attention starts as the identity on them and mixes
frames once trained; two training stages move the parts the paper names and nothing else; the
edit re-renders the source under other poses. On a tiny random AnimateDiff model and ControlNet."""

import pytest
import torch

from motion_core.adapters import make_view
from motion_core.backbones import load_backbone
from motion_core.edit import spatial_self_attentions
from motion_core.edit.adapter import EditAdapter
from motion_core.edit.motion_attention import MotionAttention, PoseCondition, attach_pose_control
from motion_core.edit.pipeline import EditTraining, edit_video, subject_frames, train_edit
from motion_core.errors import InputError
from motion_core.pipeline import VideoLatents
from motion_core.testing import TINY_TEXT_DIM, tiny_unet2d, tiny_unet_motion, write_tiny_animatediff_folder

FRAMES, LATENT = 4, 8


def tiny_controlnet(seed=0):
    """A pose ControlNet for :func:`tiny_unet2d` (2x conditioning downsampling, the tiny VAE's), its zero
    convolutions given values so that the residuals are not zero and depend on the poses."""
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(tiny_unet2d(seed), conditioning_embedding_out_channels=(4, 8)).eval()
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        for module in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                       controlnet.controlnet_cond_embedding.conv_out]:
            module.weight.normal_(0, 0.2)
    return controlnet.requires_grad_(False)


def poses(seed, frames=FRAMES, side=2 * LATENT):
    return torch.rand(frames, side, side, 3, generator=torch.Generator().manual_seed(seed))


def inputs(seed=0, batch=1):
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randn(batch, 4, FRAMES, LATENT, LATENT, generator=generator)
    text = torch.randn(batch * FRAMES, 5, TINY_TEXT_DIM, generator=generator)
    return sample, torch.tensor(400), text


@pytest.fixture(scope="module")
def unet():
    return tiny_unet_motion().requires_grad_(False)


@pytest.mark.parametrize("batch", [1, 2])
def test_hooked_residuals_equal_diffusers_own_controlnet_arguments(unet, batch):
    controlnet, images = tiny_controlnet(), poses(0)
    sample, t, text = inputs(batch=batch)
    per_frame = sample.transpose(1, 2).flatten(0, 1)
    with torch.no_grad():
        down, mid = controlnet(per_frame, t.repeat(batch * FRAMES), text, images.movedim(-1, 1).repeat(batch, 1, 1, 1),
                               return_dict=False)
        expected = unet(sample, t, encoder_hidden_states=text, down_block_additional_residuals=down,
                        mid_block_additional_residual=mid).sample
        view = make_view(unet)
        handles = attach_pose_control(view, PoseCondition.from_image(controlnet, images))
        got = view(sample, t, encoder_hidden_states=text).sample
        plain = unet(sample, t, encoder_hidden_states=text).sample
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert (got - plain).abs().max() > 1e-2  # the poses change the output
    for handle in handles:
        handle.remove()
    with torch.no_grad():
        torch.testing.assert_close(view(sample, t, encoder_hidden_states=text).sample, plain, rtol=0, atol=0)


def test_untrained_motion_attention_passes_the_residuals_through(unet):
    controlnet, images = tiny_controlnet(), poses(0)
    sample, t, text = inputs()
    outputs = []
    for motion_attention in (None, MotionAttention.for_controlnet(controlnet, heads=2)):
        view = make_view(unet)
        attach_pose_control(view, PoseCondition.from_image(controlnet, images), motion_attention)
        with torch.no_grad():
            outputs.append(view(sample, t, encoder_hidden_states=text).sample)
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=1e-6)


def test_motion_attention_mixes_frames_and_reads_the_unet_features():
    """Once its output projections are not zero, changing frame 0's residual changes every frame's
    output (temporal attention), and changing the UNet's features changes the output (cross-attention)."""
    block = MotionAttention([8], heads=2).blocks[0]
    torch.manual_seed(0)
    for attention in block.attentions():
        torch.nn.init.normal_(attention.to_out[0].weight, std=0.3)
    control, features = torch.randn(2 * FRAMES, 8, 3, 3), torch.randn(2 * FRAMES, 8, 3, 3)
    with torch.no_grad():
        before = block(control, features, FRAMES)
        changed = control.clone()
        changed[0] += torch.randn(8, 3, 3)  # video 0, frame 0 (not a constant: layer norms remove those)
        after = block(changed, features, FRAMES)
        other_features = block(control, features + torch.randn(features.shape), FRAMES)
    moved = (after - before).abs().flatten(1).amax(1)
    assert (moved[:FRAMES] > 1e-4).all()  # every frame of video 0
    assert (moved[FRAMES:] == 0).all()  # never the other video
    assert (other_features - before).abs().max() > 1e-3


def test_a_controlnet_of_another_unet_is_refused_by_name(unet):
    from diffusers import ControlNetModel, UNet2DConditionModel

    other = UNet2DConditionModel(block_out_channels=(16, 32, 32), layers_per_block=1, cross_attention_dim=TINY_TEXT_DIM,
                                 attention_head_dim=2, norm_num_groups=4,
                                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"))
    controlnet = ControlNetModel.from_unet(other, conditioning_embedding_out_channels=(4, 8))
    with pytest.raises(InputError, match="^controlnet: .*skip"):
        attach_pose_control(make_view(unet), PoseCondition.from_image(controlnet, poses(0)))


# --- the adapter and its training -----------------------------------------------------------------

@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return load_backbone(write_tiny_animatediff_folder(tmp_path_factory.mktemp("ad") / "tiny-animatediff"))


@pytest.fixture(scope="module")
def clip(backbone):
    generator = torch.Generator().manual_seed(3)
    frames = torch.rand(FRAMES, 2 * LATENT, 2 * LATENT, 3, generator=generator)
    return frames, VideoLatents(backbone.encode_video(frames), backbone.fingerprint)


def snapshot(module):
    return {name: tensor.clone() for name, tensor in module.state_dict().items()}


def lora_parts_moved(before: EditAdapter, after: EditAdapter) -> dict[str, bool]:
    moved = {"temporal": False, "spatial": False}
    for i, name in enumerate(after.lora.names):
        if not torch.equal(before.lora.lora_B[i], after.lora.lora_B[i].to(before.lora.lora_B[i])):
            moved[after.lora.part_of(i)] = True
    return moved


SHORT = dict(lr=1e-2)


def trained(backbone, clip, subject_steps, full_steps, callback=None, **options):
    frames, latents = clip
    subject = VideoLatents(backbone.encode_video(subject_frames(frames, torch.ones(2 * LATENT, 2 * LATENT) * 0.5)),
                           backbone.fingerprint)
    return train_edit(backbone, CONTROLNET, latents, poses(1), "a clip", subject,
                      EditTraining(subject_steps=subject_steps, full_steps=full_steps, lr=1e-2),
                      {"heads": 2, **options}, callback)


CONTROLNET = tiny_controlnet()


def attention_moved(before: EditAdapter, after: EditAdapter) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before.motion_attention.parameters(),
                                                     after.motion_attention.parameters()))


@pytest.mark.parametrize("steps, moved", [
    ((2, 0), {"temporal": True, "spatial": False}),  # stage 1: temporal attention (+ Motion Attention)
    ((2, 2), {"temporal": True, "spatial": True}),  # then stage 2: RCA's projections (+ Motion Attention)
    ((0, 2), {"temporal": True, "spatial": True}),  # one stage: everything at once
])
def test_each_stage_moves_the_parts_the_paper_names_and_never_the_base_model(backbone, clip, steps, moved):
    base = snapshot(backbone.unet)
    result = trained(backbone, clip, *steps)
    fresh = EditAdapter.for_unet(backbone.unet, backbone.fingerprint, controlnet=CONTROLNET, heads=2)
    assert lora_parts_moved(fresh, result.adapter) == moved
    assert attention_moved(fresh, result.adapter)
    assert len(result.history) == sum(steps)
    assert all(torch.equal(tensor, base[name]) for name, tensor in backbone.unet.state_dict().items())


def test_stage_two_leaves_the_temporal_part_as_stage_one_left_it(backbone, clip):
    one = trained(backbone, clip, 2, 0).adapter
    both = trained(backbone, clip, 2, 2).adapter
    for i, name in enumerate(one.lora.names):
        if one.lora.part_of(i) == "temporal":
            assert torch.equal(one.lora.lora_B[i], both.lora.lora_B[i]), name


def test_cancel_between_the_stages_leaves_nothing_behind(backbone, clip):
    base = snapshot(backbone.unet)
    processors = {name: type(attention.processor) for name, attention in spatial_self_attentions(backbone.unet)}

    def cancel(step, total, terms):
        if step == 3:  # the first step of stage 2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trained(backbone, clip, 2, 2, cancel)
    assert all(torch.equal(tensor, base[name]) for name, tensor in backbone.unet.state_dict().items())
    assert not backbone.unet._forward_pre_hooks and not backbone.unet.mid_block._forward_hooks
    assert not any(block._forward_pre_hooks for block in backbone.unet.up_blocks)
    assert {name: type(a.processor) for name, a in spatial_self_attentions(backbone.unet)} == processors


def test_the_adapter_round_trips_through_its_tensors(backbone):
    adapter = EditAdapter.for_unet(backbone.unet, backbone.fingerprint, seed=4, controlnet=CONTROLNET, heads=2)
    again = EditAdapter.from_tensors(adapter.to_tensors(), dict(adapter.metadata))
    assert adapter.to_tensors().keys() == again.to_tensors().keys()
    assert all(torch.equal(a, again.to_tensors()[name]) for name, a in adapter.to_tensors().items())


def test_ablations_leave_out_their_part(backbone, clip):
    without = EditAdapter.for_unet(backbone.unet, backbone.fingerprint, rca=False, motion_attention=False)
    assert without.motion_attention is None
    assert not any(name.startswith("motion_attention.") for name in without.to_tensors())
    view = make_view(backbone.unet)
    without.conditioned(PoseCondition.from_image(CONTROLNET, poses(0))).attach(view)
    assert all(type(a.processor).__name__ != "RecurrentCausalAttention" for _, a in spatial_self_attentions(view))
    with pytest.raises(InputError, match="^controlnet:"):
        EditAdapter.for_unet(backbone.unet, backbone.fingerprint)


def test_the_edit_follows_the_target_poses(backbone, clip):
    frames, latents = clip
    adapter = trained(backbone, clip, 1, 1).adapter
    edits = [edit_video(backbone, adapter, CONTROLNET, latents, poses(1), target, "a clip", steps=4).samples
             for target in (poses(1), poses(2), poses(2))]
    assert edits[0].shape == latents.samples.shape
    assert (edits[0] - edits[1]).abs().max() > 1e-3  # other poses, another clip
    torch.testing.assert_close(edits[1], edits[2], rtol=0, atol=0)  # deterministic


def test_poses_of_another_size_are_refused_by_name(backbone, clip):
    frames, latents = clip
    with pytest.raises(InputError, match="^source_pose: has 4 pose images of 8x8"):
        train_edit(backbone, CONTROLNET, latents, poses(1, side=8), "a clip")
    adapter = EditAdapter.for_unet(backbone.unet, backbone.fingerprint, controlnet=CONTROLNET, heads=2)
    with pytest.raises(InputError, match="^target_pose: has 3 pose images"):
        edit_video(backbone, adapter, CONTROLNET, latents, poses(1), poses(2, frames=3), "a clip", steps=2)


def test_the_parts_at_sd15_size():
    """README figures: SD1.5 + a v2 motion module and SD1.5's pose ControlNet, on the ``meta`` device."""
    import json

    from diffusers import ControlNetModel, MotionAdapter, UNet2DConditionModel, UNetMotionModel

    from motion_core.adapters.lora import ATTENTION_LINEARS, lora_targets
    from motion_core.backbones.animatediff import SD15_CONFIGS

    with torch.device("meta"):
        image = UNet2DConditionModel.from_config(json.loads((SD15_CONFIGS / "unet" / "config.json").read_text()))
        unet = UNetMotionModel.from_unet2d(image, MotionAdapter(use_motion_mid_block=True), load_weights=False)
        controlnet = ControlNetModel.from_config(json.loads((SD15_CONFIGS / "controlnet" / "config.json").read_text()))
        motion_attention = MotionAttention.for_controlnet(controlnet)
    assert motion_attention.channels == [320] * 4 + [640] * 3 + [1280] * 6  # 12 skips + mid
    assert round(sum(p.numel() for p in motion_attention.parameters()) / 1e6, 1) == 137.8
    temporal = [linear for _, linear in lora_targets(unet, "temporal", feed_forward_too=False)]
    spatial = [attention.get_submodule(name) for _, attention in spatial_self_attentions(unet)
               for name in ATTENTION_LINEARS]
    rank = EditAdapter.OPTIONS["rank"]
    assert (len(temporal), len(spatial)) == (168, 64)
    assert [round(sum(rank * (x.in_features + x.out_features) for x in group) / 1e6, 2)
            for group in (temporal, spatial)] == [4.83, 1.6]
