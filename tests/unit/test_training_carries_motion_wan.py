"""Training carries a clip's motion on the toy Wan model, for every parameterisation (issue 15's
memorisation check, the flow-matching DiT family).

Each kind is trained on one held-out 9-frame clip with the clip's own caption at high noise only
(t ≥ 0.6, where the path is decided), then sampled from *fresh* noise: the generated object must
follow the clip's path, and the same noise without the adapter must not. ``benchmarks/toy_memorisation.py
--model models/toy-wan`` measures the same over 8 (clip, seed) pairs with more steps (BENCHMARKS.md:
motion embeddings 0.98 in 300 steps, LoRA 0.84 in 600, q/k/v deltas 0.93 in 900); here each kind
gets few steps at a higher lr than its published one (the toy model is far smaller than the models those
rates were chosen for): about two minutes for the three on one core.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from motion_core.adapters import AdapterUse
from motion_core.backbones import load_backbone
from motion_core.noise import fresh_noise
from motion_core.pipeline import VideoLatents, decode, encode_reference, generate, train_adapter
from motion_core.sampling import TimestepDistribution
from motion_core.toy import examples, tracker, world
from motion_core.toy.methods import METHODS
from motion_core.train import TrainOptions

TOY_WAN = Path(__file__).resolve().parents[2] / "models" / "toy-wan"
CLIP = "red_square_nine"
NOISE_SEEDS = (0, 1, 2, 3)
SAMPLING_STEPS = 10
HIGH_NOISE = TimestepDistribution(0.6, 1.0)
TRAINING = {"motion-inversion": (150, 2e-2), "motiondirector": (300, 5e-3), "vmc": (600, 3e-3)}
"""Method -> (steps, lr) here. Measured with one thread, mean fidelity over the four noises: 0.92, 0.94 and
0.94 trained, 0.04 untrained (the first toy Wan model, which drew round blobs: 0.80, 0.73, 0.73 and 0.20)."""
MARGIN = 0.4
"""Leaves room for another CPU's rounding without letting an adapter that does nothing pass."""


@pytest.fixture(scope="module")
def backbone():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the figures were measured with one thread
    yield load_backbone(TOY_WAN)
    torch.set_num_threads(threads)


def fidelities(backbone, clip: world.Clip, noise: VideoLatents, adapters=()) -> np.ndarray:
    """Motion fidelity to ``clip`` of each clip sampled from ``noise`` ``(b, c, f, h, w)`` with its caption."""
    frames = decode(backbone, generate(backbone, noise, clip.caption, steps=SAMPLING_STEPS, cfg=7.5, adapters=adapters))
    clips = frames.reshape(-1, clip.frames.shape[0], *frames.shape[1:]).numpy()
    reference = tracker.track(clip.frames)
    return np.array([np.nan_to_num(tracker.motion_fidelity(reference, tracker.track(c))) for c in clips])


@pytest.mark.parametrize("name", list(TRAINING))
def test_every_kind_trained_at_high_noise_carries_the_clip_path_from_fresh_noise(backbone, name):
    method, (steps, lr) = METHODS[name], TRAINING[name]
    clip = examples.example_clip(CLIP)
    reference, _ = encode_reference(backbone, world.to_image_tensor(clip))
    adapter = train_adapter(backbone, reference, clip.caption, method.spec(), method.kind, steps=steps, lr=lr, seed=0,
                            options=TrainOptions(timesteps=HIGH_NOISE)).adapter
    x_T = torch.cat([fresh_noise(reference.samples, seed) for seed in NOISE_SEEDS])
    noise = VideoLatents(x_T, backbone.fingerprint, noise=True)

    untrained = fidelities(backbone, clip, noise)
    trained = fidelities(backbone, clip, noise, [AdapterUse(adapter)])  # as users generate (debias auto)
    assert trained.mean() >= untrained.mean() + MARGIN, (name, trained, untrained)
