"""Every UI-format workflow opened in ComfyUI's real frontend (the comfyui-frontend-package the test
server serves), in headless Chromium driven by Playwright: fetched from the pack's templates route as
the templates dialog does, loaded, checked for missing nodes and broken links, compared with its
API-format twin through the frontend's own graph-to-prompt conversion, and photographed.

Screenshots go to the test's temporary folder, or to ``$MTX_SCREENSHOTS`` when set:

    MTX_SCREENSHOTS=docs/workflows bash scripts/test.sh tests/host/test_workflows_in_browser.py
"""

import importlib.metadata
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from support.comfy_host import PACK_FOLDER_NAME, REPO_ROOT, host_source, host_version
from support.workflow_format import declared_inputs, without_meta

WORKFLOWS = REPO_ROOT / "workflows"
UI_FILES = sorted(WORKFLOWS.glob("*.json"))


def frontend_mismatch() -> str | None:
    """Why the installed frontend is not the one the test host asks for, or None. The environment
    holds 0.3.75's frontend (1.32.9); ComfyUI 0.33 asks for 1.49.6 and its nodes (SaveVideo's dynamic
    format) need it: this test judges the frontend the host ships with, so it skips elsewhere."""
    match = re.search(r"^comfyui-frontend-package==(\S+)", (host_source() / "requirements.txt").read_text(), re.M)
    installed = importlib.metadata.version("comfyui-frontend-package")
    if match and match.group(1) != installed:
        return f"the frontend installed is {installed}, this host ({host_version()}) asks for {match.group(1)}"
    return None


pytestmark = pytest.mark.skipif(frontend_mismatch() is not None, reason=str(frontend_mismatch()))
VIEWPORT = {"width": 1920, "height": 1200}

LOAD_AND_CHECK = """async ([url, name]) => {
  const workflow = await (await fetch(url)).json();
  await window.app.loadGraphData(workflow, true, true, name);
  await new Promise(resolve => setTimeout(resolve, 500));
  const graph = window.app.graph;
  const links = graph.links instanceof Map ? Array.from(graph.links.values()) : Object.values(graph.links);
  const broken = [];
  for (const link of links) {
    const origin = graph.getNodeById(link.origin_id), target = graph.getNodeById(link.target_id);
    const input = target?.inputs?.[link.target_slot], output = origin?.outputs?.[link.origin_slot];
    if (!origin || !target || !input || !output) { broken.push(`link ${link.id}: an end is missing`); continue; }
    if (input.link !== link.id) broken.push(`link ${link.id}: ${target.type}.${input.name} does not point back`);
    if (!(output.links || []).includes(link.id)) broken.push(`link ${link.id}: ${origin.type} output does not list it`);
    if (!window.LiteGraph.isValidConnection(output.type, input.type))
      broken.push(`link ${link.id}: ${output.type} into ${target.type}.${input.name} (${input.type})`);
  }
  for (const node of graph.nodes)
    for (const input of node.inputs || [])
      if (input.link != null && !links.some(link => link.id === input.link))
        broken.push(`${node.type}.${input.name} points at missing link ${input.link}`);
  const prompt = await window.app.graphToPrompt();
  return {
    nodes: graph.nodes.length,
    missing: graph.nodes.filter(n => !window.LiteGraph.registered_node_types[n.type]).map(n => n.type),
    errors: graph.nodes.filter(n => n.has_errors).map(n => n.type),
    dialogs: Array.from(document.querySelectorAll('.p-dialog')).map(d => d.innerText.slice(0, 300)),
    broken,
    output: prompt.output,
  };
}"""

FIT_WHOLE_GRAPH = """() => {
  const canvas = window.app.canvas, nodes = window.app.graph.nodes;
  const left = Math.min(...nodes.map(n => n.pos[0])), top = Math.min(...nodes.map(n => n.pos[1] - 40));
  const right = Math.max(...nodes.map(n => n.pos[0] + n.size[0])), bottom = Math.max(...nodes.map(n => n.pos[1] + n.size[1]));
  const margin = 110;  // the banner, tabs and run button float over the canvas's top
  const width = canvas.canvas.clientWidth, height = canvas.canvas.clientHeight - margin;
  const scale = 0.97 * Math.min(width / (right - left), height / (bottom - top));
  canvas.ds.scale = scale;
  canvas.ds.offset = [-left + (width / scale - (right - left)) / 2,
                      -top + margin / scale + (height / scale - (bottom - top)) / 2];
  canvas.setDirty(true, true);
}"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium is not installed: scripts/test.sh installs Debian's chromium package (apt-get)")
    return found


@pytest.fixture(scope="module")
def page(comfy):
    from playwright.sync_api import sync_playwright

    # The first visit opens the templates dialog over the canvas; a returning user's setting skips it.
    comfy_settings = comfy.get("/settings").json()
    if not comfy_settings.get("Comfy.TutorialCompleted"):
        import requests

        requests.post(f"{comfy.url}/settings/Comfy.TutorialCompleted", json=True, timeout=30).raise_for_status()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        tab = browser.new_page(viewport=VIEWPORT)
        errors = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(comfy.url)
        tab.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=120_000)
        tab.errors = errors
        yield tab
        browser.close()


def screenshot_folder(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("MTX_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_template(page, name: str) -> dict:
    return page.evaluate(LOAD_AND_CHECK, [f"/api/workflow_templates/{PACK_FOLDER_NAME}/{name}.json", name])


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_each_workflow_opens_in_the_real_frontend_without_missing_nodes_or_broken_links(comfy, page, path, tmp_path):
    loaded = open_template(page, path.stem)
    assert loaded["nodes"] == len(json.loads(path.read_text())["nodes"])
    assert loaded["missing"] == [] and loaded["errors"] == [], loaded
    assert loaded["broken"] == []
    assert loaded["dialogs"] == [], "no missing-nodes (or any other) dialog"
    assert page.errors == [], "no uncaught script error"

    twin = without_meta(json.loads((WORKFLOWS / "api" / path.name).read_text()))
    assert declared_inputs(loaded["output"], comfy.object_info()) == twin, "the frontend queues the API twin"

    page.evaluate(FIT_WHOLE_GRAPH)
    page.wait_for_timeout(300)
    shot = screenshot_folder(tmp_path) / f"{path.stem}.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000, "a screenshot of a drawn graph, not a blank page"


def test_the_check_reports_a_missing_node_and_its_dialog(comfy, page, tmp_path):
    broken = json.loads(UI_FILES[0].read_text())
    broken["nodes"][1]["type"] = "SomeoneElsesNode"
    target = comfy.root / "custom_nodes" / PACK_FOLDER_NAME / "workflows" / "zz_missing_node.json"
    target.write_text(json.dumps(broken))
    try:
        loaded = open_template(page, "zz_missing_node")
    finally:
        target.unlink()
        page.keyboard.press("Escape")
    assert loaded["missing"] == ["SomeoneElsesNode"]
    assert any("missing nodes" in dialog for dialog in loaded["dialogs"])

