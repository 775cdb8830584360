"""Gradient checkpointing of a UNet3D view: the same loss and gradients, blocks really recomputed,
the shared model untouched."""

import torch

from motion_core.adapters import TemporalAttentionAdapter, make_view
from motion_core.checkpointing import checkpoint_blocks
from motion_core.objectives import ObjectiveSpec, StepTensors, build_objective
from motion_core.backbones import UNet3DBackbone
from motion_core.testing import TINY_TEXT_DIM, random_step, tiny_denoiser, tiny_unet3d
from motion_core.train import TrainOptions, train


def loss_and_gradients(unet, adapter, checkpointed, calls=None):
    view = make_view(unet, for_training=True)
    if checkpointed:
        assert checkpoint_blocks(view, UNet3DBackbone.checkpoint_blocks) == [
            "down_blocks.0", "down_blocks.1", "mid_block", "up_blocks.0", "up_blocks.1"]
    if calls is not None:
        view.down_blocks[0].resnets[0].register_forward_hook(lambda *args: calls.append(1))  # inside a block
    adapter.attach(view)
    gen = torch.Generator().manual_seed(5)
    step = random_step(seed=5, requires_grad=False)
    text = torch.randn(1, 7, TINY_TEXT_DIM, generator=gen)
    eps_hat = view(step.x_t, torch.tensor([600]), encoder_hidden_states=text).sample
    abar = step.signal_scale.square()
    loss = build_objective(ObjectiveSpec())(StepTensors.for_noise_prediction(eps_hat, step.target, step.x0, step.x_t,
                                                                             abar)).total
    grads = torch.autograd.grad(loss, list(adapter.deltas))
    return loss, grads


def test_checkpointing_gives_the_same_loss_and_gradients_and_recomputes_blocks():
    unet = tiny_unet3d().requires_grad_(False)
    gen = torch.Generator().manual_seed(1)
    zeros = TemporalAttentionAdapter.for_unet(unet)
    adapter = TemporalAttentionAdapter({n: 0.05 * torch.randn(d.shape, generator=gen) for n, d in
                                        zip(zeros.names, zeros.deltas)})
    plain_calls, checkpointed_calls = [], []
    plain = loss_and_gradients(unet, adapter, False, plain_calls)
    checkpointed = loss_and_gradients(unet, adapter, True, checkpointed_calls)
    torch.testing.assert_close(checkpointed[0], plain[0], rtol=0, atol=1e-5)
    for a, b in zip(checkpointed[1], plain[1]):
        assert b.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert (len(plain_calls), len(checkpointed_calls)) == (1, 2)  # forward, then the recomputation in backward
    assert all("forward" not in vars(m) for m in unet.modules())


def test_checkpointed_view_without_gradients_runs_each_block_once():
    unet = tiny_unet3d().requires_grad_(False)
    view = make_view(unet)
    checkpoint_blocks(view, UNet3DBackbone.checkpoint_blocks)
    calls = []
    view.mid_block.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        out = view(torch.randn(1, 4, 4, 8, 8), torch.tensor([3]), encoder_hidden_states=torch.randn(1, 3, TINY_TEXT_DIM))
        ref = unet(torch.randn(1, 4, 4, 8, 8), torch.tensor([3]), encoder_hidden_states=torch.randn(1, 3, TINY_TEXT_DIM))
    assert calls == [1] and out.sample.shape == ref.sample.shape


def test_training_with_checkpointing_gives_the_same_adapter():
    denoiser = tiny_denoiser()
    unet = denoiser.module
    x0 = torch.randn(1, 4, 8, 16, 16, generator=torch.Generator().manual_seed(2))
    text = torch.randn(1, 7, TINY_TEXT_DIM)
    results = [train(denoiser, TemporalAttentionAdapter.for_unet(unet), x0, text, ObjectiveSpec(), steps=3, lr=1e-3,
                     options=TrainOptions(gradient_checkpointing=flag))
               for flag in (False, True)]
    for a, b in zip(results[0].history, results[1].history):
        assert abs(a["total"] - b["total"]) < 1e-5
    for a, b in zip(results[0].adapter.deltas, results[1].adapter.deltas):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
