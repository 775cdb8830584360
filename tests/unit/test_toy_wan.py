"""The toy Wan model's training script: what it builds, and that the folder loads as users' Wan folders do."""

import json
from pathlib import Path

import pytest
import torch

from motion_core.backbones import load_backbone, wan
from motion_core.pipeline import decode, encode_reference
from motion_core.toy import evaluate, model, train_wan, world
from motion_core.toy.train_model import HELD_OUT_SEEDS


def test_the_training_script_writes_a_wan_folder_with_its_latent_statistics(tmp_path):
    out = tmp_path / "toy-wan"
    assert train_wan.main(["--out", str(out), "--vae-steps", "2", "--steps", "2", "--batch", "1"]) == 0
    backbone = load_backbone(out)
    assert backbone.family == "wan" and backbone.sampling.shift == train_wan.FLOW_SHIFT
    vae = json.loads((out / "vae" / "config.json").read_text())
    assert vae["latents_mean"] != [0.0] * train_wan.LATENT_CHANNELS and all(s > 0 for s in vae["latents_std"])
    # the toy VAE keeps every frame (the real one compresses time 4x): 9 frames, 9 latent frames
    assert backbone.latent_frames(train_wan.FRAMES) == train_wan.FRAMES
    clip = world.make_clip("circle", "red", "left", train_wan.FRAMES, model.WIDTH, model.HEIGHT, seed=3)
    reference, _ = encode_reference(backbone, world.to_image_tensor(clip))
    assert reference.samples.shape == (1, train_wan.LATENT_CHANNELS, train_wan.FRAMES, 16, 16)
    assert decode(backbone, reference).shape == (train_wan.FRAMES, model.HEIGHT, model.WIDTH, 3)
    record = json.loads((out / "training.json").read_text())
    assert (record["vae_steps"], record["steps"], record["frames"], record["device"]) == (2, 2, 9, "cpu")


def test_every_world_word_is_one_token_and_the_prompt_is_wans_length(tmp_path):
    parts = train_wan.build_parts(tmp_path / "tokenizer")
    tokenizer = parts["tokenizer"]
    for word in model.vocabulary():
        assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word
    embed = train_wan.caption_embedder(tokenizer, parts["text_encoder"].eval())  # eval: no dropout
    captions = ["a red circle moving up and left", ""]
    text = embed(captions)
    assert text.shape == (2, 512, train_wan.TEXT_DIM) and text.requires_grad
    assert torch.all(text[0, 9:] == 0) and torch.all(text[1, 1:] == 0)  # the padding zeroed, as Wan's pipeline
    # training embeds 16 positions and pads: the same as the backbone's 512 (every world caption fits in 16)
    ids, mask = wan.TransformersTokenizer(tokenizer).tokens(captions, wan.TEXT_TOKENS)
    with torch.no_grad():
        torch.testing.assert_close(text.detach(), wan.text_embeddings(parts["text_encoder"], ids, mask))


def test_continuing_keeps_the_vae(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert train_wan.main(["--out", str(first), "--vae-steps", "1", "--steps", "1", "--batch", "1"]) == 0
    assert train_wan.main(["--out", str(second), "--init-from", str(first), "--steps", "1", "--batch", "1"]) == 0
    a, b = train_wan.load_parts(first), train_wan.load_parts(second)
    assert all(torch.equal(x, y) for x, y in zip(a["vae"].parameters(), b["vae"].parameters()))
    assert a["vae"].config.latents_mean == b["vae"].config.latents_mean
    assert any(not torch.equal(x, y) for x, y in zip(a["transformer"].parameters(), b["transformer"].parameters()))
    record = json.loads((second / "training.json").read_text())
    assert record["init_training"]["steps"] == 1
    assert record["qk_gain"] is None and record["init_training"]["qk_gain"] == 1.0  # the gain is the first run's


def test_a_new_transformer_can_start_on_another_folders_vae(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert train_wan.main(["--out", str(first), "--vae-steps", "1", "--steps", "1", "--batch", "1",
                           "--vae-width", "8"]) == 0
    assert train_wan.main(["--out", str(second), "--vae-from", str(first), "--heads", "2", "--steps", "1",
                           "--batch", "1", "--timestep-shift", "0.5"]) == 0
    a, b = train_wan.load_parts(first), train_wan.load_parts(second)
    assert all(torch.equal(x, y) for x, y in zip(a["vae"].parameters(), b["vae"].parameters()))
    assert a["vae"].config.latents_mean == b["vae"].config.latents_mean and b["vae"].config.base_dim == 8
    assert a["transformer"].config.num_attention_heads == train_wan.HEADS
    assert (b["transformer"].config.num_attention_heads, b["transformer"].config.attention_head_dim) == (
        2, train_wan.WIDTH // 2)
    record = json.loads((second / "training.json").read_text())
    assert (record["vae_steps"], record["transformer"]["heads"], record["timestep_shift"]) == (0, 2, 0.5)
    assert (record["vae_training"]["vae_steps"], record["vae_training"]["vae_width"]) == (1, 8)


def test_a_frozen_text_encoder_is_saved_as_built_and_the_transformer_still_trains(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert train_wan.main(["--out", str(first), "--vae-steps", "1", "--steps", "0"]) == 0
    assert train_wan.main(["--out", str(second), "--vae-from", str(first), "--frozen-text-encoder", "--steps", "2",
                           "--batch", "1"]) == 0
    built, untrained, trained = (train_wan.build_parts(tmp_path / "tokenizer"), train_wan.load_parts(first),
                                 train_wan.load_parts(second))
    assert all(torch.equal(x, y) for x, y in zip(built["text_encoder"].parameters(),
                                                 trained["text_encoder"].parameters()))
    assert any(not torch.equal(x, y) for x, y in zip(untrained["transformer"].parameters(),
                                                     trained["transformer"].parameters()))
    assert json.loads((second / "training.json").read_text())["frozen_text_encoder"] is True


def test_a_vae_that_compresses_four_times_gives_a_wan_folder_whose_transformer_reads_its_latents(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert train_wan.main(["--out", str(first), "--vae-steps", "1", "--steps", "0", "--vae-scale", "4",
                           "--latent-channels", "12"]) == 0
    assert train_wan.main(["--out", str(second), "--vae-from", str(first), "--patch", "1", "--steps", "1",
                           "--batch", "1"]) == 0
    backbone = load_backbone(second)
    assert backbone.latent_scale() == 4 and backbone.latent_format is None
    clip = world.make_clip("square", "red", "left", train_wan.FRAMES, model.WIDTH, model.HEIGHT, seed=3)
    reference, _ = encode_reference(backbone, world.to_image_tensor(clip))
    assert reference.samples.shape == (1, 12, train_wan.FRAMES, 8, 8)
    assert decode(backbone, reference).shape == (train_wan.FRAMES, model.HEIGHT, model.WIDTH, 3)
    with torch.no_grad():
        velocity = backbone.call_denoiser(backbone.transformer, reference.samples, torch.tensor([500.0]),
                                          backbone.encode_prompt([clip.caption]))
    assert velocity.shape == reference.samples.shape
    record = json.loads((first / "training.json").read_text())
    assert (record["vae_scale"], record["latent_channels"]) == (4, 12)


def test_qk_gain_sets_every_attention_norm_of_a_new_transformer(tmp_path):
    def gains(parts):
        return {round(module.weight.mean().item(), 4) for name, module in parts["transformer"].named_modules()
                if name.endswith(("norm_q", "norm_k"))}

    assert gains(train_wan.build_parts(tmp_path / "a")) == {1.0}
    assert gains(train_wan.build_parts(tmp_path / "b", qk_gain=1.7)) == {1.7}


@pytest.mark.parametrize("arguments, named", [
    (["--heads", "5"], "--heads"), (["--heads", "0"], "--heads"), (["--width", "24", "--heads", "6"], "--width"),
    (["--patch", "3"], "--patch"), (["--vae-from", "x", "--vae-steps", "3"], "--vae-from"),
    (["--vae-from", "x", "--init-from", "y"], "--vae-from"), (["--init-from", "y", "--layers", "2"], "--init-from"),
    (["--timestep-shift", "0"], "--timestep-shift"), (["--qk-gain", "0"], "--qk-gain"),
    (["--vae-scale", "3"], "--vae-scale"), (["--latent-channels", "16"], "--latent-channels"),
    (["--vae-scale", "4", "--patch", "16"], "--patch"), (["--vae-from", "x", "--vae-scale", "4"], "--vae-scale"),
    (["--init-from", "y", "--qk-gain", "2"], "--init-from"), (["--vae-width", "0"], "--vae-width"),
    (["--vae-from", "x", "--vae-width", "32"], "--vae-width"), (["--vae-from", "no-such-folder"], "--vae-from"),
    # a device this machine lacks (no CUDA, or fewer than 100 CUDA devices), or none at all
    (["--device", "cuda:99"], "--device"), (["--device", "gpu"], "--device"), (["--device", "meta"], "--device")])
def test_the_training_script_refuses_options_that_cannot_build_a_model(tmp_path, arguments, named, capsys):
    with pytest.raises(SystemExit) as stop:
        train_wan.main(["--out", str(tmp_path / "m"), *arguments])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # argparse's usage lines list every option
    assert "error:" in error and named in error, error


# --- the shipped model -----------------------------------------------------------------------------

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "toy-wan"


@pytest.fixture(scope="module")
def shipped():
    return load_backbone(SHIPPED)


def test_the_shipped_model_is_a_wan_folder_that_keeps_every_frame(shipped):
    assert shipped.family == "wan" and shipped.sampling.shift == train_wan.FLOW_SHIFT
    assert shipped.latent_frames(train_wan.FRAMES) == train_wan.FRAMES and shipped.latent_scale() == 2
    assert shipped.latent_format is None  # ComfyUI's Wan latent formats are for 16 and 48 channels, not 4
    index = json.loads((SHIPPED / "model_index.json").read_text())
    assert index["_class_name"] == "WanPipeline" and index["transformer"] == ["diffusers", "WanTransformer3DModel"]
    record = json.loads((SHIPPED / "training.json").read_text())
    assert "train_wan" in record["command"] and record["frames"] == train_wan.FRAMES
    assert not list(SHIPPED.rglob("*.bin")) and not list(SHIPPED.rglob("*.pt"))


def test_the_shipped_vae_keeps_a_held_out_clip_and_its_latents_are_normalised(shipped):
    clip = world.random_clip(HELD_OUT_SEEDS + 8000, train_wan.FRAMES, model.WIDTH, model.HEIGHT)
    reference, _ = encode_reference(shipped, world.to_image_tensor(clip))
    decoded = decode(shipped, reference).numpy()
    assert abs(decoded - clip.frames).mean() < 0.015  # 0.005 measured (benchmarks/toy_model.py)
    latents = reference.samples
    assert abs(latents.mean().item()) < 0.5 and 0.5 < latents.std().item() < 2.0


def test_the_shipped_transformer_predicts_the_velocity_and_hears_colour_words(shipped):
    clips = [world.random_clip(HELD_OUT_SEEDS + 8100 + k, train_wan.FRAMES, model.WIDTH, model.HEIGHT)
             for k in range(3)]
    latents = torch.cat([shipped.encode_video(world.to_image_tensor(clip)) for clip in clips])
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
    t = torch.full((3,), 500.0)
    target = shipped.sampling.target(latents, noise, t)
    with torch.no_grad():
        predicted = shipped.call_denoiser(shipped.transformer, shipped.sampling.noised(latents, noise, t), t,
                                          shipped.encode_prompt([clip.caption for clip in clips]))
    assert (predicted - target).pow(2).mean() < 0.5 * target.pow(2).mean()  # a trained flow model, not noise
    signal = evaluate.word_signal(shipped, {"same": ("a red circle moving left",) * 2,
                                            "colour": evaluate.WORD_PAIRS["colour (red / blue)"]})
    assert signal["same"][0] == 0.0 and signal["colour"][0] > 0.1


def test_the_shipped_transformer_draws_the_shape_and_colour_each_caption_names(shipped):
    # The toy Wan model's transfer rows need its shapes: a model that draws every shape as a round blob
    # (the first toy Wan model: 23.8 % of shapes right) cannot show the target shape of a transfer.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        drawn = evaluate.caption_following(shipped, seeds=(0,), motions=("left",))  # 4 shapes x 5 colours
    finally:
        torch.set_num_threads(threads)
    for shape in world.SHAPES:
        right = [r.shape_right for r in drawn if r.shape == shape]
        assert sum(right) >= 4, (shape, right)  # 5 of 5 measured for every shape (benchmarks/toy_model.py)
    assert all(r.colour_right for r in drawn)


def test_self_attention_spread_counts_every_block_and_sharper_gains_attend_to_fewer_tokens(shipped):
    clips = [world.random_clip(HELD_OUT_SEEDS + 8200 + k, train_wan.FRAMES, model.WIDTH, model.HEIGHT)
             for k in range(2)]
    sdpa = torch.nn.functional.scaled_dot_product_attention
    before = evaluate.self_attention_spread(shipped, clips, 500)
    assert torch.nn.functional.scaled_dot_product_attention is sdpa  # put back
    tokens = train_wan.FRAMES * (model.HEIGHT // 4) * (model.WIDTH // 4)  # 2x VAE, 2x2 patches
    assert [call.tokens for call in before] == [tokens] * shipped.transformer.config.num_layers
    assert all(1 <= call.attended <= tokens for call in before)
    norms = [module.weight for name, module in shipped.transformer.named_modules()
             if name.endswith(("attn1.norm_q", "attn1.norm_k"))]
    try:
        with torch.no_grad():
            for weight in norms:
                weight.mul_(3.0)  # the attention logits grow 9x (q and k are both scaled)
        sharper = evaluate.self_attention_spread(shipped, clips, 500)
    finally:
        with torch.no_grad():
            for weight in norms:
                weight.div_(3.0)
    assert all(s.attended < 0.8 * b.attended for s, b in zip(sharper, before)), (before, sharper)
