"""What Train Motion Adapter shows while it trains: a few decoded frames sampled with the adapter as
trained so far (``pipeline.TrainingPreview``), from the same fresh noise each time."""

import pytest
import torch

from motion_core.backbones import load_backbone
from motion_core.pipeline import TrainingPreview, encode_reference, train_adapter
from motion_core.testing import write_tiny_text_to_video_folder

FRAMES, SIZE = 6, 32


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return load_backbone(write_tiny_text_to_video_folder(tmp_path_factory.mktemp("m") / "tiny"))


@pytest.fixture(scope="module")
def reference(backbone):
    frames = torch.rand(FRAMES, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(0))
    return encode_reference(backbone, frames)[0]


def test_previews_are_frames_spread_over_the_clip_sampled_with_the_adapter_so_far(backbone, reference):
    shown = []
    preview = TrainingPreview(every=2, show=lambda frames, step: shown.append((step, frames)), steps=2)
    train_adapter(backbone, reference, "a square moving", steps=4, lr=1e-2, preview=preview)
    assert [step for step, _ in shown] == [2, 4]
    for _, frames in shown:
        assert frames.shape == (4, SIZE, SIZE, 3) and 0 <= frames.min() and frames.max() <= 1
    assert not torch.equal(shown[0][1], shown[1][1]), "the adapter changed between the two previews"


def test_the_same_noise_gives_the_same_preview_for_the_same_adapter(backbone, reference):
    """Training at lr ~0 leaves the adapter (nearly) as it started: both previews then match."""
    shown = []
    preview = TrainingPreview(every=1, show=lambda frames, step: shown.append(frames), steps=2, frames=2)
    train_adapter(backbone, reference, "a square moving", steps=2, lr=1e-12, preview=preview)
    assert shown[0].shape[0] == 2
    torch.testing.assert_close(shown[0], shown[1], atol=1e-4, rtol=0)

