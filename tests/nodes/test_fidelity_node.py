"""Motion Fidelity as a node class: what execute returns and shows, and how it refuses bad frames."""

import pytest

from support.motion_clips import pan


@pytest.fixture
def node(pack):
    return pack.nodes.evaluation.MotionFidelity


def test_execute_returns_both_scores_and_shows_them_on_the_node(node):
    reference = pan((3, 0), size=96)
    output = node.execute(reference, pan((0, -3), size=64, seed=2))  # a right angle: 0
    score, symmetric = output.args
    assert isinstance(score, float) and score == pytest.approx(0.0, abs=0.05)
    assert symmetric == pytest.approx(0.0, abs=0.05)
    (text,) = output.ui.as_dict()["text"]
    assert text.startswith(f"motion fidelity {score:.3f} (symmetric {symmetric:.3f}; moving tracks:")

    same, same_symmetric = node.execute(reference, pan((3, 0), size=64, seed=2)).args
    assert same > 0.99 and same_symmetric > 0.99


def test_the_schema_names_its_outputs_and_runs_unconnected(node):
    schema = node.GET_SCHEMA()
    assert schema.node_id == "MTX_MotionFidelity" and schema.display_name == "Motion Fidelity"
    assert [o.display_name for o in schema.outputs] == ["motion_fidelity", "symmetric_fidelity"]
    assert schema.is_output_node, "the score shows on the node without anything connected"


def test_a_single_image_is_refused_naming_the_input(node):
    reference = pan((3, 0), size=64)
    with pytest.raises(ValueError, match=r"^reference_frames: 1 frame\(s\): motion needs at least 2"):
        node.execute(reference[:1], reference)
