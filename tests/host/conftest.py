"""The real ComfyUI server, started once per test session for every test in this folder."""

import pytest

from support.comfy_host import start_host


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    host = start_host(tmp_path_factory.mktemp("comfy_host"))
    yield host
    host.stop()
