"""Every node's outputs as the canvas shows them: a readable name on each socket.

ComfyUI labels an output with its ``display_name``, or else with its type (IMAGE, INT, MTX_LATENTS);
saved workflows address outputs by slot, so ids and order stay as they are.
"""

import json

from support.comfy_host import REPO_ROOT


def test_every_output_is_named_after_its_id(pack):
    for node in pack.nodes.NODE_CLASSES:
        schema = node.GET_SCHEMA()
        for output in schema.outputs:
            assert output.display_name == output.id, f"{schema.node_id} output {output.id}"


def test_load_reference_video_outputs_read_as_vhs_users_know_them(pack):
    outputs = pack.nodes.video.LoadReferenceVideo.GET_SCHEMA().outputs
    assert [(o.id, o.display_name) for o in outputs] == [
        ("frames", "frames"), ("frame_count", "frame_count"), ("fps", "fps"), ("video_info", "video_info")]


def test_the_workflows_show_the_same_output_names(pack):
    names = {node.GET_SCHEMA().node_id: [o.display_name for o in node.GET_SCHEMA().outputs]
             for node in pack.nodes.NODE_CLASSES}
    for path in sorted((REPO_ROOT / "workflows").glob("*.json")):
        for node in json.loads(path.read_text())["nodes"]:
            if node["type"] in names:
                shown = [output["name"] for output in node.get("outputs", [])]
                assert shown == names[node["type"]], f"{path.name}: {node['type']}"
