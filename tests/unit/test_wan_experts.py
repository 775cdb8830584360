"""Wan 2.2 A14B's two experts as one denoiser: each sample goes to the expert of its timestep (high
noise: ``t >= boundary_ratio·1000``), adapters span both experts' blocks, and a timestep range inside
one expert's trains only that expert's part. On two tiny Wan transformers in a diffusers folder of
Wan 2.2's layout (``transformer_2`` and ``boundary_ratio`` in model_index.json), and the same two
written as ComfyUI's expert files (``diffusion_models/…high_noise…`` as the model, ``…low_noise…`` as
the ``low_noise_model`` part), which load as the same pair with Wan 2.2 T2V's boundary."""

import json

import pytest
import torch

from motion_core import pipeline
from motion_core.adapters.comfy_lora import to_comfy_wan
from motion_core.backbones import check_model, load_backbone, motion_sites
from motion_core.backbones.wan import T2V_A14B_BOUNDARY_RATIO, WanExperts
from motion_core.errors import InputError
from motion_core.sampling import TimestepDistribution
from motion_core.testing import moving_square_frames, tiny_wan_transformer, write_tiny_wan_folder
from motion_core.train import TrainOptions
from support.original_files import _save
from support.wan_files import transformer_to_original, write_header_only_transformer, write_wan_files

BOUNDARY = 0.875


@pytest.fixture(scope="module")
def experts(tmp_path_factory):
    return load_backbone(write_tiny_wan_folder(tmp_path_factory.mktemp("a14b") / "wan", boundary_ratio=BOUNDARY))


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return load_backbone(write_tiny_wan_folder(tmp_path_factory.mktemp("t2v") / "wan"))


@pytest.fixture(scope="module")
def expert_files(tmp_path_factory):
    """The folder's two experts (seeds 0 and 1) as ComfyUI's files: the high-noise one as the model, with the
    VAE, text encoder and configs parts, and the low-noise one in models/diffusion_models."""
    root = tmp_path_factory.mktemp("a14b-files")
    written = write_wan_files(root)
    low = tiny_wan_transformer(1)
    path = _save(root / "diffusion_models" / "tiny-wan_low_noise.safetensors", transformer_to_original(low))
    parts = {name: written["files"][name] for name in ("vae", "text_encoder", "configs")}
    return {"model": written["files"]["model"], "parts": {**parts, "low_noise_model": path},
            "high": written["transformer"], "low": low}


@pytest.fixture(scope="module")
def experts_from_files(expert_files):
    return load_backbone(expert_files["model"], parts=expert_files["parts"])


@pytest.fixture(params=["folder", "files"])
def any_experts(request):
    """The pair from the diffusers folder, then from ComfyUI's two files."""
    return request.getfixturevalue({"folder": "experts", "files": "experts_from_files"}[request.param])


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
def test_each_sample_goes_to_the_expert_of_its_timestep(any_experts):
    module = any_experts.denoiser_module
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


def test_comfyuis_two_expert_files_load_as_the_folders_pair(expert_files, experts_from_files, experts):
    """Each expert carries its own file's weights; the boundary is Wan 2.2 T2V's; the pair computes what the
    folder's pair does, across the boundary, and has its fingerprint (adapters of one serve the other)."""
    module = experts_from_files.denoiser_module
    assert isinstance(module, WanExperts) and module.boundary == T2V_A14B_BOUNDARY_RATIO * 1000 == 875.0
    for expert, written in ((module.high, expert_files["high"]), (module.low, expert_files["low"])):
        ours, theirs = expert.state_dict(), written.state_dict()
        assert set(ours) == set(theirs) and all(torch.equal(ours[name], theirs[name]) for name in theirs)
    x = torch.randn(3, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    text = torch.randn(3, 5, module.config.text_dim, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([950.0, 875.0, 874.0])
    with torch.no_grad():
        got, want = (pair(hidden_states=x, timestep=t, encoder_hidden_states=text).sample
                     for pair in (module, experts.denoiser_module))
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert [site.name for site in motion_sites(module)] == [site.name for site in motion_sites(experts.denoiser_module)]
    assert experts_from_files.fingerprint == experts.fingerprint


def test_a_pair_of_files_is_not_one_expert(expert_files, experts_from_files):
    parts = {name: path for name, path in expert_files["parts"].items() if name != "low_noise_model"}
    single = load_backbone(expert_files["model"], parts=parts)
    assert not isinstance(single.denoiser_module, WanExperts)
    assert experts_from_files.fingerprint != single.fingerprint, "an adapter for the pair is not one for an expert"


def test_a_wrong_low_noise_expert_is_refused_by_name(expert_files, tmp_path):
    parts, model = expert_files["parts"], expert_files["model"]
    with pytest.raises(InputError, match="^low_noise_model: 'tiny-wan.safetensors' is the model itself; choose the "
                                         "low-noise expert, with the high-noise expert as the model: "
                                         "wan2.2_t2v_low_noise_14B_fp16.safetensors"):
        check_model(model, parts={**parts, "low_noise_model": model})
    other = write_header_only_transformer(tmp_path / "tiny-wan-3-blocks.safetensors", 24, 3)
    with pytest.raises(InputError, match="^low_noise_model: 'tiny-wan-3-blocks.safetensors' has 3 blocks 24 wide"):
        check_model(model, parts={**parts, "low_noise_model": other})
    with pytest.raises(InputError, match="^low_noise_model: 'missing.safetensors' not found"):
        check_model(model, parts={**parts, "low_noise_model": tmp_path / "missing.safetensors"})


def test_the_experts_of_a_real_size_pair_are_checked_from_their_headers(expert_files, tmp_path):
    """At the published sizes, with the shipped configs: two 14B experts pass; a 1.3B with a 14B is refused,
    and so is a pair whose names say it is swapped."""
    parts = {name: expert_files["parts"][name] for name in ("vae", "text_encoder")}
    high = write_header_only_transformer(tmp_path / "wan2.2_t2v_high_noise_14B_fp16.safetensors", 5120, 40)
    low = write_header_only_transformer(tmp_path / "wan2.2_t2v_low_noise_14B_fp16.safetensors", 5120, 40)
    small = write_header_only_transformer(tmp_path / "wan2.1_t2v_1.3B_fp16.safetensors", 1536, 30)
    check_model(high, parts={**parts, "low_noise_model": low})
    with pytest.raises(InputError, match=r"^low_noise_model: 'wan2.2_t2v_low_noise_14B_fp16.safetensors' is Wan 2.1 "
                                         r"T2V 14B \(or a Wan 2.2 T2V A14B expert\) but the model "
                                         r"'wan2.1_t2v_1.3B_fp16.safetensors' is Wan 2.1 T2V 1.3B: Wan 2.2 A14B's two "
                                         r"experts are of one architecture; choose wan2.2_t2v_low_noise_14B_fp16"):
        check_model(small, parts={**parts, "low_noise_model": low})
    with pytest.raises(InputError, match="^low_noise_model: 'wan2.2_t2v_high_noise_14B_fp16.safetensors' is named as "
                                         "the high-noise expert and the model "
                                         "'wan2.2_t2v_low_noise_14B_fp16.safetensors' as the low-noise one: swap them"):
        check_model(low, parts={**parts, "low_noise_model": high})


def test_a_low_noise_expert_with_another_model_is_refused_by_name(expert_files, tmp_path):
    from motion_core.testing import write_tiny_text_to_video_folder

    low = expert_files["parts"]["low_noise_model"]
    folder = write_tiny_wan_folder(tmp_path / "wan", boundary_ratio=BOUNDARY)
    with pytest.raises(InputError, match="^low_noise_model: 'wan' is a Wan diffusers folder: a Wan 2.2 A14B folder "
                                         r"carries its low-noise expert itself \(transformer_2\); choose none"):
        check_model(folder, parts={"low_noise_model": low})
    with pytest.raises(InputError, match="^low_noise_model: a ModelScope/ZeroScope.* takes no low noise model; leave "
                                         r"it out \(none\)"):
        check_model(write_tiny_text_to_video_folder(tmp_path / "t2v"), parts={"low_noise_model": low})


def test_a_pair_of_expert_files_samples_with_wan22s_own_shift():
    from motion_core.backbones.wan import T2V_A14B_FLOW_SHIFT, files_scheduler_config
    from motion_core.backbones.wan_files import WanFileConfigs

    shipped = WanFileConfigs.shipped("t2v-14b")
    assert files_scheduler_config(shipped, pair=False, shipped=True)["flow_shift"] == 3.0  # Wan 2.1 480p
    assert files_scheduler_config(shipped, pair=True, shipped=True)["flow_shift"] == T2V_A14B_FLOW_SHIFT == 12.0
    # a configs folder that replaces the shipped ones is taken as it is
    assert files_scheduler_config(shipped, pair=True, shipped=False)["flow_shift"] == 3.0
