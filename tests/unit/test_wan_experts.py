"""Wan 2.2 A14B's two experts as one denoiser: each sample goes to the expert of its timestep (high
noise: ``t >= boundary_ratio·1000``), adapters span both experts' blocks, and a timestep range inside
one expert's trains only that expert's part. On two tiny Wan transformers in a diffusers folder of
Wan 2.2's layout (``transformer_2`` and ``boundary_ratio`` in model_index.json)."""

import json

import pytest
import torch

from motion_core import pipeline
from motion_core.adapters.comfy_lora import to_comfy_wan
from motion_core.backbones import load_backbone, motion_sites
from motion_core.backbones.wan import WanExperts
from motion_core.errors import InputError
from motion_core.sampling import TimestepDistribution
from motion_core.testing import moving_square_frames, write_tiny_wan_folder
from motion_core.train import TrainOptions

BOUNDARY = 0.875


@pytest.fixture(scope="module")
def experts(tmp_path_factory):
    return load_backbone(write_tiny_wan_folder(tmp_path_factory.mktemp("a14b") / "wan", boundary_ratio=BOUNDARY))


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return load_backbone(write_tiny_wan_folder(tmp_path_factory.mktemp("t2v") / "wan"))


@pytest.fixture(scope="module")
def latents(experts):
    return pipeline.encode_reference(experts, moving_square_frames(17, 32, 32))[0]


def test_the_folder_loads_as_two_experts_with_its_boundary_and_its_own_fingerprint(experts, single):
    module = experts.denoiser_module
    assert isinstance(module, WanExperts) and module.boundary == BOUNDARY * 1000
    assert experts.fingerprint != single.fingerprint, "an adapter for the pair is not one for a single model"
    names = [site.name for site in motion_sites(module)]
    assert names == ["high.blocks.0", "high.blocks.1", "low.blocks.0", "low.blocks.1"]


@torch.no_grad()
def test_each_sample_goes_to_the_expert_of_its_timestep(experts):
    module = experts.denoiser_module
    x = torch.randn(3, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    text = torch.randn(3, 5, module.config.text_dim, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([950.0, 875.0, 300.0])  # high, high (at the boundary), low

    def alone(expert, i):
        return expert(hidden_states=x[i:i + 1], timestep=t[i:i + 1], encoder_hidden_states=text[i:i + 1]).sample

    mixed = module(hidden_states=x, timestep=t, encoder_hidden_states=text).sample
    expected = torch.cat([alone(module.high, 0), alone(module.high, 1), alone(module.low, 2)])
    torch.testing.assert_close(mixed, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(alone(module.high, 2), alone(module.low, 2), atol=1e-3), "two different experts"


def lora_parts(adapter) -> dict[str, float]:
    """The summed |B| of the LoRA's layers in each expert (B starts at zero: non-zero = trained)."""
    sums = {"high": 0.0, "low": 0.0}
    for name, b in zip(adapter.names, adapter.lora_B):
        sums["high" if ".high." in name else "low"] += float(b.abs().sum())
    return sums


def test_a_timestep_range_inside_one_expert_trains_only_that_experts_part(experts, latents):
    high_only = pipeline.train_adapter(experts, latents, "a square", kind="lora", steps=3, lr=1e-2,
                                       options=TrainOptions(timesteps=TimestepDistribution(0.9, 1.0)))
    both = pipeline.train_adapter(experts, latents, "a square", kind="lora", steps=6, lr=1e-2, seed=3,
                                  options=TrainOptions(timesteps=TimestepDistribution(0.5, 1.0)))
    assert lora_parts(high_only.adapter)["high"] > 0 and lora_parts(high_only.adapter)["low"] == 0
    assert min(lora_parts(both.adapter).values()) > 0


def test_a_whole_transfer_runs_across_the_boundary_with_checkpointing(experts, latents):
    result = pipeline.train_adapter(experts, latents, "a square", kind="motion_embeddings", steps=2,
                                    options=TrainOptions(gradient_checkpointing=True))
    inverted = pipeline.invert_reference(experts, latents, steps=4, adapters=((result.adapter, 1.0),))
    generated = pipeline.generate(experts, pipeline.make_noise(inverted, "blend", 1), "a circle", steps=4, cfg=3.0,
                                  adapters=((result.adapter, 1.0),))
    assert torch.isfinite(pipeline.decode(experts, generated)).all()


def test_a_lora_of_both_experts_is_not_exported_as_one_comfyui_file(experts, latents):
    adapter = pipeline.train_adapter(experts, latents, "a square", kind="lora", steps=1).adapter
    with pytest.raises(InputError, match="^adapter: this LoRA spans Wan 2.2 A14B's two experts"):
        to_comfy_wan(adapter)


def test_a_pair_without_a_boundary_is_refused_by_name(tmp_path):
    folder = write_tiny_wan_folder(tmp_path / "wan", boundary_ratio=BOUNDARY)
    index = json.loads((folder / "model_index.json").read_text())
    index["boundary_ratio"] = None
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(InputError, match="^model: 'wan' has two transformers but no boundary_ratio"):
        load_backbone(folder)
