"""The real ComfyUI server, started once per test session for every test in this folder."""

import pytest

from support.comfy_host import start_host
from support.schema_fuzz import SUMMARY
from support.toy_workflows import provide_toy_files


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    # Latent previews on, as ComfyUI's launchers and desktop app start it (the server's default is none)
    host = start_host(tmp_path_factory.mktemp("comfy_host"), extra_arguments=("--preview-method", "auto"))
    yield host
    host.stop()


@pytest.fixture(scope="session")
def toy_host(comfy):
    """The server with what the workflows' notes tell a user to copy: the toy model and a toy clip."""
    provide_toy_files(comfy)
    return comfy


def pytest_terminal_summary(terminalreporter):
    """The fuzz tier's count of graphs and nodes, shown whether or not it passed."""
    for line in SUMMARY:
        terminalreporter.write_line(line)
