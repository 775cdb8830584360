"""Every node has a help page where ComfyUI's frontend looks for one: ``docs/<node id>.md`` in the
pack's web directory (``WEB_DIRECTORY`` in ``__init__.py``; frontend 1.32's NodeHelpService fetches
``/extensions/<pack>/docs/<id>/<locale>.md``, then ``/extensions/<pack>/docs/<id>.md``). Each page
is titled with the node's display name and covers every input and output by name."""

import json
import re

import pytest

from support.comfy_host import REPO_ROOT

PUBLIC_INTERFACE = json.loads((REPO_ROOT / "tests" / "host" / "public_interface.json").read_text())
SECTIONS = ["## Inputs", "## Outputs", "## Tip"]


def help_folder(pack):
    return REPO_ROOT / pack.WEB_DIRECTORY / "docs"


def test_every_node_has_a_page_and_every_page_a_node(pack):
    ids = {cls.GET_SCHEMA().node_id for cls in pack.nodes.NODE_CLASSES}
    assert ids == set(PUBLIC_INTERFACE)
    assert {path.stem for path in help_folder(pack).glob("*.md")} == ids
    assert not [path for path in (REPO_ROOT / pack.WEB_DIRECTORY).rglob("*") if path.suffix == ".js"], \
        "help pages only: a .js file there would run in every user's frontend"


@pytest.mark.parametrize("node_id", sorted(PUBLIC_INTERFACE))
def test_each_page_names_the_node_its_inputs_and_outputs(pack, node_id):
    (cls,) = [cls for cls in pack.nodes.NODE_CLASSES if cls.GET_SCHEMA().node_id == node_id]
    schema = cls.GET_SCHEMA()
    page = (help_folder(pack) / f"{node_id}.md").read_text()
    assert page.splitlines()[0] == f"# {schema.display_name}"
    assert [line for line in page.splitlines() if line.startswith("## ")] == SECTIONS
    inputs, outputs = page.split("## Inputs")[1].split("## Outputs")
    described = set(re.findall(r"\*\*(\w+)\*\*", inputs))
    assert described == {item.id for item in schema.inputs}, "every input, and only inputs, by name"
    assert set(re.findall(r"\*\*(\w+)\*\*", outputs.split("## Tip")[0])) == {item.id for item in schema.outputs}
