"""Run a manifest of jobs through a running ComfyUI: one API-format workflow, many clips × prompts × seeds.

    python -m motion_core.batch --server http://127.0.0.1:8188 \\
        --workflow workflows/api/motion_transfer_vmc_sma.json --manifest jobs.csv --out batch_output

The manifest is a CSV file (one job a row) or a JSON list of objects, with these columns, all
optional but ``job``'s uniqueness:

- ``job``: a name for the job (its output folder); default ``row<N>``.
- ``clip``: a video file (relative to the manifest's folder), uploaded to the server and put into
  every *Load Reference Video* node.
- ``prompt``: put into every *Generate Video* node's ``prompt``.
- ``seed``: put into every *Initial Noise* node's ``seed``.
- ``<node>.<input>``: any other input, where ``<node>`` is a node id of the workflow ("5.steps")
  or a node type (``MTX_TrainMotionAdapter.steps``: every node of that type). CSV cells are read
  as JSON where they parse (numbers, true/false), else as text; empty cells change nothing.

For each job the runner uploads its clip, queues the graph, follows it over the websocket with a
progress bar, and downloads the files it saved into ``<out>/<job>/``. ``<out>/results.csv`` is
the results table (job, status, seconds, files, motion_fidelity, error), rewritten after every
change. ``motion_fidelity`` scores each video the job saved against the job's ``clip``, loaded with
the workflow's *Load Reference Video* frame options (:mod:`motion_core.fidelity`, generated ->
reference; ``;``-separated in the order of ``files``); it is empty without a ``clip`` or a saved
video, and where a video cannot be scored ``error`` says why (the job still succeeded). The table
is also the runner's memory: started again with the same ``--out``, the runner skips the jobs that
succeeded, picks up a job the server is still running or has finished (by its prompt id, written
*before* the job is queued, so a job is never queued twice), and runs the rest. Failed jobs run
again (``--skip-failed`` leaves them). Transient failures (the server unreachable or answering
5xx, the websocket dropping) are retried ``--retries`` times with a growing pause; a job the
server rejects or that fails in a node is reported with the server's message, and the other jobs
go on. Exit codes: 0 every job succeeded, 1 some failed, 2 bad input (manifest, workflow,
options: the message names it), 130 stopped with Ctrl-C (queued work stays queued on the server;
run the same command again to collect it).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import InputError
from .files import replace_file, write_new_file

RESULTS = "results.csv"
COLUMNS = ("job", "status", "seconds", "files", "motion_fidelity", "error", "prompt_id", "spec")
SHORTCUTS = {"clip": ("MTX_LoadReferenceVideo", "video"), "prompt": ("MTX_GenerateVideo", "prompt"),
             "seed": ("MTX_InitialNoise", "seed")}
"""Manifest columns that set an input of every node of a type."""

VIDEO_SUFFIXES = frozenset({".mp4", ".webm", ".mkv", ".mov", ".gif", ".webp"})
"""Saved files the runner scores as generated clips."""


class TransientError(Exception):
    """The server could not be reached or failed in a way that may pass: worth another try."""


@dataclass(frozen=True)
class Job:
    """One manifest row: its name, clip file (or None) and ``(node, input) -> value`` overrides."""

    name: str
    clip: Path | None
    overrides: dict = field(hash=False)


@dataclass
class Result:
    """One row of the results table."""

    job: str
    status: str = "pending"
    """``pending``, ``queued`` (sent, or about to be: ``prompt_id`` is set), ``success`` or ``failed``."""
    seconds: str = ""
    files: str = ""
    """Paths relative to the output folder, separated by ``;``."""
    error: str = ""
    prompt_id: str = ""
    spec: str = ""
    """A digest of what the job runs: a finished job whose manifest row changed runs again."""
    motion_fidelity: str = ""
    """For each saved video, its motion fidelity against the job's clip (``;``-separated); empty without
    a clip or a saved video, or where a video could not be scored."""


# -- the manifest -----------------------------------------------------------------------------------

def _cell(value):
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def read_manifest(path: Path, workflow: dict) -> list[Job]:
    """The jobs of a CSV or JSON manifest, each override checked against ``workflow``."""
    if not path.is_file():
        raise InputError("--manifest", f"{str(path)!r} is not a file; give a CSV or JSON manifest")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(text)
        except ValueError as err:
            raise InputError("--manifest", f"{path.name} is not valid JSON ({err})") from None
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise InputError("--manifest", f"{path.name} must be a JSON list of objects, one per job")
    else:
        rows = [{key: _cell(value) for key, value in row.items() if key and value not in (None, "")}
                for row in csv.DictReader(io.StringIO(text))]
    if not rows:
        raise InputError("--manifest", f"{path.name} has no jobs")
    jobs, names = [], set()
    for number, row in enumerate(rows, start=1):
        name = str(row.get("job", f"row{number}"))
        if name in names or not name or "/" in name or "\\" in name or name.startswith("."):
            raise InputError("--manifest", f"row {number}: job {name!r} must be unique and a plain folder name")
        names.add(name)
        overrides = {}
        for column, value in row.items():
            if column in ("job", "clip"):
                continue
            targets = _targets(workflow, column, f"row {number}")
            overrides.update({target: value for target in targets})
        clip = (path.parent / str(row["clip"])) if row.get("clip") not in (None, "") else None
        if clip is not None:
            _targets(workflow, "clip", f"row {number}")
        jobs.append(Job(name, clip, overrides))
    return jobs


def _targets(workflow: dict, column: str, where: str) -> list[tuple[str, str]]:
    """``(node id, input)`` pairs a manifest column sets."""
    if column in SHORTCUTS:
        node_type, input_name = SHORTCUTS[column]
        found = [(key, input_name) for key, node in workflow.items() if node.get("class_type") == node_type]
        if not found:
            raise InputError("--manifest", f"{where}: column {column!r} sets {node_type}.{input_name}, but the "
                                           f"workflow has no {node_type} node")
        return found
    node_part, _, input_name = column.rpartition(".")
    if not node_part or not input_name:
        raise InputError("--manifest", f"{where}: column {column!r} is not job, clip, prompt, seed or "
                                       "<node id or type>.<input>")
    found = [key for key, node in workflow.items() if key == node_part or node.get("class_type") == node_part]
    if not found:
        raise InputError("--manifest", f"{where}: column {column!r}: the workflow has no node {node_part!r} "
                                       f"(node ids: {', '.join(workflow)})")
    for key in found:
        if input_name not in workflow[key].get("inputs", {}):
            raise InputError("--manifest", f"{where}: column {column!r}: node {key} ({workflow[key]['class_type']}) "
                                           f"has no input {input_name!r}; it has {', '.join(workflow[key]['inputs'])}")
    return [(key, input_name) for key in found]


def read_workflow(path: Path) -> dict:
    """An API-format workflow (``{node id: {"class_type", "inputs"}}``), refusing the UI format."""
    try:
        workflow = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError("--workflow", f"{str(path)!r} does not exist") from None
    except ValueError as err:
        raise InputError("--workflow", f"{path.name} is not valid JSON ({err})") from None
    if isinstance(workflow, dict) and "nodes" in workflow and "links" in workflow:
        raise InputError("--workflow", f"{path.name} is a UI-format workflow; give its API-format twin "
                                       "(workflows/api/, or the UI's 'Export (API)')")
    if not isinstance(workflow, dict) or not all(isinstance(n, dict) and "class_type" in n for n in workflow.values()):
        raise InputError("--workflow", f"{path.name} is not an API-format workflow "
                                       "({node id: {\"class_type\", \"inputs\"}})")
    return workflow


def job_graph(workflow: dict, job: Job, clip_name: str | None) -> dict:
    """The workflow with the job's overrides (and its uploaded clip's name) applied."""
    graph = json.loads(json.dumps(workflow))
    overrides = dict(job.overrides)
    if clip_name is not None:
        overrides.update({target: clip_name for target in _targets(workflow, "clip", job.name)})
    for (key, input_name), value in overrides.items():
        graph[key]["inputs"][input_name] = value
    return graph


def job_spec(workflow: dict, job: Job) -> str:
    """A digest of the job's graph and clip content: what decides whether a finished job is still valid."""
    digest = hashlib.sha256(json.dumps(job_graph(workflow, job, None), sort_keys=True).encode())
    if job.clip is not None and job.clip.is_file():
        digest.update(hashlib.sha256(job.clip.read_bytes()).digest())
    return digest.hexdigest()[:16]


def score_videos(clip: Path, graph: dict, saved: list[Path]) -> tuple[str, str]:
    """The motion fidelity of each video in ``saved`` against ``clip``, and what could not be scored.

    The clip is loaded with the frame options of the graph's first *Load Reference Video* node (what
    the job trained on; linked inputs keep their defaults); its size does not matter.

    Returns:
        The ``motion_fidelity`` cell (scores to 4 decimals, ``;``-separated in the order of ``saved``,
        empty for a video that could not be scored) and the reasons for those, ``""`` when all scored.
    """
    videos = [path for path in saved if path.suffix.lower() in VIDEO_SUFFIXES]
    if not videos:
        return "", ""
    from .fidelity import motion_fidelity
    from .video import FrameSelection, load_video

    loader = next((node["inputs"] for node in graph.values() if node.get("class_type") == SHORTCUTS["clip"][0]), {})
    options = {name: value for name, value in loader.items()
               if name in ("frame_load_cap", "skip_first_frames", "select_every_nth", "force_rate")
               and not isinstance(value, list)}  # a list is a link to another node's output
    scores, problems = [], []
    try:
        reference = load_video(clip, FrameSelection(**options), input_name="clip").frames
    except (InputError, ImportError) as err:
        return "", f"motion fidelity not scored: {err}"
    for video in videos:
        try:
            generated = load_video(video, input_name=video.name).frames
            result = motion_fidelity(reference, generated, reference_name="clip", generated_name=video.name)
            scores.append(f"{result.score:.4f}")
        except (InputError, ImportError) as err:
            scores.append("")
            problems.append(str(err))
    return ";".join(scores), (f"motion fidelity not scored: {'; '.join(problems)}" if problems else "")


# -- the results table ------------------------------------------------------------------------------

def read_results(out: Path) -> dict[str, Result]:
    path = out / RESULTS
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        return {row["job"]: Result(**{k: row.get(k, "") for k in COLUMNS}) for row in csv.DictReader(handle)}


def write_results(out: Path, results: dict[str, Result]) -> None:
    """Rewrite the table atomically: a reader (or a killed runner) never sees half of it."""

    def write(path: Path) -> None:
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, COLUMNS)
            writer.writeheader()
            writer.writerows(asdict(result) for result in results.values())

    replace_file(out / RESULTS, write)


# -- talking to the server --------------------------------------------------------------------------

class Server:
    """The few ComfyUI endpoints the runner uses; connection problems and 5xx become TransientError."""

    def __init__(self, url: str, timeout: float = 60):
        self.url, self.timeout = url.rstrip("/"), timeout
        self.client_id = uuid.uuid4().hex

    def _call(self, method: str, path: str, **kwargs):
        import requests

        try:
            response = requests.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as err:
            raise TransientError(f"{self.url} did not answer ({err.__class__.__name__})") from err
        if response.status_code >= 500:
            raise TransientError(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        return response

    def upload(self, clip: Path) -> str:
        """Upload ``clip`` to the input folder under a name made from its content; returns that name."""
        data = clip.read_bytes()
        name = f"{clip.stem}-{hashlib.sha256(data).hexdigest()[:12]}{clip.suffix.lower()}"
        response = self._call("POST", "/upload/image", files={"image": (name, data)},
                              data={"type": "input", "overwrite": "true"})
        if response.status_code != 200:
            raise InputError("clip", f"the server refused the upload of {clip.name} ({response.status_code})")
        return response.json()["name"]

    def queue(self, graph: dict, prompt_id: str, job: str) -> str | None:
        """Queue ``graph`` under ``prompt_id``; the server's reason if it rejected the graph, else None."""
        response = self._call("POST", "/prompt", json={"prompt": graph, "prompt_id": prompt_id,
                                                       "client_id": self.client_id,
                                                       "extra_data": {"motion_transfer_batch_job": job}})
        if response.status_code == 200:
            return None
        return rejection_message(response.json() if "json" in response.headers.get("content-type", "") else
                                 {"error": {"message": response.text}})

    def history(self, prompt_id: str) -> dict:
        return self._call("GET", f"/history/{prompt_id}").json().get(prompt_id, {})

    def in_queue(self, prompt_id: str) -> bool:
        queue = self._call("GET", "/queue").json()
        return any(item[1] == prompt_id for item in queue.get("queue_running", []) + queue.get("queue_pending", []))

    def download(self, item: dict) -> bytes:
        response = self._call("GET", "/view", params={"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                                                      "type": item.get("type", "output")})
        if response.status_code != 200:
            raise TransientError(f"could not download {item['filename']} ({response.status_code})")
        return response.content

    def websocket(self):
        import websocket

        try:
            return websocket.create_connection(f"{self.url.replace('http', 'ws', 1)}/ws?clientId={self.client_id}",
                                               timeout=1)
        except (OSError, websocket.WebSocketException):
            return None  # progress display only: the outcome is read from the history


def rejection_message(body: dict) -> str:
    """One line from a ``POST /prompt`` rejection: the error and each node's errors."""
    parts = [body.get("error", {}).get("message", "rejected")]
    for node, errors in body.get("node_errors", {}).items():
        for error in errors.get("errors", []):
            parts.append(f"node {node} ({errors.get('class_type', '?')}): {error.get('details') or error.get('message')}")
    return "; ".join(parts)


def execution_error(history: dict) -> str:
    """The server's message for a failed run: node, exception type and message."""
    for kind, data in history.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return (f"node {data.get('node_id')} ({data.get('node_type')}): "
                    f"{data.get('exception_type', 'error')}: {data.get('exception_message', '').strip()}")
        if kind == "execution_interrupted":
            return f"interrupted on the server at node {data.get('node_id')}"
    return "failed without a message"


def run_seconds(history: dict) -> str:
    """Seconds from the server starting the job to it ending, from the history's timestamps."""
    stamps = {kind: data.get("timestamp") for kind, data in history.get("status", {}).get("messages", [])}
    start = stamps.get("execution_start")
    end = next((stamps[k] for k in ("execution_success", "execution_error", "execution_interrupted") if stamps.get(k)),
               None)
    return f"{(end - start) / 1000:.1f}" if start and end else ""


def output_items(history: dict) -> list[dict]:
    """Every file the job's output nodes saved (images, videos, ...), not previews in the temp folder."""
    items = []
    for outputs in history.get("outputs", {}).values():
        for value in outputs.values():
            if isinstance(value, list):
                items.extend(v for v in value if isinstance(v, dict) and "filename" in v and v.get("type") == "output")
    return items


def _show_progress(socket, prompt_id: str, bar) -> bool:
    """Move ``bar`` with the next websocket message for ``prompt_id``; False once the socket closed."""
    import websocket

    try:
        raw = socket.recv()
    except websocket.WebSocketTimeoutException:
        return True
    except (websocket.WebSocketException, OSError):
        return False
    if isinstance(raw, str):
        message = json.loads(raw)
        data = message.get("data", {})
        if message.get("type") == "progress" and data.get("prompt_id") == prompt_id:
            bar.total, bar.n = data["max"], data["value"]
            bar.set_postfix_str(f"node {data.get('node')}", refresh=False)
            bar.refresh()
    return True


# -- running the jobs -------------------------------------------------------------------------------

class Runner:
    def __init__(self, server: Server, workflow: dict, out: Path, retries: int = 3, poll: float = 1.0,
                 job_timeout: float = 3600, progress: bool = True):
        self.server, self.workflow, self.out = server, workflow, out
        self.retries, self.poll, self.job_timeout, self.progress = retries, poll, job_timeout, progress
        self.results = read_results(out)

    def _save(self, result: Result) -> None:
        self.results[result.job] = result
        write_results(self.out, self.results)

    def run(self, jobs: list[Job], skip_failed: bool = False) -> dict[str, Result]:
        from tqdm.auto import tqdm

        with tqdm(total=len(jobs), desc="jobs", unit="job", disable=not self.progress, position=0) as bar:
            for job in jobs:
                spec = job_spec(self.workflow, job)
                previous = self.results.get(job.name)
                if previous and previous.spec == spec and (
                        (previous.status == "success" and self._files_present(previous))
                        or (previous.status == "failed" and skip_failed)):
                    bar.write(f"{job.name}: {previous.status} before, skipped")
                else:
                    resume = previous.prompt_id if previous and previous.status == "queued" and previous.spec == spec else ""
                    result = self._run_with_retries(job, spec, resume)
                    bar.write(f"{job.name}: {result.status}" + (f" ({result.error})" if result.error else
                                                                  f" in {result.seconds} s")
                              + (f", motion fidelity {result.motion_fidelity}" if result.motion_fidelity else ""))
                bar.update(1)
        return {job.name: self.results[job.name] for job in jobs}

    def _files_present(self, result: Result) -> bool:
        return all((self.out / name).is_file() for name in result.files.split(";") if name)

    def _run_with_retries(self, job: Job, spec: str, prompt_id: str) -> Result:
        for attempt in range(self.retries + 1):
            try:
                return self._run_once(job, spec, prompt_id)
            except TransientError as err:
                if attempt == self.retries:
                    result = Result(job.name, "failed", error=f"gave up after {attempt + 1} tries: {err}",
                                    prompt_id=prompt_id, spec=spec)
                    self._save(result)
                    return result
                pause = 2.0 ** attempt
                print(f"{job.name}: {err}; trying again in {pause:.0f} s", file=sys.stderr)
                time.sleep(pause)
                prompt_id = self.results[job.name].prompt_id if job.name in self.results else prompt_id
        raise AssertionError("unreachable")

    def _run_once(self, job: Job, spec: str, prompt_id: str) -> Result:
        # A job with an id is on the server (followed, not queued again), or never got there or was
        # lost in a restart: then it is queued under the same id.
        on_server = bool(prompt_id) and (bool(self.server.history(prompt_id)) or self.server.in_queue(prompt_id))
        if not on_server:
            if job.clip is not None and not job.clip.is_file():
                return self._failed(job, spec, prompt_id, f"clip: {str(job.clip)!r} does not exist")
            clip_name = self.server.upload(job.clip) if job.clip is not None else None
            # ComfyUI >= 0.33 takes only canonical UUIDs (comfy_execution/jobs.py validate_job_id)
            prompt_id = str(uuid.UUID(prompt_id)) if prompt_id else str(uuid.uuid4())
            # Written before queueing, so a runner killed in between finds the id next time.
            self._save(Result(job.name, "queued", prompt_id=prompt_id, spec=spec))
            rejected = self.server.queue(job_graph(self.workflow, job, clip_name), prompt_id, job.name)
            if rejected is not None:
                return self._failed(job, spec, prompt_id, f"the server rejected the graph: {rejected}")
        history = self._follow(job, prompt_id)
        if history.get("status", {}).get("status_str") != "success":
            return self._failed(job, spec, prompt_id, execution_error(history), run_seconds(history))
        files = [self._download(job, item) for item in output_items(history)]
        fidelity, problem = ("", "") if job.clip is None else score_videos(
            job.clip, job_graph(self.workflow, job, None), [self.out / name for name in files])
        result = Result(job.name, "success", run_seconds(history), ";".join(files), problem, prompt_id, spec,
                        fidelity)
        self._save(result)
        return result

    def _failed(self, job: Job, spec: str, prompt_id: str, error: str, seconds: str = "") -> Result:
        result = Result(job.name, "failed", seconds, "", error, prompt_id, spec)
        self._save(result)
        return result

    def _follow(self, job: Job, prompt_id: str) -> dict:
        """Show the job's progress until the history says it ended; the history entry.

        The websocket only feeds the progress bar: the outcome is read from the history, which
        also covers a job that ended before the runner connected (a resumed one).
        """
        from tqdm.auto import tqdm

        socket = self.server.websocket() if self.progress else None
        deadline, next_check = time.monotonic() + self.job_timeout, 0.0
        with tqdm(total=1, desc=job.name, leave=False, disable=not self.progress, position=1) as bar:
            try:
                while time.monotonic() < deadline:
                    if time.monotonic() >= next_check:
                        history = self.server.history(prompt_id)
                        if history.get("status", {}).get("completed") is not None:
                            return history
                        next_check = time.monotonic() + self.poll
                    if socket is None or not _show_progress(socket, prompt_id, bar):
                        socket = None
                        time.sleep(self.poll)
            finally:
                if socket is not None:
                    socket.close()
        raise TransientError(f"job {job.name} did not finish within {self.job_timeout:.0f} s")

    def _download(self, job: Job, item: dict) -> str:
        """Save one output into ``<out>/<job>/``; a file already there with other content is kept."""
        data = self.server.download(item)
        folder = self.out / job.name
        name = Path(item["filename"]).name
        for number in range(1, 1000):
            path = folder / (name if number == 1 else f"{Path(name).stem} ({number}){Path(name).suffix}")
            if path.exists() and path.read_bytes() == data:
                return path.relative_to(self.out).as_posix()  # downloaded before the runner stopped
            if not path.exists():
                write_new_file(path, lambda temporary: temporary.write_bytes(data), "--out")
                return path.relative_to(self.out).as_posix()
        raise InputError("--out", f"no free name for {name} in {folder}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m motion_core.batch", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 4)[4])
    parser.add_argument("--server", default="http://127.0.0.1:8188", help="ComfyUI's address (default: %(default)s)")
    parser.add_argument("--workflow", required=True, help="an API-format workflow, e.g. workflows/api/*.json")
    parser.add_argument("--manifest", required=True, help="the jobs: a CSV file or a JSON list")
    parser.add_argument("--out", default="batch_output", help="outputs and results.csv (default: %(default)s)")
    parser.add_argument("--retries", type=int, default=3, help="tries again after a transient failure (default: 3)")
    parser.add_argument("--job-timeout", type=float, default=3600, help="seconds one job may take (default: 3600)")
    parser.add_argument("--skip-failed", action="store_true", help="do not run jobs that failed before again")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    from .cli import run_command

    args = build_parser().parse_args(argv)
    failures: list[Result] = []

    def work() -> list[str]:
        if args.retries < 0:
            raise InputError("--retries", f"{args.retries} is not valid; use 0 or more")
        workflow = read_workflow(Path(args.workflow))
        jobs = read_manifest(Path(args.manifest), workflow)
        runner = Runner(Server(args.server), workflow, Path(args.out), retries=args.retries,
                        job_timeout=args.job_timeout, progress=not args.quiet)
        results = runner.run(jobs, skip_failed=args.skip_failed)
        failures.extend(r for r in results.values() if r.status != "success")
        return [f"{len(results) - len(failures)} of {len(results)} jobs succeeded; table: {Path(args.out) / RESULTS}",
                *(f"  failed {r.job}: {r.error}" for r in failures)]

    code = run_command(work)
    return 1 if code == 0 and failures else code


if __name__ == "__main__":
    raise SystemExit(main())
