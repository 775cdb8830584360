"""Motion Objective as a node class: its V3 schema and the spec execute() outputs."""

import json

import pytest

from motion_core.objectives import ObjectiveSpec

SPEC_FIELDS = [name for name in ObjectiveSpec().to_dict() if name != "version"]


@pytest.fixture
def node(pack):
    return pack.nodes.objectives.MotionObjective


@pytest.fixture
def defaults(node):
    return {i.id: i.default for i in node.GET_SCHEMA().inputs}


def test_identity_and_output(node, pack):
    info = node.GET_NODE_INFO_V1()
    assert node in pack.nodes.NODE_CLASSES
    assert (info["name"], info["display_name"], info["category"]) == ("MTX_MotionObjective", "Motion Objective",
                                                                       "motion transfer")
    assert info["output"] == ["MTX_OBJECTIVE"] and info["output_tooltips"][0]


def test_inputs_are_the_spec_fields_in_order_with_its_defaults_and_tooltips(node):
    info = node.GET_NODE_INFO_V1()
    required = info["input"]["required"]
    assert info["input_order"]["required"] == SPEC_FIELDS
    spec_defaults = ObjectiveSpec().to_dict()
    for name, (kind, options) in required.items():
        assert options.get("tooltip"), name
        want = "" if name == "sma_global_level_weights" else spec_defaults[name]
        assert options["default"] == want, name
        if kind == "COMBO":
            assert want in options["options"], name
    # docs/METHODS.md §2: λ_g 0.4, λ_l 0.2, J = 2 for 8 frames, Haar, δ = 0.05.
    assert [required[n][1]["default"] for n in ("sma_global_weight", "sma_local_weight", "sma_global_levels",
                                                "sma_global_wavelet", "sma_local_delta")] == [0.4, 0.2, 2, "haar", 0.05]


def test_default_inputs_give_the_default_spec(node, defaults):
    assert node.execute(**defaults).args[0] == ObjectiveSpec().to_dict()


def test_outputs_a_json_spec_carrying_every_input(node, defaults):
    changes = dict(base_loss="motion_director", vmc_variant="paper", vmc_frame_stride=2, debias_beta=0.5,
                   sma_global_weight=1.0, sma_global_levels=3, sma_global_wavelet="db2",
                   sma_global_level_weights="1, 0.5, 0.5, 0.25", sma_local_weight=0.08, sma_local_delta=0.1,
                   sma_local_base=2.0, sma_local_phase="raw", x0_estimate="released")
    assert set(changes) == set(SPEC_FIELDS)
    output = node.execute(**defaults | changes).args[0]
    assert ObjectiveSpec.from_dict(json.loads(json.dumps(output))) == ObjectiveSpec(
        **changes | dict(sma_global_level_weights=(1.0, 0.5, 0.5, 0.25)))


@pytest.mark.parametrize("text, shown", [("1, 1", "3"), ("one", "'one'")])
def test_bad_level_weights_are_reported_by_input_name(pack, node, defaults, text, shown):
    with pytest.raises(pack.motion_core.errors.InputError) as caught:
        node.execute(**defaults | dict(sma_global_level_weights=text))
    assert caught.value.input_name == "sma_global_level_weights" and shown in str(caught.value)
