"""``python -m motion_core.batch`` against the real server: a manifest of jobs on the shipped VMC + SMA
workflow and the toy model, run as a user runs it (a subprocess), killed and started again, with a
bad clip among good ones."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import av
import pytest

from support.comfy_host import REPO_ROOT
from support.toy_workflows import FEW_STEPS

WORKFLOW = REPO_ROOT / "workflows" / "api" / "motion_transfer_vmc_sma.json"
CLIPS = {name: REPO_ROOT / "assets" / "toy" / f"{name}.mp4"
         for name in ("red_square_wander", "green_star_wander", "yellow_circle_wander")}
QUICK = {f"{node_type}.{step}": count for node_type, steps in FEW_STEPS.items() for step, count in steps.items()
         if node_type in {node["class_type"] for node in json.loads(WORKFLOW.read_text()).values()}}
"""Overrides that keep a job to seconds: the runner is under test here, not the transfer."""
LONG_TRAINING = {"MTX_TrainMotionAdapter.steps": 40}
"""Enough training that a job is still running on the server when the test sees it queued and kills
its runner: the runner started again must follow it, not find it done."""


def write_manifest(folder: Path, rows: list[dict]) -> Path:
    path = folder / "jobs.csv"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def job_rows(count: int, **extra) -> list[dict]:
    names = list(CLIPS)
    return [{"job": f"job{k + 1}", "clip": str(CLIPS[names[k % 3]]), "prompt": f"a blue circle moving {k}",
             "seed": k, **QUICK, **extra} for k in range(count)]


def start_runner(comfy, manifest: Path, out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "motion_core.batch", "--server", comfy.url, "--workflow", str(WORKFLOW),
               "--manifest", str(manifest), "--out", str(out), *extra]
    return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))


def finish(process: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def results(out: Path) -> dict[str, dict]:
    with (out / "results.csv").open(newline="") as handle:
        return {row["job"]: row for row in csv.DictReader(handle)}


def queued_per_job(comfy, out: Path) -> dict[str, int]:
    """How many prompts the server ran for each job of this batch (the runner tags each prompt)."""
    history = comfy.get("/history", params={"max_items": 10_000}).json()
    counts: dict[str, int] = {}
    for item in history.values():
        job = item["prompt"][3].get("motion_transfer_batch_job")
        if job is not None:
            counts[job] = counts.get(job, 0) + 1
    return counts


def video_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.host_smoke  # the runner speaks ComfyUI's HTTP API: ComfyUI 0.33 takes only canonical UUID ids
def test_a_three_job_manifest_completes_with_its_files_and_table(toy_host, tmp_path):
    manifest, out = write_manifest(tmp_path, job_rows(3)), tmp_path / "out"
    code, output = finish(start_runner(toy_host, manifest, out))
    assert code == 0, output
    assert "3 of 3 jobs succeeded" in output
    table = results(out)
    assert list(table) == ["job1", "job2", "job3"]
    for job, row in table.items():
        assert row["status"] == "success" and float(row["seconds"]) > 0
        (video,) = row["files"].split(";")
        assert video.startswith(f"{job}/") and video.endswith(".mp4")
        assert video_frames(out / video) == 8

    again = finish(start_runner(toy_host, manifest, out))
    assert again[0] == 0 and again[1].count("success before, skipped") == 3, "a finished manifest is not rerun"


def test_killed_midway_then_started_again_runs_only_the_remaining_jobs(toy_host, tmp_path):
    tag = uuid.uuid4().hex[:6]  # job names unique on this server, to count its prompts
    rows = [dict(row, job=f"{tag}-{row['job']}") for row in job_rows(3)]
    rows[1].update(LONG_TRAINING)  # the job in flight when the runner dies; the others only frame it
    manifest, out = write_manifest(tmp_path, rows), tmp_path / "out"
    runner = start_runner(toy_host, manifest, out)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # kill it once the second job is on the server
        if (out / "results.csv").exists() and results(out).get(f"{tag}-job2", {}).get("status") == "queued":
            break
        time.sleep(0.2)
    else:
        pytest.fail("the second job was never queued")
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    before = results(out)
    assert before[f"{tag}-job1"]["status"] == "success" and f"{tag}-job3" not in before

    code, output = finish(start_runner(toy_host, manifest, out))
    assert code == 0, output
    assert f"{tag}-job1: success before, skipped" in output
    assert all(row["status"] == "success" for row in results(out).values())
    counts = {job: n for job, n in queued_per_job(toy_host, out).items() if job.startswith(tag)}
    assert counts == {f"{tag}-job1": 1, f"{tag}-job2": 1, f"{tag}-job3": 1}, "none lost, none run twice"
    assert results(out)[f"{tag}-job2"]["prompt_id"] == before[f"{tag}-job2"]["prompt_id"], "followed, not requeued"


def test_a_bad_clip_is_reported_with_the_servers_message_and_the_others_complete(toy_host, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"this is not a video" * 100)
    rows = job_rows(2)
    rows.insert(1, dict(rows[0], job="corrupt", clip=str(corrupt)))
    rows.append(dict(rows[0], job="missing", clip=str(tmp_path / "nowhere.mp4")))
    out = tmp_path / "out"
    code, output = finish(start_runner(toy_host, write_manifest(tmp_path, rows), out))
    assert code == 1, output
    table = results(out)
    assert [table[job]["status"] for job in ("job1", "corrupt", "job2", "missing")] == [
        "success", "failed", "success", "failed"]
    assert "node 1 (MTX_LoadReferenceVideo)" in table["corrupt"]["error"]
    assert "video" in table["corrupt"]["error"], "the node's message names its input"
    assert "does not exist" in table["missing"]["error"]
    assert "2 of 4 jobs succeeded" in output and "failed corrupt: node 1" in output


def test_a_job_the_server_lost_is_queued_again_under_the_same_id(toy_host, tmp_path):
    """A results table that says 'queued' for a prompt the server never got (the runner was killed
    between writing the id and sending the job, or the server restarted)."""
    rows = job_rows(1)
    manifest, out = write_manifest(tmp_path, rows), tmp_path / "out"
    from motion_core.batch import Result, job_spec, read_manifest, read_workflow, write_results

    workflow = read_workflow(WORKFLOW)
    (job,) = read_manifest(manifest, workflow)
    lost = uuid.uuid4()
    recorded = lost.hex  # as runners wrote ids before ComfyUI 0.33 required canonical UUIDs
    write_results(out, {"job1": Result("job1", "queued", prompt_id=recorded, spec=job_spec(workflow, job))})
    code, output = finish(start_runner(toy_host, manifest, out))
    assert code == 0, output
    assert results(out)["job1"]["prompt_id"] == str(lost)
    assert toy_host.history(str(lost))["status"]["status_str"] == "success"


def test_a_rejected_graph_is_reported_without_retrying(toy_host, tmp_path):
    rows = job_rows(1, **{"MTX_GenerateVideo.steps": -5})
    out = tmp_path / "out"
    code, output = finish(start_runner(toy_host, write_manifest(tmp_path, rows), out, "--retries", "3"))
    assert code == 1
    error = results(out)["job1"]["error"]
    assert error.startswith("the server rejected the graph") and "node 8 (MTX_GenerateVideo)" in error, error
    assert "trying again" not in output
