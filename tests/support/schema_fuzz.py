"""Graphs whose widget values are drawn inside the schema a running ComfyUI server declares, and the
rule their runs are held to (the fuzz tier: ``tests/host/test_fuzz_in_host.py``).

The schema is read from ``GET /object_info``, never from the pack's code, so the values are exactly
those a user's canvas or script can send. Each input has a short list of *cases* (a number's
minimum, maximum and values between them on its ``step``, every combo option, both booleans, a pool
of awkward strings); :func:`draw_plan` puts every case of every input into one of a node's graphs,
in a seeded random combination, and ordinary values around it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from motion_core import errors
from support.comfy_host import ComfyHost, PromptRejected

PRIMITIVES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
"""Widget types, whose values a graph holds; every other type is a socket, fed by another node."""

STRINGS = (
    "",
    " \n\t ",
    "a square moving to the left, " * 40,  # ~1 200 characters: a long prompt or a pasted paragraph
    "ä 動き 🎥 e\u0301 \u200b\u202eright-to-left",  # accents, CJK, emoji, combining mark, zero width, RTL override
    "nul\x00byte",
    "../outside/../../name",
    "1, 0.5, -2, nan, inf",
)
"""Text a user or a script can type into any STRING widget (besides the input's own default)."""

ABSENT = object()
"""The case of an optional input left unconnected (not in the graph at all)."""

SUMMARY: list[str] = []
"""Lines the fuzz tier reports at the end of the pytest session (``tests/host/conftest.py``)."""

BETWEEN = 2
"""How many values strictly between the minimum and the maximum each number input is given."""


@dataclass(frozen=True)
class Input:
    """One input of a node as ``/object_info`` declares it."""

    node: str
    name: str
    kind: str
    """INT, FLOAT, STRING, BOOLEAN, COMBO, or a socket type such as ``MTX_LATENTS``."""
    options: dict = field(hash=False)
    """The declaration's options: ``min``, ``max``, ``step``, ``default``, ``options`` (combos)."""
    optional: bool

    @property
    def is_widget(self) -> bool:
        return self.kind in PRIMITIVES

    @property
    def key(self) -> tuple[str, str]:
        return self.node, self.name


def node_inputs(node: str, info: dict) -> list[Input]:
    """Every input of ``node`` (its ``/object_info`` entry ``info``), required then optional, in order."""
    found = []
    for section in ("required", "optional"):
        declared = info["input"].get(section, {})
        for name in info.get("input_order", {}).get(section, list(declared)):
            kind, *rest = declared[name]
            options = dict(rest[0]) if rest else {}
            if isinstance(kind, list):  # the V1 way of declaring a combo: the option list as the type
                kind, options["options"] = "COMBO", kind
            found.append(Input(node, name, kind, options, section == "optional"))
    return found


@dataclass
class Draws:
    """What one input is given over a node's graphs: each of ``cases`` once (its edges and every
    option), and ``ordinary()`` in the others, so that one hostile value does not hide the rest."""

    cases: list
    ordinary: Callable[[], object]


def widget_draws(item: Input, rng: random.Random, cap: float | None = None) -> Draws:
    """The cases of widget ``item``: both booleans, every combo option, the input's default and each
    of :data:`STRINGS`, a number's minimum, maximum (``cap`` where one is set) and values between.
    Otherwise: a random option or boolean, the default string, a number's default (at most ``cap``)
    or a random number in range.

    Raises:
        ValueError: a number without declared bounds, or a combo without options (nothing to draw from).
    """
    options = item.options
    if item.kind in ("BOOLEAN", "COMBO"):
        cases = [True, False] if item.kind == "BOOLEAN" else list(options.get("options") or [])
        if not cases:
            raise ValueError(f"{item.node}.{item.name} offers no option: give the fuzz a file to list there")
        return Draws(cases, lambda: rng.choice(cases))
    if item.kind == "STRING":
        default = options.get("default", "")
        return Draws([default, *(text for text in STRINGS if text != default)], lambda: default)
    if "min" not in options or "max" not in options:
        raise ValueError(f"{item.node}.{item.name} declares no min/max: the fuzz cannot tell what is allowed")
    low, high = options["min"], options["max"] if cap is None else min(options["max"], cap)
    step, usual = options.get("step"), min(options.get("default", low), high)

    def ordinary():  # the default half of the time: a range far larger than what fits in context
        if rng.random() < 0.5:  # (anchor_frame up to 100 000 on an 8-frame clip) would hide the rest
            return usual
        return (numbers_between(item.kind, low, high, step, rng, 1) or [low])[0]

    return Draws([low, high, *numbers_between(item.kind, low, high, step, rng, BETWEEN)], ordinary)


def numbers_between(kind: str, low: float, high: float, step: float | None, rng: random.Random,
                    count: int) -> list:
    """Up to ``count`` values strictly between ``low`` and ``high``, on ``low + k·step`` where a step
    is declared (ints: whole numbers)."""
    if kind == "INT":
        step = int(step or 1)
        slots = (high - low) // step - 1
        return [low + step * rng.randint(1, slots) for _ in range(count)] if slots >= 1 else []
    if step:
        slots = math.floor((high - low) / step + 1e-9) - 1
        return [round(low + step * rng.randint(1, slots), 10) for _ in range(count)] if slots >= 1 else []
    return [round(rng.uniform(low, high), 6) for _ in range(count)]


def presence_draws(item: Input, rng: random.Random) -> Draws:
    """An optional input is absent (unconnected, unset) in some graphs; a required one never."""
    return Draws([True, False], lambda: rng.random() < 0.5) if item.optional else Draws([True], lambda: True)


def draw_plan(draws: dict[str, Draws], count: int, rng: random.Random) -> list[dict[str, object]]:
    """``count`` graphs' values: each input's cases in distinct random graphs, ordinary values in the
    rest (``count`` must be at least the longest list of cases)."""
    plan = [{name: input_draws.ordinary() for name, input_draws in draws.items()} for _ in range(count)]
    for name, input_draws in draws.items():
        for index, case in zip(rng.sample(range(count), len(input_draws.cases)), input_draws.cases):
            plan[index][name] = case
    return plan


class Graph:
    """An API-format graph under construction; nodes get readable ids, and the same upstream node
    asked for twice is added once."""

    def __init__(self):
        self.nodes: dict[str, dict] = {}

    def add(self, node_id: str, class_type: str, **inputs) -> str:
        if node_id not in self.nodes:
            self.nodes[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id

    def preview(self, link: list) -> None:
        """Make ``link`` an output of the graph (ComfyUI runs only what leads to an output node)."""
        self.add(f"preview.{link[0]}.{link[1]}", "PreviewAny", source=link)


PACK_ERRORS = frozenset(name for name, value in vars(errors).items()
                        if isinstance(value, type) and issubclass(value, errors.MotionTransferError))
"""The pack's own exception classes (``motion_core/errors.py``): what a refused input may raise."""


def named_input(message: str, inputs: set[str]) -> str | None:
    """The input a pack message names (``"name: detail"``, or ``"a/b: detail"`` for two) if it is one
    of ``inputs``."""
    name, colon, _ = message.partition(":")
    if colon and name and all(part in inputs for part in name.split("/")):
        return name
    return None


@dataclass
class Outcome:
    """What one fuzzed graph did: ``success``, ``error``, ``rejected`` (by validation), ``interrupted``
    or ``timeout``."""

    node: str
    graph: dict
    status: str
    failing_node: str = ""
    """The id in ``graph`` of the node that raised or was refused."""
    error_type: str = ""
    message: str = ""
    seconds: float = 0.0

    @property
    def failing_type(self) -> str:
        return self.graph.get(self.failing_node, {}).get("class_type", self.failing_node)


def broken_rule(outcome: Outcome, object_info: dict) -> str | None:
    """Why ``outcome`` is not one the fuzz accepts, or None: a run succeeds, or it stops with one of the
    pack's own errors whose message starts with the name of an input that led to it: an input of the
    node that raised it or of a node upstream of that one (a Motion Objective's ``vmc_frame_stride``
    refused by the training it configures)."""
    if outcome.status == "success":
        return None
    if outcome.status in ("timeout", "interrupted"):
        return f"the run ended as {outcome.status} without being asked to"
    if outcome.status == "rejected" and outcome.error_type != "custom_validation_failed":
        return f"validation refused it before the pack's own checks: {outcome.message}"
    if outcome.status == "error":
        module, _, cls = outcome.error_type.rpartition(".")
        if not module.endswith("motion_core.errors") or cls not in PACK_ERRORS:
            return f"{outcome.failing_type} raised {outcome.error_type}, not one of the pack's errors"
    inputs = upstream_inputs(outcome.graph, outcome.failing_node, object_info)
    if named_input(outcome.message, inputs) is None:
        return f"the message does not start with an input of {outcome.failing_type} or of a node upstream of it"
    return None


def upstream_inputs(graph: dict, node_id: str, object_info: dict) -> set[str]:
    """The input names of node ``node_id`` of ``graph`` and of every node it is fed from."""
    names, pending, seen = set(), [node_id], set()
    while pending:
        current = pending.pop()
        if current in seen or current not in graph:
            continue
        seen.add(current)
        declared = object_info.get(graph[current]["class_type"], {}).get("input", {})
        names |= {name for section in declared.values() for name in section}
        pending += [value[0] for value in graph[current]["inputs"].values() if isinstance(value, list)]
    return names


def run_outcome(host: ComfyHost, node: str, graph: dict, timeout: float, on_message=None) -> Outcome:
    """Queue ``graph`` (the fuzzed ``node`` in it) on ``host`` and say what happened; a run still going
    after ``timeout`` seconds is cancelled and counts as a ``timeout``."""
    started = time.monotonic()
    outcome = _outcome(host, node, graph, timeout, on_message)
    outcome.seconds = time.monotonic() - started
    return outcome


def _outcome(host: ComfyHost, node: str, graph: dict, timeout: float, on_message) -> Outcome:
    try:
        run = host.run(graph, timeout=timeout, on_message=on_message)
    except PromptRejected as rejected:
        for node_id, found in rejected.body.get("node_errors", {}).items():
            for error in found.get("errors", []):
                kind, details = error.get("type", ""), error.get("details", "")
                # a node's own check: "<input> - <its message>"; ComfyUI's checks: their own words
                message = details.partition(" - ")[2] if kind == "custom_validation_failed" else \
                    f"{kind}: {error.get('message')}: {details}"
                return Outcome(node, graph, "rejected", node_id, kind, message)
        return Outcome(node, graph, "rejected", "", "", str(rejected.body.get("error")))
    except TimeoutError as late:
        host.interrupt()
        return Outcome(node, graph, "timeout", "", "", str(late)[:300])
    if run.status == "error":
        error = run.error
        return Outcome(node, graph, "error", error.get("node_id", ""), error.get("exception_type", ""),
                       error.get("exception_message", "").strip())
    return Outcome(node, graph, run.status)
