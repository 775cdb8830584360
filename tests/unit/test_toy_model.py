"""The toy text-to-video model: its tokenizer, its training script, the shipped weights, the scores."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from motion_core.backbones import load_backbone
from motion_core.toy import evaluate, model, train_model, world
from support.toy_training import train_briefly

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "toy-t2v"


# --- tokenizer -------------------------------------------------------------------------------------


def test_learnt_merges_make_every_word_one_symbol():
    words = ["low", "lower", "newest", "widest", "a"]
    merges = model.learn_merges(words)
    for word in words:
        symbols = [*word[:-1], word[-1] + "</w>"]
        for left, right in merges:  # encode as BPE does: merges in order of rank
            i = 0
            while i < len(symbols) - 1:
                if (symbols[i], symbols[i + 1]) == (left, right):
                    symbols[i:i + 2] = [left + right]
                else:
                    i += 1
        assert symbols == [word + "</w>"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import CLIPTokenizer

    folder = model.write_tokenizer(tmp_path_factory.mktemp("tokenizer"))
    return CLIPTokenizer.from_pretrained(folder, model_max_length=model.MAX_TOKENS)


def test_every_caption_word_is_one_token_and_the_longest_caption_fits(tokenizer):
    for word in model.vocabulary():
        assert tokenizer.tokenize(word) == [word + "</w>"]
    longest = max((world.caption(s, c, m) for s in world.SHAPES for c in world.COLOURS for m in world.ALL_MOTIONS),
                  key=lambda text: len(text.split()))
    ids = tokenizer(longest).input_ids
    assert len(ids) == len(longest.split()) + 2 <= model.MAX_TOKENS  # + start and end tokens


def test_words_outside_the_world_still_tokenise_byte_by_byte(tokenizer):
    assert tokenizer.tokenize("a purple dog") == ["a</w>", "p", "u", "r", "p", "le</w>", "do", "g</w>"]
    assert tokenizer.decode(tokenizer("a purple dog").input_ids, skip_special_tokens=True) == "a purple dog"


# --- training --------------------------------------------------------------------------------------


def test_training_captions_drop_the_motion_or_everything_at_the_set_rates():
    clip = world.make_clip("star", "green", "left", frames=4)
    drops = train_model.CAPTION_DROP
    assert train_model.training_caption(clip, 0.0) == ""
    assert train_model.training_caption(clip, drops["empty"] + 0.01) == "a green star"
    assert train_model.training_caption(clip, 0.99) == "a green star moving left"
    rng = np.random.default_rng(0)
    captions = [train_model.training_caption(clip, float(rng.random())) for _ in range(4000)]
    assert captions.count("") / 4000 == pytest.approx(drops["empty"], abs=0.02)
    assert captions.count("a green star") / 4000 == pytest.approx(drops["no_motion"], abs=0.02)


def test_training_clips_come_from_seeds_the_benchmarks_never_use():
    pixels, captions = train_model.clip_batch(np.random.default_rng(0), 3)
    assert pixels.shape == (3, 3, model.FRAMES, model.HEIGHT, model.WIDTH)
    assert pixels.min() >= -1 and pixels.max() <= 1 and len(captions) == 3


def test_the_training_script_writes_a_folder_the_normal_loader_takes(trained_briefly):
    backbone = load_backbone(trained_briefly)
    assert backbone.latent_scale() == 2 and backbone.pixel_multiple() == 4
    assert backbone.encode_prompt(["a red circle moving left"]).shape == (1, model.MAX_TOKENS, model.TEXT_DIM)
    assert backbone.vae.config.scaling_factor != 1.0  # set from the trained VAE's latents
    record = (trained_briefly / "training.json").read_text()
    assert '"steps": 2' in record and "train_model" in record


def test_training_is_a_function_of_the_seed(trained_briefly, tmp_path):
    first, second = load_backbone(trained_briefly), load_backbone(train_briefly(tmp_path / "again"))
    for a, b in zip(first.unet.state_dict().values(), second.unet.state_dict().values()):
        assert torch.equal(a, b)


def test_the_training_script_refuses_to_replace_a_model(trained_briefly, capsys):
    before = (trained_briefly / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    with pytest.raises(SystemExit) as stopped:
        train_model.main(["--out", str(trained_briefly), "--vae-steps", "1", "--steps", "1"])
    assert stopped.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert (trained_briefly / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == before


def test_image_steps_take_the_share_the_video_share_leaves():
    assert [s for s in range(8) if train_model.is_image_step(s, 0.5)] == [1, 3, 5, 7]  # the shipped alternation
    assert [s for s in range(8) if train_model.is_image_step(s, 0.75)] == [3, 7]
    assert not any(train_model.is_image_step(s, 1.0) for s in range(8))


def test_training_continues_from_a_model_folder_and_keeps_its_vae(trained_briefly, tmp_path):
    out = tmp_path / "continued"
    assert train_model.main(["--out", str(out), "--init-from", str(trained_briefly), "--steps", "2",
                             "--video-share", "0.75", "--min-snr", "5"]) == 0
    vae = "vae/diffusion_pytorch_model.safetensors"
    assert (out / vae).read_bytes() == (trained_briefly / vae).read_bytes()
    before, after = load_backbone(trained_briefly), load_backbone(out)
    assert after.vae.config.scaling_factor == before.vae.config.scaling_factor
    assert any(not torch.equal(a, b) for a, b in zip(before.unet.state_dict().values(),
                                                      after.unet.state_dict().values()))
    record = json.loads((out / "training.json").read_text())
    assert record["init_from"] == str(trained_briefly) and record["vae_steps"] == 0
    assert record["init_training"]["steps"] == 2 and (record["video_share"], record["min_snr"]) == (0.75, 5.0)
    for part in ("unet", "vae"):  # the folder it was continued from is not written into the new one
        assert "_name_or_path" not in json.loads((out / part / "config.json").read_text())


def test_a_continued_model_cannot_retrain_its_vae(trained_briefly, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        train_model.main(["--out", str(tmp_path / "x"), "--init-from", str(trained_briefly), "--vae-steps", "5"])
    assert stopped.value.code == 2 and "--init-from" in capsys.readouterr().err


# --- scores ----------------------------------------------------------------------------------------


def test_a_perfect_transfer_scores_one_and_shows_the_target_without_leakage():
    reference = world.make_clip("square", "red", world.RANDOM, frames=8, seed=3)
    shape, colour = evaluate.target_for(reference, 0)
    assert shape != reference.shape and colour != reference.colour
    perfect = world.render(shape, world.COLOURS[colour], reference.background, reference.centres, reference.sizes,
                           32, 32)
    score = evaluate.score_transfer(reference, perfect, shape, colour)
    assert score.fidelity == pytest.approx(1.0, abs=0.01)
    assert (score.target_colour, score.target_shape, score.leaked, score.found) == (True, True, False, True)


def test_a_copy_of_the_reference_is_leakage_and_a_still_object_transfers_nothing():
    reference = world.make_clip("square", "red", world.RANDOM, frames=8, seed=3)
    copy = evaluate.score_transfer(reference, reference.frames, "circle", "blue")
    assert copy.leaked and not copy.target_colour and copy.fidelity == pytest.approx(1.0)
    still = world.make_clip("circle", "blue", "zoom in", frames=8, seed=1)  # the centre does not move
    assert evaluate.score_transfer(reference, still.frames, "circle", "blue").fidelity == pytest.approx(0.0, abs=0.1)
    empty = np.full_like(reference.frames, 0.1)
    lost = evaluate.score_transfer(reference, empty, "circle", "blue")
    assert (lost.fidelity, lost.found, lost.target_colour) == (0.0, False, False)


def test_caption_following_tracks_one_clip_per_caption_and_seed(trained_briefly):
    backbone = load_backbone(trained_briefly)
    results = evaluate.caption_following(backbone, seeds=[0], motions=["left"], steps=2, batch=8)
    assert [(r.shape, r.colour) for r in results] == [(s, c) for c in world.COLOURS for s in world.SHAPES]
    assert all(r.track.centres.shape == (model.FRAMES, 2) for r in results)


def test_a_batch_draws_the_same_noise_for_a_seed_whatever_else_is_in_it(trained_briefly):
    backbone = load_backbone(trained_briefly)
    alone = evaluate.generate_batch(backbone, ["a red circle"], [7], steps=2)
    together = evaluate.generate_batch(backbone, ["a blue star", "a red circle"], [3, 7], steps=2)
    np.testing.assert_allclose(together[1], alone[0], atol=1e-5)


# --- the shipped model -----------------------------------------------------------------------------


def test_the_shipped_model_draws_the_colour_and_shape_it_is_asked_for():
    """A regression guard on the weights in the repository (``benchmarks/toy_model.py`` measures all
    240 captions). Motion words are not asserted: the shipped model does not follow them yet (see
    BENCHMARKS.md)."""
    backbone = load_backbone(SHIPPED)
    cases = [(s, c) for c in world.COLOURS for s in world.SHAPES]
    clips = evaluate.generate_batch(backbone, [f"a {c} {s} moving right" for s, c in cases],
                                    list(range(len(cases))), steps=20)
    tracks = [evaluate.tracker.track(clip) for clip in clips]
    colour = np.mean([t.colour == c for t, (_, c) in zip(tracks, cases)])
    shape = np.mean([t.shape == s for t, (s, _) in zip(tracks, cases)])
    assert colour >= 0.9, colour
    assert shape >= 0.9, shape
    assert all(t.found.all() for t in tracks), "every clip should hold one object in every frame"


def test_the_shipped_model_keeps_a_shape_it_is_shown_and_draws_shapes_of_its_own():
    """Where a model loses shapes (``benchmarks/toy_shapes.py``): this one keeps each shape through its
    VAE and in its clean-clip estimate from half-noised clips, and without a prompt draws more than one."""
    backbone = load_backbone(SHIPPED)
    clips = [world.make_clip(shape, "red", "left", model.FRAMES, model.WIDTH, model.HEIGHT,
                             seed=train_model.HELD_OUT_SEEDS + 7100 + k)
             for k, shape in enumerate(world.SHAPES)]
    assert evaluate.shapes_kept(backbone, clips) == [True] * len(clips)
    assert evaluate.shapes_kept(backbone, clips, t=500) == [True] * len(clips)
    counts = evaluate.unconditional_shapes(backbone, range(8), steps=20)
    assert sum(counts.values()) == 8 and set(counts) == {*world.SHAPES, ""}
    assert sum(1 for shape in world.SHAPES if counts[shape]) >= 2, counts
