"""Objective specs: JSON round trip, defaults from the papers' releases, clear errors naming the input."""

import json

import pytest

from motion_core.errors import InputError
from motion_core.objectives import SPEC_VERSION, ObjectiveSpec, build_objective, parse_level_weights

CUSTOM = ObjectiveSpec(base_loss="motion_director", vmc_variant="l2", vmc_frame_stride=2, debias_beta=0.5,
                       sma_global_weight=1.0, sma_global_levels=3, sma_global_wavelet="db2",
                       sma_global_level_weights=(1.0, 0.5, 0.25, 0.125), sma_local_weight=0.08,
                       sma_local_delta=0.1, sma_local_base=2.0, sma_local_phase="raw", x0_estimate="scaled")


@pytest.mark.parametrize("spec", [ObjectiveSpec(), CUSTOM], ids=["default", "custom"])
def test_round_trips_through_json(spec):
    text = json.dumps(spec.to_dict())
    assert ObjectiveSpec.from_dict(json.loads(text)) == spec
    assert ObjectiveSpec.from_json(spec.to_json()) == spec
    assert json.loads(text)["version"] == SPEC_VERSION


def test_every_option_survives_the_round_trip():
    """CUSTOM differs from the default in every field, so a field the dict form dropped would show."""
    default = ObjectiveSpec().to_dict()
    custom = CUSTOM.to_dict()
    assert [k for k in default if k != "version" and default[k] == custom[k]] == []


def test_defaults_are_the_released_settings_for_eight_frames():
    spec = ObjectiveSpec()
    assert (spec.base_loss, spec.vmc_variant, spec.vmc_frame_stride) == ("vmc", "released", 1)
    assert (spec.sma_global_weight, spec.sma_local_weight) == (0.4, 0.2)
    assert (spec.sma_global_levels, spec.sma_global_wavelet, spec.sma_local_delta) == (2, "haar", 0.05)
    assert spec.level_weights() == (1.0, 1.0, 1.0)


def test_missing_fields_take_defaults():
    assert ObjectiveSpec.from_dict({"version": 1, "base_loss": "mse"}) == ObjectiveSpec(base_loss="mse")


def error_of(call) -> InputError:
    with pytest.raises(InputError) as caught:
        call()
    return caught.value


def test_unknown_objective_name_is_a_clear_error():
    err = error_of(lambda: ObjectiveSpec(base_loss="vmc2").validate())
    assert err.input_name == "base_loss"
    assert "vmc2" in str(err) and "motion_director" in str(err) and "mse" in str(err)
    assert error_of(lambda: build_objective({"version": 1, "base_loss": "tav"})).input_name == "base_loss"


@pytest.mark.parametrize("field", ["sma_global_weight", "sma_local_weight", "debias_beta", "sma_local_delta",
                                   "sma_local_base"])
@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), "1", True])
def test_negative_or_non_numeric_weight_is_a_clear_error(field, value):
    err = error_of(lambda: ObjectiveSpec(**{field: value}).validate())
    assert err.input_name == field and ">= 0" in str(err)


@pytest.mark.parametrize("field, value", [("sma_global_levels", 0), ("sma_global_levels", 2.0),
                                          ("vmc_frame_stride", 0), ("vmc_frame_stride", True)])
def test_counts_must_be_positive_whole_numbers(field, value):
    assert error_of(lambda: ObjectiveSpec(**{field: value}).validate()).input_name == field


@pytest.mark.parametrize("field, value", [("vmc_variant", "cosine"), ("sma_global_wavelet", "morl"),
                                          ("sma_local_phase", "unwrapped"), ("x0_estimate", "clamped")])
def test_unknown_choices_name_the_input(field, value):
    err = error_of(lambda: ObjectiveSpec(**{field: value}).validate())
    assert err.input_name == field and repr(value) in str(err)


def test_level_weights_must_match_the_levels():
    err = error_of(lambda: ObjectiveSpec(sma_global_levels=2, sma_global_level_weights=(1.0, 1.0)).validate())
    assert err.input_name == "sma_global_level_weights" and "3" in str(err)
    assert error_of(lambda: ObjectiveSpec(sma_global_level_weights=(1.0, -1.0, 1.0)).validate()).input_name == \
        "sma_global_level_weights"


@pytest.mark.parametrize("frames, levels, ok", [(8, 2, True), (8, 3, True), (8, 4, False), (5, 2, True), (5, 3, False),
                                                (16, 4, True), (16, 5, False), (2, 1, False), (3, 1, True)])
def test_levels_too_many_for_the_frame_count_is_a_clear_error(frames, levels, ok):
    spec = ObjectiveSpec(sma_global_levels=levels)
    if ok:
        spec.check_frames(frames)
    else:
        err = error_of(lambda: spec.check_frames(frames))
        assert err.input_name == "sma_global_levels" and f"{frames} frames" in str(err) and "at most" in str(err)


def test_level_check_is_skipped_when_the_wavelet_term_is_off():
    """5 levels need 33 frames: refused for 8 with the wavelet term on, accepted with it off, where the
    objective then runs on 8 frames without a wavelet term."""
    from motion_core.objectives import build_objective
    from motion_core.testing import random_step

    assert error_of(lambda: ObjectiveSpec(sma_global_levels=5).check_frames(8)).input_name == "sma_global_levels"
    off = ObjectiveSpec(sma_global_levels=5, sma_global_weight=0.0)
    off.check_frames(8)
    terms = build_objective(off)(random_step((1, 4, 8, 4, 4))).terms
    assert "sma_global" not in terms and "sma_local" in terms


def test_stride_must_leave_a_frame_pair():
    err = error_of(lambda: ObjectiveSpec(vmc_frame_stride=4, sma_global_weight=0).check_frames(4))
    assert err.input_name == "vmc_frame_stride"
    ObjectiveSpec(vmc_frame_stride=4, sma_global_weight=0).check_frames(5)


@pytest.mark.parametrize("data, name", [
    ({"base_loss": "vmc"}, "objective"),  # no version
    ({"version": SPEC_VERSION + 1}, "objective"),
    ({"version": 1, "sma_threshold": 0.5}, "sma_threshold"),
    ("vmc", "objective"),
])
def test_bad_dicts_are_clear_errors(data, name):
    assert error_of(lambda: ObjectiveSpec.from_dict(data)).input_name == name


def test_bad_json_is_a_clear_error():
    assert error_of(lambda: ObjectiveSpec.from_json("{version: 1")).input_name == "objective"


@pytest.mark.parametrize("text, weights", [("", ()), ("  ", ()), ("1, 0.5, 0.25", (1.0, 0.5, 0.25)),
                                           ("1 2\t3", (1.0, 2.0, 3.0))])
def test_parse_level_weights(text, weights):
    assert parse_level_weights(text) == weights


def test_parse_level_weights_rejects_words():
    err = error_of(lambda: parse_level_weights("1, one, 1"))
    assert err.input_name == "sma_global_level_weights" and "'1, one, 1'" in str(err)
