"""The toy AnimateDiff model: how its training script builds it, and the shipped weights."""

import copy
import json
from pathlib import Path

import pytest
import torch

from motion_core.backbones import load_backbone
from motion_core.testing import tiny_unet3d
from motion_core.toy import evaluate, model, train_animatediff, world
from motion_core.toy.train_model import HELD_OUT_SEEDS

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "toy-animatediff"


def _zero_out(module: torch.nn.Module, names: tuple[str, ...]) -> None:
    """Zero the output layers of the named submodules, so that each of them adds nothing to its residual."""
    with torch.no_grad():
        for name, part in module.named_modules():
            last_layer = name.endswith("proj_out") or (isinstance(part, torch.nn.Conv3d) and ".conv4." in name)
            if last_layer and any(key in name for key in names):
                part.weight.zero_()
                part.bias.zero_()


def _image_only(unet):
    """A copy of a ``UNetMotionModel`` whose motion modules add nothing: the image model on every frame."""
    image = copy.deepcopy(unet)
    _zero_out(image, (".motion_modules.",))
    return image


# --- building the model ----------------------------------------------------------------------------


def test_the_image_model_is_the_unet3d_without_its_temporal_layers():
    unet3d = tiny_unet3d(seed=1)
    _zero_out(unet3d, ("temp_convs", "temp_attentions", "transformer_in"))  # temporal layers that add nothing
    image = train_animatediff.image_unet_from_unet3d(unet3d).eval()
    x, t, text = torch.randn(2, 4, 3, 16, 16), torch.tensor([10, 700]), torch.randn(2, 5, 32)
    with torch.no_grad():
        expected = unet3d(x, t, encoder_hidden_states=text).sample
        got = train_animatediff.call_image_unet(image, x, t, text)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert sum(p.numel() for p in image.parameters()) < sum(p.numel() for p in unet3d.parameters())


def test_fresh_motion_modules_add_nothing_and_are_all_that_the_motion_stage_trains():
    from diffusers import UNetMotionModel

    from motion_core.backbones.animatediff import AnimateDiffBackbone

    image = train_animatediff.image_unet_from_unet3d(tiny_unet3d(seed=2)).eval()
    unet = UNetMotionModel.from_unet2d(image, train_animatediff.motion_adapter_for(image)).eval()
    assert unet.config.motion_max_seq_length == 32 and unet.config.use_motion_mid_block
    x, t, text = torch.randn(1, 4, 8, 16, 16), torch.tensor([500]), torch.randn(1, 5, 32)
    with torch.no_grad():
        torch.testing.assert_close(AnimateDiffBackbone.call_denoiser(unet, x, t, text),
                                   train_animatediff.call_image_unet(image, x, t, text), atol=1e-5, rtol=1e-4)
    trained = {id(p) for p in train_animatediff.motion_parameters(unet)}
    names = [name for name, p in unet.named_parameters() if id(p) in trained]
    assert names and all(".motion_modules." in name for name in names)
    assert any(name.startswith("mid_block.") for name in names)


def test_the_training_script_writes_an_animatediff_folder(tmp_path):
    out = tmp_path / "toy-animatediff"
    assert train_animatediff.main(["--init-from", str(ROOT / "models" / "toy-t2v"), "--out", str(out),
                                   "--image-steps", "1", "--steps", "1", "--batch", "1"]) == 0
    backbone = load_backbone(out)
    assert backbone.family == "animatediff" and backbone.max_frames() == 32
    assert json.loads((out / "model_index.json").read_text())["_class_name"] == "AnimateDiffPipeline"
    record = json.loads((out / "training.json").read_text())
    assert (record["image_steps"], record["steps"], record["seed"]) == (1, 1, 0)
    assert "train_animatediff" in record["command"] and record["init_training"]["steps"] == 4000
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt"))



def test_training_the_words_continues_an_animatediff_folder_and_moves_only_text_paths_and_motion(tmp_path):
    first, out = tmp_path / "first", tmp_path / "words"
    assert train_animatediff.main(["--init-from", str(ROOT / "models" / "toy-t2v"), "--out", str(first),
                                   "--image-steps", "1", "--steps", "1", "--batch", "1"]) == 0
    assert train_animatediff.main(["--init-from", str(first), "--out", str(out), "--train-text", "--steps", "2",
                                   "--batch", "1", "--lr", "1e-2"]) == 0
    before, after = model.load_parts(first), model.load_parts(out)
    moved = {name for name, p in after["unet"].named_parameters()
             if not torch.equal(p, dict(before["unet"].named_parameters())[name])}
    assert moved and all(".motion_modules." in name or ".attn2." in name for name in moved)
    assert any(".attn2." in name for name in moved) and any(".motion_modules." in name for name in moved)
    assert any(not torch.equal(a, b) for a, b in zip(before["text_encoder"].parameters(),
                                                       after["text_encoder"].parameters()))
    assert all(torch.equal(a, b) for a, b in zip(before["vae"].parameters(), after["vae"].parameters()))
    record = json.loads((out / "training.json").read_text())
    assert record["train_text"] and record["image_steps"] == 0 and record["init_training"]["steps"] == 1

# --- the shipped model -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    return load_backbone(SHIPPED)


def test_the_shipped_model_is_an_animatediff_folder_on_animatediffs_schedule(shipped):
    assert shipped.family == "animatediff"
    assert shipped.unet.config.motion_max_seq_length == 32 and shipped.unet.config.use_motion_mid_block
    schedule = json.loads((SHIPPED / "scheduler" / "scheduler_config.json").read_text())
    assert schedule["_class_name"] == "DDIMScheduler"
    assert {k: schedule[k] for k in ("beta_schedule", "beta_start", "beta_end", "num_train_timesteps", "clip_sample",
                                     "set_alpha_to_one", "steps_offset")} == {
        "beta_schedule": "linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000,
        "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1}
    assert not list(SHIPPED.rglob("*.bin")) and (SHIPPED / "training.json").is_file()


def _noise_errors(backbone, unet, t: int, clips: int = 4) -> float:
    """ε-MSE of ``unet`` at timestep ``t`` on held-out clips with their captions."""
    references = [world.random_clip(HELD_OUT_SEEDS + 7000 + k, model.FRAMES, model.WIDTH, model.HEIGHT)
                  for k in range(clips)]
    latents = torch.cat([backbone.encode_video(world.to_image_tensor(clip)) for clip in references])
    text = backbone.encode_prompt([clip.caption for clip in references])
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
    steps = torch.full((clips,), t)
    noisy = backbone.sampling.noised(latents, noise, steps)
    with torch.no_grad():
        return (backbone.call_denoiser(unet, noisy, steps, text) - noise).pow(2).mean().item()


def test_the_shipped_motion_modules_are_trained(shipped):
    """Their output layers are not zero, they change the prediction measurably, and they predict the
    noise of held-out clips better than the image model alone where paths are decided (high noise)."""
    proj_out = [p for name, p in shipped.unet.named_parameters() if ".motion_modules." in name and "proj_out" in name]
    assert proj_out and all(p.abs().max() > 0 for p in proj_out)
    image = _image_only(shipped.unet)
    x = torch.randn(1, 4, 8, 16, 16, generator=torch.Generator().manual_seed(1))
    text, t = shipped.encode_prompt(["a red circle moving left"]), torch.tensor([800])
    with torch.no_grad():
        full, alone = shipped.call_denoiser(shipped.unet, x, t, text), shipped.call_denoiser(image, x, t, text)
    assert (full - alone).norm() / alone.norm() > 0.02  # 0.052 measured
    # ε-MSE at t = 800: 0.0039 with the motion modules, 0.0060 without (measured)
    assert _noise_errors(shipped, shipped.unet, 800) < 0.8 * _noise_errors(shipped, image, 800)


def test_colour_words_reach_the_shipped_unet_and_identical_captions_change_nothing(shipped):
    """``evaluate.word_signal`` reads as its name says: zero for one caption twice, large for a colour
    word (``benchmarks/toy_motion_words.py`` has the motion-word figures, which are small)."""
    signal = evaluate.word_signal(shipped, {"same": ("a red circle moving left",) * 2,
                                            "colour": evaluate.WORD_PAIRS["colour (red / blue)"]})
    assert signal["same"] == (0.0, 0.0)
    assert signal["colour"][0] > 0.2 and signal["colour"][1] > 0.1
    clips = [world.make_clip("star", "green", "left", model.FRAMES, model.WIDTH, model.HEIGHT, seed=HELD_OUT_SEEDS)]
    errors = evaluate.motion_phrase_errors(shipped, clips, t=800)
    assert len(errors) == 3 and all(0 < e < 1 for e in errors)
