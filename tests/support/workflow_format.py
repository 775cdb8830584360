"""Read a UI-format workflow the way ComfyUI's frontend does when it queues it, to compare it with
its API-format twin: independent of ``scripts/make_workflows.py``, which writes both.

The frontend's rules (litegraph schema 0.4, frontend 1.x): ``widgets_values`` holds one value per
widget input of the node's schema, in ``input_order`` (required, then optional), each followed by
the value of its "control after generate" widget when it has one; a linked input takes its source
``[node id, output slot]`` from the ``links`` table instead; nodes that exist only in the frontend
(notes) and muted or bypassed nodes are not sent. A workflow saved before a node gained optional
inputs (ComfyUI 0.33's ``CreateVideo.bit_depth``) has no values for them: they keep their defaults,
as the server does for an API graph without them, so they are left out here.
"""

from __future__ import annotations

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
FRONTEND_ONLY_NODES = frozenset({"Note", "MarkdownNote"})
ACTIVE_MODE = 0


def _specs(schema: dict, with_section: bool = False) -> list[tuple]:
    """``(name, type, options)`` of each input in order (``+ (section,)``: "required" or "optional")."""
    specs = []
    for section in ("required", "optional"):
        for name in schema.get("input_order", {}).get(section, list(schema["input"].get(section, {}))):
            spec = schema["input"][section][name]
            specs.append((name, "COMBO" if isinstance(spec[0], list) else spec[0], spec[1] if len(spec) > 1 else {},
                          *((section,) if with_section else ())))
    return specs


def _control_widget(name: str, options: dict) -> bool:
    return bool(options.get("control_after_generate", name in ("seed", "noise_seed")))


def dynamic_inputs(workflow: dict, object_info: dict) -> list[str]:
    """``Node.input`` of the inputs of a UI workflow's nodes that are V3 dynamic inputs on this server
    (ComfyUI 0.33's ``SaveVideo.format`` is a ``COMFY_DYNAMICCOMBO_V3``): their widgets follow the selected
    option, which this reading does not model (the browser test reads them with the real frontend)."""
    found = []
    for node in workflow["nodes"]:
        for name, kind, _ in _specs(object_info.get(node["type"], {"input": {}})):
            if kind.startswith("COMFY_DYNAMIC"):
                found.append(f"{node['type']}.{name}")
    return sorted(set(found))


class UnknownNode(ValueError):
    """A UI workflow names a node type the server does not have (the frontend's "missing nodes")."""


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """``{node id: {"class_type", "inputs"}}`` of the nodes the frontend would queue."""
    sources = {link[0]: (str(link[1]), link[2]) for link in workflow["links"]}
    graph = {}
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY_NODES or node.get("mode", ACTIVE_MODE) != ACTIVE_MODE:
            continue
        if node["type"] not in object_info:
            raise UnknownNode(f"node {node['id']} is a {node['type']!r}, which the server does not have")
        values = list(node.get("widgets_values") or [])
        inputs = {}
        for name, kind, options, section in _specs(object_info[node["type"]], with_section=True):
            if kind in WIDGET_TYPES:
                if not values and section == "optional":
                    continue
                if not values:
                    raise ValueError(f"node {node['id']} ({node['type']}) has no widget value for {name!r}")
                inputs[name] = values.pop(0)
                if _control_widget(name, options):
                    values.pop(0)
        for entry in node.get("inputs", []):
            if entry.get("link") is not None:
                inputs[entry["name"]] = list(sources[entry["link"]])
        if values:
            raise ValueError(f"node {node['id']} ({node['type']}) has {len(values)} widget value(s) left over")
        graph[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return graph


def without_meta(api_workflow: dict) -> dict:
    """An API-format graph without the ``_meta`` titles, which do not change what runs."""
    return {key: {"class_type": node["class_type"], "inputs": node["inputs"]} for key, node in api_workflow.items()}


def declared_inputs(api_workflow: dict, object_info: dict) -> dict:
    """Keep only the inputs each node's schema declares: the server ignores the others (the
    frontend sends some of its own, e.g. a video upload's preview widget)."""
    kept = {}
    for key, node in without_meta(api_workflow).items():
        names = {name for name, _, _ in _specs(object_info[node["class_type"]])}
        kept[key] = {"class_type": node["class_type"],
                     "inputs": {name: value for name, value in node["inputs"].items() if name in names}}
    return kept
