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
