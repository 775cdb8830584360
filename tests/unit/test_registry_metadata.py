"""The Comfy Registry side of the pack: metadata, licence, versions and the archive users download.

comfy-cli's `comfy node validate` checks little and fails on less (an empty version, an unreadable
pyproject.toml): a malformed licence, classifier or version range is only a printed warning and the
field is dropped. So the metadata is checked here against the rules comfy-cli and the registry's
documentation apply, and `scripts/registry.sh validate` fails on any warning. The comfy-cli checks
use its own environment (.venv/comfy-cli, made by `bash scripts/registry.sh setup`, which
scripts/test.sh runs); without it they skip, or fail where REGISTRY_CHECKS_REQUIRED=1 (test.sh).
"""

import ast
import hashlib
import json
import os
import re
import subprocess
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
COMFY = PYPROJECT["tool"]["comfy"]
COMFY_CLI_PYTHON = ROOT / ".venv" / "comfy-cli" / "bin" / "python"

# sha256 of the FSF's GPL-3 text: Debian's /usr/share/common-licenses/GPL-3 and ComfyUI's LICENSE
GPL3_SHA256 = "3972dc9744f6499f0f9b2dbf76696f2ae7ad8af9b23dde66d6af86c9dfb36986"

# The values comfy-cli 1.23 accepts (registry/config_parser.py); anything else is dropped.
OS_PREFIXES = ("Microsoft", "POSIX", "MacOS", "OS Independent")
ACCELERATORS = {"GPU :: NVIDIA CUDA", "GPU :: AMD ROCm", "GPU :: Intel Arc", "NPU :: Huawei Ascend",
                "GPU :: Apple Metal"}
VERSION_RANGE_PART = re.compile(r"^(?:(==|>=|<=|!=|~=|>|<|<>|=)\s*)?(\d+\.\d+\.\d+(?:-[a-zA-Z0-9]+)?)?$")

# What the archive may hold at its top level; everything else (tests, benchmark scripts, scripts/,
# docs/ screenshots, CI) is left out by .comfyignore. A new top-level file or folder fails here
# until it is either shipped (listed) or left out (.comfyignore).
SHIPPED_TOP_LEVEL = {"__init__.py", "nodes", "motion_core", "models", "assets", "workflows", "web",
                     "requirements.txt", "pyproject.toml", "LICENSE", "README.md", "CHANGELOG.md",
                     "BENCHMARKS.md", "docs"}
SHIPPED_WHOLE = ("nodes", "motion_core", "models", "assets", "workflows", "web")
LEFT_OUT_PACKAGES = {"tests", "benchmarks", "scripts", "support"}


def requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def registry_tools():
    if COMFY_CLI_PYTHON.exists():
        return
    message = "comfy-cli is not set up: run `bash scripts/registry.sh setup`"
    if os.environ.get("REGISTRY_CHECKS_REQUIRED") == "1":
        pytest.fail(message)
    pytest.skip(message)


def registry_script(*args: str) -> subprocess.CompletedProcess:
    registry_tools()
    return subprocess.run(["bash", str(ROOT / "scripts" / "registry.sh"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_project_metadata_follows_the_registry_rules():
    name = PROJECT["name"]
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(?:[._-][A-Za-z0-9]+)*", name), name
    assert re.fullmatch(r"\d+\.\d+\.\d+", PROJECT["version"])
    assert PROJECT["description"].strip()
    assert PROJECT["license"] == {"text": "GPL-3.0-or-later"}
    assert PROJECT["urls"]["Repository"].startswith("https://")
    assert COMFY["PublisherId"].strip() and COMFY["DisplayName"].strip()
    for part in COMFY["requires-comfyui"].split(","):
        assert VERSION_RANGE_PART.match(part.strip()), COMFY["requires-comfyui"]


def test_classifiers_are_ones_the_registry_reads():
    classifiers = PROJECT["classifiers"]
    systems = [c.removeprefix("Operating System :: ") for c in classifiers if c.startswith("Operating System :: ")]
    accelerators = [c.removeprefix("Environment :: ") for c in classifiers if c.startswith("Environment ::")]
    assert systems and all(s.startswith(OS_PREFIXES) for s in systems)
    assert accelerators and set(accelerators) <= ACCELERATORS


def test_versions_agree():
    init = (ROOT / "motion_core" / "__init__.py").read_text(encoding="utf-8")
    code_version = re.search(r'^__version__ = "([^"]+)"', init, re.MULTILINE).group(1)
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    newest = re.search(r"^## \[(\d+\.\d+\.\d+)\]", changelog, re.MULTILINE).group(1)
    assert PROJECT["version"] == code_version == newest


def test_dependencies_are_the_requirements_users_get():
    """ComfyUI-Manager and comfy-cli install requirements.txt; the registry lists [project].dependencies."""
    assert PROJECT["dependencies"] == requirement_lines(ROOT / "requirements.txt")


def test_no_frontend_range_while_the_web_directory_holds_only_help_pages():
    """The web directory (``WEB_DIRECTORY``) holds the nodes' Markdown help pages, which a frontend
    without help pages simply does not show; a comfyui-frontend-package range belongs in the
    dependencies once the pack ships web code. ``[tool.comfy] web`` stays unset: ComfyUI would serve
    the folder a second time, under the project name, and the frontend looks under the install
    folder's name (the node's python_module), which ``WEB_DIRECTORY`` serves."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    web_files = [f for f in tracked if f.endswith((".js", ".ts", ".css", ".vue", ".html"))]
    assert not web_files
    assert {Path(f).suffix for f in tracked if f.startswith("web/")} == {".md"}
    assert 'WEB_DIRECTORY = "./web"' in (ROOT / "__init__.py").read_text(encoding="utf-8")
    assert not any(dep.startswith("comfyui-frontend-package") for dep in PROJECT["dependencies"])
    assert "web" not in COMFY


def test_licence_is_the_gpl3_text():
    assert hashlib.sha256((ROOT / "LICENSE").read_bytes()).hexdigest() == GPL3_SHA256


def test_comfy_node_validate_is_clean():
    result = registry_script("validate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All validation checks passed successfully" in result.stdout


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> zipfile.ZipFile:
    path = tmp_path_factory.mktemp("registry") / "node.zip"
    result = registry_script("pack", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(path) as opened:
        yield opened


def test_archive_holds_the_pack_and_nothing_of_the_development(archive):
    names = set(archive.namelist())
    assert {name.split("/")[0] for name in names} == SHIPPED_TOP_LEVEL
    assert {name for name in names if name.startswith("docs/")} == {"docs/METHODS.md"}  # cited by docstrings
    tracked = subprocess.run(["git", "ls-files", *SHIPPED_WHOLE], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert set(tracked) <= names


def test_shipped_code_imports_nothing_left_out(archive):
    for name in archive.namelist():
        if not name.endswith(".py"):
            continue
        for node in ast.walk(ast.parse(archive.read(name), name)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            assert not {m.split(".")[0] for m in modules} & LEFT_OUT_PACKAGES, (name, modules)


def test_workflows_use_files_the_archive_ships(archive):
    """The workflows are set up for the toy model and a bundled clip (README: copy them into ComfyUI)."""
    names = set(archive.namelist())
    api_workflows = [n for n in names if n.startswith("workflows/api/") and n.endswith(".json")]
    assert api_workflows
    for workflow in api_workflows:
        for node in json.loads(archive.read(workflow)).values():
            if node["class_type"] == "MTX_LoadVideoModel":
                assert f"models/{node['inputs']['model_name']}/model_index.json" in names, workflow
            if node["class_type"] == "MTX_LoadReferenceVideo":
                assert f"assets/toy/{node['inputs']['video']}" in names, workflow
