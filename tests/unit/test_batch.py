"""The batch runner's manifest, workflow and results handling (with the motion fidelity column), and what
it does when no server answers (the runs against a real server are in tests/host/test_batch_in_host.py)."""

import json
import socket
from pathlib import Path

import pytest
import torch

from motion_core import batch
from motion_core.errors import InputError
from motion_core.video import write_video
from support.motion_clips import pan

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = batch.read_workflow(REPO / "workflows" / "api" / "motion_transfer_vmc_sma.json")


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
        batch.read_workflow(REPO / "workflows" / "motion_transfer_vmc_sma.json")
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



class FinishedServer:
    """A server on which every queued job has already succeeded, saving the files in ``saved``."""

    def __init__(self, saved: dict[str, bytes]):
        self.saved = saved

    def upload(self, clip):
        return clip.name

    def queue(self, graph, prompt_id, job):
        return None

    def in_queue(self, prompt_id):
        return False

    def history(self, prompt_id):
        items = [{"filename": name, "subfolder": "", "type": "output"} for name in self.saved]
        return {"status": {"status_str": "success", "completed": True, "messages": []},
                "outputs": {"11": {"images": items}}}

    def download(self, item):
        return self.saved[item["filename"]]

    def websocket(self):
        return None


def test_the_results_table_scores_each_saved_video_against_the_job_clip(tmp_path):
    write_video(pan((3, 0), frames=12, size=96), tmp_path / "ref.mp4", fps=8)
    same = write_video(pan((3, 0), frames=8, size=64, seed=3), tmp_path / "same.mp4", fps=8).read_bytes()
    opposite = write_video(pan((-3, 0), frames=8, size=64, seed=3), tmp_path / "opposite.gif", fps=8).read_bytes()
    jobs = batch.read_manifest(manifest(tmp_path, "job,clip,prompt\nscored,ref.mp4,x\nno_clip,,x\n"), WORKFLOW)
    server = FinishedServer({"same.mp4": same, "frame.png": b"not a video", "opposite.gif": opposite})
    results = batch.Runner(server, WORKFLOW, tmp_path / "out", progress=False).run(jobs)

    scored = results["scored"]
    assert scored.status == "success" and scored.error == ""
    assert scored.files == "scored/same.mp4;scored/frame.png;scored/opposite.gif"
    same_score, opposite_score = (float(cell) for cell in scored.motion_fidelity.split(";"))
    assert same_score > 0.95 and opposite_score < -0.9, "one score per saved video, in the order of files"
    assert results["no_clip"].motion_fidelity == "", "no reference, no score"
    header = (tmp_path / "out" / "results.csv").read_text().splitlines()[0]
    assert header == "job,status,seconds,files,motion_fidelity,error,prompt_id,spec"
    assert batch.read_results(tmp_path / "out")["scored"] == scored


def test_a_video_that_cannot_be_scored_says_why_and_the_job_still_succeeds(tmp_path):
    write_video(pan((3, 0), frames=12, size=96), tmp_path / "ref.mp4", fps=8)
    blank = write_video(torch.full((8, 64, 64, 3), 0.5), tmp_path / "blank.mp4", fps=8).read_bytes()
    jobs = batch.read_manifest(manifest(tmp_path, "job,clip,prompt\nblank,ref.mp4,x\n"), WORKFLOW)
    (result,) = batch.Runner(FinishedServer({"blank.mp4": blank}), WORKFLOW, tmp_path / "out",
                             progress=False).run(jobs).values()
    assert result.status == "success" and result.motion_fidelity == ""
    assert result.error.startswith("motion fidelity not scored: blank.mp4: no trackable features")


def test_the_reference_is_loaded_with_the_workflow_frame_options(tmp_path):
    there = pan((3, 0), frames=8, size=96)
    write_video(torch.cat([there, there.flip(0)]), tmp_path / "ref.mp4", fps=8)  # right, then back left
    generated = write_video(pan((3, 0), frames=8, size=64, seed=3), tmp_path / "gen.mp4", fps=8)

    def score(**options):
        overrides = {("1", name): value for name, value in options.items()}
        graph = batch.job_graph(WORKFLOW, batch.Job("j", None, overrides), None)
        return float(batch.score_videos(tmp_path / "ref.mp4", graph, [generated])[0])

    assert score(frame_load_cap=8) > 0.95
    assert score(frame_load_cap=8, skip_first_frames=8) < -0.9


def test_prompt_ids_are_canonical_uuids_also_for_a_job_recorded_by_an_older_runner(tmp_path):
    """ComfyUI >= 0.33 refuses any other spelling ("prompt_id must be a valid UUID"); a table written
    with 32-digit ids before is queued again under the same id, spelt canonically."""
    import uuid

    jobs = batch.read_manifest(manifest(tmp_path, "job,prompt\nold,x\nnew,y\n"), WORKFLOW)
    old_id = uuid.uuid4()
    batch.write_results(tmp_path / "out", {"old": batch.Result("old", "queued", prompt_id=old_id.hex,
                                                              spec=batch.job_spec(WORKFLOW, jobs[0]))})
    queued = []

    class RecordingServer(FinishedServer):
        def queue(self, graph, prompt_id, job):
            queued.append((job, prompt_id))

        def history(self, prompt_id):
            return super().history(prompt_id) if any(prompt_id == q for _, q in queued) else {}

    results = batch.Runner(RecordingServer({}), WORKFLOW, tmp_path / "out", progress=False).run(jobs)
    assert dict(queued)["old"] == str(old_id)
    assert str(uuid.UUID(dict(queued)["new"])) == dict(queued)["new"]
    assert {name: result.status for name, result in results.items()} == {"old": "success", "new": "success"}
