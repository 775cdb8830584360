"""Align Pose as a node class: POSE_KEYPOINT from DWPose and OpenPose nodes in, aligned poses and images out."""

import pytest
import torch

from support.poses import STANDING, dwpose_frame, openpose_frame, walking


@pytest.fixture
def node(pack):
    return pack.nodes.edit.AlignPose


def test_the_schema_pins_its_inputs_and_names_its_outputs(node):
    schema = node.GET_SCHEMA()
    assert schema.node_id == "MTX_AlignPose" and schema.display_name == "Align Pose"
    assert [i.id for i in schema.inputs] == ["source_pose", "reference_pose", "anchor_frame", "width", "height",
                                             "size_measure"]
    assert [(o.id, o.display_name, o.io_type) for o in schema.outputs] == [
        ("aligned_pose", "aligned_pose", "POSE_KEYPOINT"), ("pose_images", "pose_images", "IMAGE")]
    assert schema.inputs[0].io_type == "POSE_KEYPOINT", "connects to comfyui_controlnet_aux's sockets"


def test_execute_aligns_an_openpose_reference_onto_a_dwpose_source(node):
    # the source (DWPose, 320x480 frames) stands still; the reference (OpenPose node, a 683x512 canvas)
    # is half the size elsewhere and walks right 4 px a frame, and shares its frames with a smaller person
    source = [dwpose_frame([(STANDING + (60, 100), ())], 320, 480)] * 3
    reference = [openpose_frame([(STANDING * 0.25, ()), (p, ())], 683, 512)
                 for p in walking(3, step=(4, 0), start=(300, 10), points=STANDING * 0.5)]
    output = node.execute(source, reference, 0, 0, 0, "torso")
    aligned, images = output.args
    assert [frame["canvas_width"] for frame in aligned] == [320] * 3 and aligned[0]["canvas_height"] == 480
    necks = [value for frame in aligned for value in frame["people"][0]["pose_keypoints_2d"][3:6]]
    assert necks == pytest.approx([160.0, 170.0, 1.0, 168.0, 170.0, 1.0, 176.0, 170.0, 1.0])
    assert images.shape == (3, 480, 320, 3) and images.dtype == torch.float32
    assert [round(float(v) * 255) for v in images[0, 170, 160]] == [255, 85, 0], "the neck's colour at the neck"
    (text,) = output.ui.as_dict()["text"]
    assert text.splitlines() == [
        "source: the only person in 3 frame(s)",
        "reference: person 2 of 2 (the largest) in 3 frame(s)",
        "reference scaled ×2.000 and moved by (-540.0, +80.0) px (torso measured in frame 0)"]

    resized = node.execute(source, reference, 0, 160, 0, "height").args[1]
    assert resized.shape == (3, 240, 160, 3)


def test_errors_name_the_node_inputs(node):
    source = [dwpose_frame([(STANDING, ())], 320, 480)]
    with pytest.raises(ValueError, match=r"^reference_pose: expected POSE_KEYPOINT"):
        node.execute(source, {"people": []}, 0, 0, 0, "torso")
    with pytest.raises(ValueError, match=r"^anchor_frame: 1 is not a frame of both clips"):
        node.execute(source, source, 1, 0, 0, "torso")
    empty = [{"people": [], "canvas_width": 320, "canvas_height": 480}]
    with pytest.raises(ValueError, match=r"^source_pose: frame 0 has no person"):
        node.execute(empty, source, 0, 0, 0, "torso")


# --- the editing graph: poses from a file, the pose ControlNet, training and the edit -------------------

def run(node, *args, **kwargs):
    with torch.inference_mode():
        return node.execute(*args, **kwargs)


@pytest.fixture(scope="module")
def edit_models(pack, tmp_path_factory):
    """A tiny AnimateDiff folder in models/diffusers and a ControlNet of its UNet in models/controlnet
    (diffusers keys; pose images at the tiny VAE's 2x), its zero convolutions given values."""
    import importlib

    import folder_paths
    from diffusers import ControlNetModel
    from safetensors.torch import save_file

    testing = importlib.import_module(f"{pack.__name__}.motion_core.testing")
    root = tmp_path_factory.mktemp("models")
    testing.write_tiny_animatediff_folder(root / "diffusers" / "tiny-animatediff")
    controlnet = ControlNetModel.from_unet(testing.tiny_unet2d(), conditioning_embedding_out_channels=(4, 8))
    with torch.no_grad():
        for module in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                       controlnet.controlnet_cond_embedding.conv_out]:
            module.weight.normal_(0, 0.2)
    (root / "controlnet").mkdir()
    save_file({k: v.contiguous() for k, v in controlnet.state_dict().items()}, root / "controlnet" / "pose.safetensors")
    for name in ("diffusers", "controlnet"):
        folder_paths.add_model_folder_path(name, str(root / name), is_default=True)
    return root


@pytest.fixture(scope="module")
def loaded(pack, edit_models):
    model = run(pack.nodes.model.LoadVideoModel, "tiny-animatediff", "fp32", "none", "sdpa", 8).args[0]
    controlnet = run(pack.nodes.edit.LoadPoseControlNet, model, "pose.safetensors").args[0]
    frames = torch.rand(4, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    latents, encoded = run(pack.nodes.model.EncodeReference, model, frames, 0, 0).args
    return model, controlnet, latents, encoded


def clip_poses(shift=0.0):
    return [dwpose_frame([(STANDING * 0.06 + (2 + shift * i, 1), ())], 16, 16) for i in range(4)]


def test_the_editing_nodes_pin_their_inputs(pack):
    edit = pack.nodes.edit
    ids = {cls.GET_SCHEMA().node_id: [i.id for i in cls.GET_SCHEMA().inputs] for cls in edit.NODES}
    assert ids["MTX_LoadPoseKeypoints"] == ["pose_file"]
    assert ids["MTX_LoadPoseControlNet"] == ["model", "controlnet_name"]
    assert ids["MTX_TrainMotionEdit"] == ["model", "controlnet", "source", "source_pose", "prompt", "subject_steps",
                                          "full_steps", "lr", "seed", "precision", "gradient_checkpointing",
                                          "subject_mask", "source_frames", "recurrent_causal_attention",
                                          "motion_attention"]
    assert ids["MTX_EditVideo"] == ["model", "controlnet", "edit", "source", "source_pose", "target_pose", "prompt",
                                    "negative_prompt", "steps", "cfg"]


def test_load_pose_keypoints_reads_what_save_pose_keypoints_writes(pack, input_dir):
    import json

    node = pack.nodes.edit.LoadPoseKeypoints
    (input_dir / "walk.json").write_text(json.dumps(clip_poses(1.0)))
    (input_dir / "broken.json").write_text("[{")
    output = node.execute("walk.json")
    assert output.args[0] == clip_poses(1.0)
    assert output.ui.as_dict()["text"] == ("4 frames: the only person in 4 frame(s)",)
    assert node.validate_inputs("walk.json") is True
    assert node.validate_inputs("missing.json").startswith("pose_file: 'missing.json' is not a .json file")
    with pytest.raises(ValueError, match="^pose_file: 'broken.json' is not a readable JSON file"):
        node.execute("broken.json")
    (input_dir / "not_poses.json").write_text("{}")
    with pytest.raises(ValueError, match="^pose_file: expected POSE_KEYPOINT"):
        node.execute("not_poses.json")


def test_train_then_edit_gives_the_source_clip_under_other_poses(pack, loaded):
    model, controlnet, latents, encoded = loaded
    edit = pack.nodes.edit
    mask = torch.zeros(4, 16, 16)
    mask[:, 4:12, 4:12] = 1
    trained, loss = run(edit.TrainMotionEdit, model, controlnet, latents, clip_poses(), "a clip", 2, 2, 1e-3, 0,
                        "auto", False, mask, encoded).args
    assert len(loss["loss"]) == 4 and trained.metadata["masked_subject"] == "true"
    assert not any(p.requires_grad for p in trained.parameters())
    edited = [run(edit.EditVideo, model, controlnet, trained, latents, clip_poses(), target, "a clip", "", 3,
                  7.5).args[0] for target in (clip_poses(), clip_poses(2.0))]
    assert edited[0].samples.shape == latents.samples.shape and not edited[0].noise
    assert (edited[0].samples - edited[1].samples).abs().max() > 1e-3
    frames = run(pack.nodes.model.DecodeVideo, model, edited[1]).args[0]
    assert frames.shape == (4, 16, 16, 3)


def test_editing_errors_name_the_node_inputs(pack, loaded):
    model, controlnet, latents, encoded = loaded
    edit = pack.nodes.edit
    with pytest.raises(ValueError, match="^source_frames: is needed with subject_mask"):
        run(edit.TrainMotionEdit, model, controlnet, latents, clip_poses(), "a clip", 1, 1, 1e-3, 0, "auto", False,
            torch.ones(4, 16, 16))
    with pytest.raises(ValueError, match="^source_pose: has 3 frames but the clip has 4"):
        run(edit.TrainMotionEdit, model, controlnet, latents, clip_poses()[:3], "a clip", 1, 1, 1e-3, 0, "auto",
            False)
    with pytest.raises(ValueError, match="^controlnet_name: 'missing.safetensors' is not in models/controlnet"):
        run(edit.LoadPoseControlNet, model, "missing.safetensors")
    assert edit.LoadPoseControlNet.validate_inputs("pose.safetensors") is True
    assert edit.LoadPoseControlNet.validate_inputs("missing.safetensors").startswith(
        "controlnet_name: 'missing.safetensors' is not in models/controlnet")


def test_the_pose_controlnet_is_in_comfyuis_memory_manager_beside_its_model(pack, loaded, monkeypatch):
    """Load Pose ControlNet enters the ControlNet in ComfyUI's loaded-model list; Train Motion Edit and
    Edit Video ask ComfyUI to load it with the model (so it is evicted and brought back like the model)."""
    import comfy.model_management

    model, controlnet, latents, _ = loaded
    memory = pack.nodes.memory

    def listed() -> bool:
        return any(getattr(entry.model.model, "weights", None) is controlnet
                   for entry in comfy.model_management.current_loaded_models if entry.model is not None)

    assert listed()
    requests, original = [], comfy.model_management.load_models_gpu

    def recording(models, *args, **kwargs):
        requests.append([getattr(m.model, "weights", None) is controlnet for m in models])
        return original(models, *args, **kwargs)

    monkeypatch.setattr(comfy.model_management, "load_models_gpu", recording)
    trained = run(pack.nodes.edit.TrainMotionEdit, model, controlnet, latents, clip_poses(), "a clip", 1, 1, 1e-3, 0,
                  "auto", False).args[0]
    comfy.model_management.unload_all_models()
    assert not listed()
    run(pack.nodes.edit.EditVideo, model, controlnet, trained, latents, clip_poses(), clip_poses(1.0), "a clip", "",
        2, 7.5)
    assert requests == [[False, True], [False, True]]  # the model, then the ControlNet beside it
    assert listed() and memory.auxiliary_patcher(controlnet, model).model.weights is controlnet
