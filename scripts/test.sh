#!/usr/bin/env bash
# Sets up everything on a fresh machine (scripts/env.sh: .venv, CPU torch, the dependencies and the
# real ComfyUI test host) and runs the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -k video`.
set -euo pipefail
cd "$(dirname "$0")/.."
INSTALL_TESTS=1 source scripts/env.sh
python -m pytest "$@"
