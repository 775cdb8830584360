"""The whole transfer (``pipeline.transfer``, what the command line and the toy demo run) on the tiny
UNet3D: how it inverts the reference."""

from dataclasses import replace

import pytest
import torch

from motion_core.backbones import load_backbone
from motion_core.pipeline import (TransferSettings, decode, encode_reference, generate, invert_reference, make_noise,
                                  train_adapter, transfer)
from motion_core.testing import write_tiny_text_to_video_folder

FRAMES, SIZE = 6, 32


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return load_backbone(write_tiny_text_to_video_folder(tmp_path_factory.mktemp("m") / "tiny"))


def test_a_transfer_inverts_with_the_adapter_or_with_the_base_model_as_asked(backbone):
    """``TransferSettings.invert_with_adapter``: MotionDirector's inference inverts with its LoRA loaded
    (the default); the toy benchmarks invert with the base model. Same noise strategy either way, so
    the videos differ only through the inversion, and without the adapter it is the plain inversion."""
    frames = torch.rand(FRAMES, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(0))
    reference = encode_reference(backbone, frames)[0]
    adapter = train_adapter(backbone, reference, "a square moving", steps=2, lr=1e-1).adapter
    settings = TransferSettings(inversion_steps=3, sampling_steps=2, noise="direct", cfg=1.0)
    videos = {}
    for flag in (True, False):
        out = []
        transfer(backbone, frames, "a square moving", ["a circle"], replace(settings, invert_with_adapter=flag),
                 adapter=adapter, on_video=lambda target, seed, video, out=out: out.append(video))
        videos[flag] = out[0]
    assert not torch.allclose(videos[True], videos[False], atol=1e-4)
    plain = invert_reference(backbone, reference, 3)
    expected = decode(backbone, generate(backbone, make_noise(plain, "direct"), "a circle", steps=2, cfg=1.0,
                                         adapters=((adapter, 1.0),)))
    torch.testing.assert_close(videos[False], expected, atol=1e-5, rtol=0)
