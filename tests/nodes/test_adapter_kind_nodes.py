"""LoRA and motion-embedding adapters through the nodes as ComfyUI runs them: options nodes, training,
save/load, debiasing in Generate Video, and Combine Motion Adapters' stacks."""

import pytest
import torch

from test_pipeline_nodes import STEPS, generate, models_dir, model, nodes, reference, run, train  # noqa: F401

LORA = ("lora", 4, 4.0, 0.1, True, 0.2)
EMBEDDINGS = ("motion_embeddings", "widest", 16, 1.0)


def options_for(nodes, kind):
    if kind == "lora":
        (options,) = run(nodes.adapter_options.LoRAOptions, *LORA[1:])
    else:
        (options,) = run(nodes.adapter_options.MotionEmbeddingOptions, *EMBEDDINGS[1:])
    return options


@pytest.fixture(scope="module", params=["lora", "motion_embeddings"])
def trained(request, nodes, model, reference):
    kind = request.param
    before = {name: tensor.clone() for name, tensor in model.unet.state_dict().items()}
    adapter, loss = train(nodes, model, reference, parameterisation=kind, lr=1e-2,
                          adapter_options=options_for(nodes, kind))
    assert all(torch.equal(before[name], tensor) for name, tensor in model.unet.state_dict().items())
    return kind, adapter, loss


def test_the_options_reach_the_adapter_and_the_loss_map_has_every_term(trained):
    kind, adapter, loss = trained
    assert adapter.kind == kind
    if kind == "lora":
        assert adapter.options["rank"] == 4 and adapter.options["spatial"] is True
        assert any(name.startswith("spatial.") for name in adapter.names)
        assert {"loss", "base", "spatial"} <= set(loss)  # the spatial path is skipped at random: some steps
    else:
        assert adapter.options["frame_slots"] == 16
        assert {tuple(t.shape)[1] for t in adapter.to_tensors().values()} == {16}
    assert len(loss["loss"]) == STEPS


def test_saved_and_loaded_generates_exactly_as_trained(nodes, model, reference, trained):
    kind, adapter, _ = trained
    (name,) = run(nodes.adapter_files.SaveMotionAdapter, adapter, f"kinds/{kind}")
    (loaded,) = run(nodes.adapter_files.LoadMotionAdapter, name)
    assert loaded.kind == kind and loaded.metadata == adapter.metadata
    assert (loaded.metadata["width"], loaded.metadata["height"]) == ("20", "16")  # the encoded size
    assert torch.equal(generate(nodes, model, reference, loaded).samples,
                       generate(nodes, model, reference, adapter).samples)


def test_options_for_another_kind_are_refused_by_name(nodes, model, reference):
    with pytest.raises(ValueError, match="^adapter_options: these are options for lora but the parameterisation "
                                         "is motion_embeddings"):
        train(nodes, model, reference, parameterisation="motion_embeddings", adapter_options=options_for(nodes, "lora"))


def generate_with(nodes, model, noise, adapter, debias="object", strength=1.0):
    (latents,) = run(nodes.generation.GenerateVideo, model, noise, "a red square", "", STEPS, 4.0, strength, adapter,
                     debias)
    return latents.samples


@pytest.fixture(scope="module")
def noise(nodes, model, reference):
    (inverted,) = run(nodes.generation.InvertVideo, model, reference, STEPS, "", 1.0)
    (noise,) = run(nodes.generation.InitialNoise, inverted, "blend", 0.5, 7)
    return noise


def test_debias_changes_embeddings_only(nodes, model, noise, trained):
    kind, adapter, _ = trained
    outputs = {mode: generate_with(nodes, model, noise, adapter, mode) for mode in ("object", "camera", "none")}
    if kind == "motion_embeddings":
        assert not torch.equal(outputs["object"], outputs["none"]) and not torch.equal(outputs["camera"], outputs["none"])
    else:
        assert torch.equal(outputs["object"], outputs["none"]) and torch.equal(outputs["camera"], outputs["none"])


def test_combine_mixes_two_motions_and_a_spatial_lora(nodes, model, noise, reference):
    combine = nodes.adapter_options.CombineMotionAdapters
    lora, _ = train(nodes, model, reference, parameterisation="lora", lr=1e-2, adapter_options=options_for(nodes, "lora"))
    embeddings, _ = train(nodes, model, reference, parameterisation="motion_embeddings", lr=1e-2)
    (one,) = run(combine, lora, 1.0, "temporal", 1.0, "temporal")  # adapter_b left out
    assert torch.equal(generate_with(nodes, model, noise, one), generate_with(nodes, model, noise, lora))
    (half,) = run(combine, lora, 0.5, "temporal", 1.0, "temporal")
    assert torch.equal(generate_with(nodes, model, noise, half), generate_with(nodes, model, noise, lora, strength=0.5))
    (mixed,) = run(combine, lora, 1.0, "temporal", 0.7, "temporal", adapter_b=embeddings)
    (appearance,) = run(combine, lora, 1.0, "temporal+spatial", 1.0, "temporal")
    samples = [generate_with(nodes, model, noise, stack) for stack in (mixed, appearance)]
    assert not torch.equal(samples[0], samples[1])
    assert all(not torch.equal(s, generate_with(nodes, model, noise, lora)) for s in samples)
    (off,) = run(combine, lora, 1.0, "temporal", 0.0, "temporal", adapter_b=embeddings)  # b at strength 0
    assert torch.equal(generate_with(nodes, model, noise, off), generate_with(nodes, model, noise, lora))
    with pytest.raises(ValueError, match="^parts_b: 'spatial' applies to LoRA adapters only"):
        run(combine, lora, 1.0, "temporal", 1.0, "spatial", adapter_b=embeddings)
    with pytest.raises(ValueError, match="^adapter: Save Motion Adapter takes one adapter"):
        run(nodes.adapter_files.SaveMotionAdapter, mixed, "stack")
