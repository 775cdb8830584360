"""Model dtype × training precision, and inversion and sampling in every model dtype: each
combination either works (in the precision it says) or is refused with a message naming
``precision`` — never a crash from inside torch (before the backbone seam, a half-precision model
trained with precision fp32 or auto failed with "Input type (float) and bias type ... should be the
same")."""

import pytest
import torch

from motion_core import pipeline
from motion_core.backbones import ModelOptions, load_backbone
from motion_core.errors import InputError
from motion_core.testing import moving_square_frames, write_tiny_text_to_video_folder
from motion_core.train import TrainOptions

TRAINS_IN = {  # (model dtype, precision) -> dtype the step computes in, or None: refused
    ("fp32", "auto"): "float32", ("fp32", "fp32"): "float32", ("fp32", "fp16"): "float16", ("fp32", "bf16"): "bfloat16",
    ("fp16", "auto"): "float16", ("fp16", "fp32"): None, ("fp16", "fp16"): "float16", ("fp16", "bf16"): None,
    ("bf16", "auto"): "bfloat16", ("bf16", "fp32"): None, ("bf16", "fp16"): None, ("bf16", "bf16"): "bfloat16",
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_text_to_video_folder(tmp_path_factory.mktemp("precision") / "tiny")


@pytest.fixture(scope="module")
def models(folder):
    """``dtype -> (backbone, reference latents)`` on the CPU."""
    loaded = {}
    for dtype in ("fp32", "fp16", "bf16"):
        backbone = load_backbone(folder, ModelOptions(dtype=dtype, device="cpu"))
        loaded[dtype] = backbone, pipeline.encode_reference(backbone, moving_square_frames(8, 32, 32))[0]
    return loaded


@pytest.mark.parametrize("dtype, precision", sorted(TRAINS_IN))
def test_training_works_in_the_stated_precision_or_is_refused_by_name(models, dtype, precision):
    backbone, reference = models[dtype]
    before = {name: tensor.clone() for name, tensor in backbone.unet.state_dict().items()}
    train = lambda: pipeline.train_adapter(backbone, reference, "a red square", None, "lora", steps=2, lr=1e-2,  # noqa: E731
                                           options=TrainOptions(precision=precision))
    expected = TRAINS_IN[dtype, precision]
    if expected is None:
        with pytest.raises(InputError) as refused:
            train()
        assert refused.value.input_name == "precision"
        assert {"fp16": "float16", "bf16": "bfloat16"}[dtype] in str(refused.value)
    else:
        result = train()
        assert result.adapter.metadata["precision"] == expected
        assert all(torch.isfinite(torch.tensor(h["total"])) for h in result.history)
        assert any(torch.count_nonzero(b) for b in result.adapter.lora_B), "the adapter did not train"
    assert all(torch.equal(backbone.unet.state_dict()[k], v) for k, v in before.items())


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_inversion_and_sampling_run_in_the_model_dtype(models, dtype):
    backbone, reference = models[dtype]
    adapter = pipeline.new_adapter(backbone, "temporal_attention")
    inverted = pipeline.invert_reference(backbone, reference, steps=2, adapters=[(adapter, 1.0)])
    video = pipeline.generate(backbone, pipeline.make_noise(inverted, "blend", seed=1), "a blue circle", steps=2,
                              cfg=7.5, adapters=[(adapter, 1.0)])
    assert inverted.samples.dtype == video.samples.dtype == backbone.dtype
    assert torch.isfinite(video.samples.float()).all()
    frames = pipeline.decode(backbone, video)
    assert frames.shape == (8, 32, 32, 3) and frames.dtype == torch.float32
