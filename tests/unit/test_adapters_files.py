"""Adapter files: exact round trip of tensors and metadata, no overwriting, no half-written files,
and a clear message for every file that cannot be used."""

import json

import pytest
import torch
from safetensors.torch import save_file

from motion_core.adapters import FORMAT, TemporalAttentionAdapter, load_adapter, make_view, save_adapter
from motion_core.errors import InputError
from motion_core.objectives import ObjectiveSpec
from motion_core.testing import TINY_TEXT_DIM, tiny_unet3d

METADATA = {"backbone": "unet3d:0123456789abcdef", "objective": ObjectiveSpec(base_loss="motion_director").to_json(),
            "prompt": "a car is turning — ünïcode", "steps": "400", "frames": "8", "pack_version": "0.1.0"}


@pytest.fixture(scope="module")
def unet():
    return tiny_unet3d().requires_grad_(False)


@pytest.fixture
def adapter(unet):
    gen = torch.Generator().manual_seed(0)
    names = TemporalAttentionAdapter.for_unet(unet).names
    return TemporalAttentionAdapter({n: torch.randn(unet.get_submodule(n).weight.shape, generator=gen) for n in names},
                                    dict(METADATA))


def test_round_trip_reproduces_tensors_and_metadata_exactly(tmp_path, adapter):
    path = save_adapter(adapter, tmp_path / "car.safetensors")
    loaded = load_adapter(path, backbone=METADATA["backbone"])
    assert type(loaded) is TemporalAttentionAdapter
    assert loaded.metadata == METADATA
    original, read = adapter.to_tensors(), loaded.to_tensors()
    assert sorted(read) == sorted(original)
    assert all(torch.equal(read[k], original[k]) for k in original)
    assert ObjectiveSpec.from_json(loaded.metadata["objective"]).base_loss == "motion_director"


def test_loaded_adapter_computes_what_the_saved_one_did(tmp_path, adapter, unet):
    x, t, text = torch.randn(1, 4, 8, 16, 16), torch.tensor([300]), torch.randn(1, 7, TINY_TEXT_DIM)
    outputs = []
    for candidate in (adapter, load_adapter(save_adapter(adapter, tmp_path / "a.safetensors"))):
        view = make_view(unet)
        candidate.attach(view, strength=0.8)
        with torch.no_grad():
            outputs.append(view(x, t, encoder_hidden_states=text).sample)
    assert torch.equal(*outputs)


def test_file_records_format_and_kind(tmp_path, adapter):
    from safetensors import safe_open

    with safe_open(str(save_adapter(adapter, tmp_path / "a.safetensors")), "pt") as file:
        metadata = file.metadata()
    assert (metadata["format"], metadata["format_version"], metadata["kind"]) == (FORMAT, "1", "temporal_attention")


def test_save_leaves_only_the_finished_file(tmp_path, adapter):
    save_adapter(adapter, tmp_path / "sub" / "a.safetensors")
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.safetensors"]


def test_existing_file_is_never_overwritten(tmp_path, adapter):
    path = save_adapter(adapter, tmp_path / "a.safetensors")
    before = path.read_bytes()
    with pytest.raises(InputError, match="'a.safetensors' already exists; choose another name") as err:
        save_adapter(TemporalAttentionAdapter.for_unet(tiny_unet3d()), path)
    assert err.value.input_name == "filename" and path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors"]


def test_save_refuses_other_suffixes(tmp_path, adapter):
    with pytest.raises(InputError, match="must end in .safetensors"):
        save_adapter(adapter, tmp_path / "a.ckpt")


def test_saving_and_loading_work_under_inference_mode(tmp_path, adapter, unet):
    """ComfyUI runs nodes under inference mode: a file saved and loaded there holds the same tensors
    and the loaded adapter computes what the original does (and not what the base does)."""
    gen = torch.Generator().manual_seed(3)
    inputs = (torch.randn(1, 4, 2, 8, 8, generator=gen), torch.tensor([1]))
    text = torch.randn(1, 3, TINY_TEXT_DIM, generator=gen)

    def run(module):
        return module(*inputs, encoder_hidden_states=text).sample

    with torch.inference_mode():
        inference_adapter = TemporalAttentionAdapter.from_tensors({k: v.clone() for k, v in adapter.to_tensors().items()},
                                                                  dict(METADATA))
        loaded = load_adapter(save_adapter(inference_adapter, tmp_path / "a.safetensors"))
        assert loaded.metadata == METADATA
        assert all(torch.equal(loaded.to_tensors()[k], v) for k, v in adapter.to_tensors().items())
        view, original = make_view(unet), make_view(unet)
        loaded.attach(view)
        adapter.attach(original)
        out = run(view)
        assert torch.equal(out, run(original))
        assert not torch.allclose(out, run(unet), atol=1e-3)


# --- files that cannot be used -----------------------------------------------------------------------

def refused(path, match, backbone=""):
    with pytest.raises(InputError, match=match) as err:
        load_adapter(path, backbone=backbone)
    assert err.value.input_name == "adapter"
    return str(err.value)


def test_non_safetensors_names_are_not_opened(tmp_path, adapter):
    path = tmp_path / "a.ckpt"
    torch.save(adapter.to_tensors(), path)
    refused(path, "'a.ckpt' is not a .safetensors file; only safetensors adapter files are loaded")


def test_pickle_renamed_to_safetensors_is_refused(tmp_path, adapter):
    path = tmp_path / "a.safetensors"
    torch.save(adapter.to_tensors(), path)
    refused(path, "'a.safetensors' could not be read as safetensors \\(corrupt or truncated\\?\\)")


def test_truncated_file_is_refused(tmp_path, adapter):
    path = save_adapter(adapter, tmp_path / "whole.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    refused(cut, "'cut.safetensors' could not be read as safetensors")


def test_missing_file_is_refused(tmp_path):
    refused(tmp_path / "none.safetensors", "'none.safetensors' could not be read")


def test_safetensors_that_is_not_an_adapter_is_refused(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    refused(path, "'weights.safetensors' is a safetensors file but not a motion adapter")


def write(path, metadata):
    save_file({"x.to_q.weight_delta": torch.zeros(2, 2)}, str(path), metadata)
    return path


def test_unknown_or_missing_kind_is_refused(tmp_path):
    refused(write(tmp_path / "k.safetensors", {"format": FORMAT, "format_version": "1", "kind": "hologram"}),
            r"kind 'hologram', which this pack does not know \(known: .*temporal_attention.*update the pack")
    refused(write(tmp_path / "m.safetensors", {"format": FORMAT, "format_version": "1"}), r"kind '\(missing\)'")


def test_newer_format_version_is_refused(tmp_path):
    refused(write(tmp_path / "v.safetensors", {"format": FORMAT, "format_version": "2", "kind": "temporal_attention"}),
            "format version '2'; this pack reads versions 1 to 1")


def test_tensors_of_another_kind_are_refused(tmp_path):
    path = tmp_path / "t.safetensors"
    save_file({"lora_A": torch.zeros(2, 2)}, str(path), {"format": FORMAT, "format_version": "1", "kind": "temporal_attention"})
    refused(path, "tensor 'lora_A' .* is not a temporal-attention weight delta")


def test_adapter_for_another_model_is_refused_with_both_fingerprints(tmp_path, adapter):
    path = save_adapter(adapter, tmp_path / "a.safetensors")
    message = refused(path, "adapter was trained on unet3d:0123456789abcdef, this model is unet3d:fedcba9876543210",
                      backbone="unet3d:fedcba9876543210")
    assert message.startswith("adapter: ")
    assert json.loads(load_adapter(path).metadata["objective"])["base_loss"] == "motion_director"  # no check without one
