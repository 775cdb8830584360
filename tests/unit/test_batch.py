"""The batch runner's manifest, workflow and results handling, and what it does when no server answers
(the runs against a real server are in tests/host/test_batch_in_host.py)."""

import json
import socket
from pathlib import Path

import pytest

from motion_core import batch
from motion_core.errors import InputError

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = batch.read_workflow(REPO / "example_workflows" / "api" / "motion_transfer_vmc_sma.json")


def manifest(tmp_path: Path, text: str, suffix: str = ".csv") -> Path:
    path = tmp_path / f"jobs{suffix}"
    path.write_text(text)
    return path


def test_csv_columns_set_clip_prompt_seed_and_any_node_input_by_id_or_type(tmp_path):
    (job,) = batch.read_manifest(manifest(tmp_path, "job,clip,prompt,seed,5.steps,MTX_InvertVideo.prompt,7.ratio\n"
                                                    "first,a.mp4,a cat running,7,12,,0.25\n"), WORKFLOW)
    assert job.name == "first" and job.clip == tmp_path / "a.mp4"
    graph = batch.job_graph(WORKFLOW, job, "a-123.mp4")
    assert graph["1"]["inputs"]["video"] == "a-123.mp4"
    assert graph["8"]["inputs"]["prompt"] == "a cat running"
    assert graph["7"]["inputs"]["seed"] == 7 and graph["7"]["inputs"]["ratio"] == 0.25
    assert graph["5"]["inputs"]["steps"] == 12, "numbers are numbers"
    assert graph["6"]["inputs"]["prompt"] == WORKFLOW["6"]["inputs"]["prompt"], "an empty cell changes nothing"
    assert WORKFLOW["5"]["inputs"]["steps"] == 300, "the workflow itself is untouched"


def test_a_json_manifest_and_default_job_names(tmp_path):
    jobs = batch.read_manifest(manifest(tmp_path, json.dumps([{"prompt": "a"}, {"prompt": "b", "seed": 3}]), ".json"),
                               WORKFLOW)
    assert [job.name for job in jobs] == ["row1", "row2"]
    assert jobs[1].overrides == {("8", "prompt"): "b", ("7", "seed"): 3}


@pytest.mark.parametrize("text, message", [
    ("job,prompt\na,x\na,y\n", "row 2: job 'a' must be unique"),
    ("job,prompt\n../up,x\n", "row 1: job '../up' must be unique and a plain folder name"),
    ("prompt,99.steps\nx,3\n", "the workflow has no node '99'"),
    ("prompt,5.stepz\nx,3\n", "node 5 (MTX_TrainMotionAdapter) has no input 'stepz'"),
    ("prompt,colour\nx,red\n", "column 'colour' is not job, clip, prompt, seed or <node id or type>.<input>"),
    ("job\n", "has no jobs"),
])
def test_a_bad_manifest_is_refused_naming_the_row_and_column(tmp_path, text, message):
    with pytest.raises(InputError, match="--manifest") as err:
        batch.read_manifest(manifest(tmp_path, text), WORKFLOW)
    assert message in str(err.value)


def test_a_ui_format_or_missing_workflow_is_refused(tmp_path):
    with pytest.raises(InputError, match="UI-format workflow; give its API-format twin"):
        batch.read_workflow(REPO / "example_workflows" / "motion_transfer_vmc_sma.json")
    with pytest.raises(InputError, match="--workflow: .* does not exist"):
        batch.read_workflow(tmp_path / "nothing.json")


def test_the_spec_changes_with_the_row_and_the_clip_content(tmp_path):
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"one")
    (job,) = batch.read_manifest(manifest(tmp_path, "clip,prompt\na.mp4,x\n"), WORKFLOW)
    first = batch.job_spec(WORKFLOW, job)
    clip.write_bytes(b"two")
    assert batch.job_spec(WORKFLOW, job) != first
    (other,) = batch.read_manifest(manifest(tmp_path, "clip,prompt\na.mp4,y\n"), WORKFLOW)
    assert batch.job_spec(WORKFLOW, other) != batch.job_spec(WORKFLOW, job)


def test_the_results_table_round_trips(tmp_path):
    rows = {"a": batch.Result("a", "success", "1.5", "a/x.mp4;a/y.png", "", "id1", "s"),
            "b": batch.Result("b", "failed", "", "", "node 1 (X): bad, \"quoted\"\nsecond line", "id2", "t")}
    batch.write_results(tmp_path, rows)
    assert batch.read_results(tmp_path) == rows
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"], "no staging file left"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_server_is_retried_then_the_job_reported(tmp_path, monkeypatch):
    pauses = []
    monkeypatch.setattr(batch.time, "sleep", pauses.append)
    (job,) = batch.read_manifest(manifest(tmp_path, "job,prompt\nonly,x\n"), WORKFLOW)
    runner = batch.Runner(batch.Server(f"http://127.0.0.1:{closed_port()}", timeout=5), WORKFLOW, tmp_path / "out",
                          retries=2, progress=False)
    (result,) = runner.run([job]).values()
    assert result.status == "failed" and result.error.startswith("gave up after 3 tries: http://127.0.0.1:")
    assert pauses == [1.0, 2.0], "a growing pause between tries"
    assert batch.read_results(tmp_path / "out")["only"].status == "failed"


def test_the_command_exits_2_naming_the_option(tmp_path, capsys):
    assert batch.main(["--workflow", str(tmp_path / "none.json"), "--manifest", "x.csv", "--quiet"]) == 2
    assert "error: --workflow:" in capsys.readouterr().err
