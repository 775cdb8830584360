"""The real ComfyUI server, started once per test session for every test in this folder."""

import shutil

import pytest

from support.comfy_host import REPO_ROOT, start_host


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    host = start_host(tmp_path_factory.mktemp("comfy_host"))
    yield host
    host.stop()


@pytest.fixture(scope="session")
def toy_host(comfy):
    """The server with what the workflows' notes tell a user to copy: the toy model and a toy clip."""
    model = comfy.models_dir / "diffusers" / "toy-t2v"
    if not model.exists():
        shutil.copytree(REPO_ROOT / "models" / "toy-t2v", model)
    shutil.copy(REPO_ROOT / "examples" / "toy" / "red_square_wander.mp4", comfy.input_dir)
    return comfy
