#!/usr/bin/env bash
# Sets up everything on a fresh machine (scripts/env.sh: .venv, CPU torch, the dependencies and the
# real ComfyUI test host; scripts/registry.sh: comfy-cli in .venv/comfy-cli) and runs the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -k video`.
set -euo pipefail
cd "$(dirname "$0")/.."
INSTALL_TESTS=1 source scripts/env.sh
bash scripts/registry.sh setup
export REGISTRY_CHECKS_REQUIRED=1  # tests/unit/test_registry_metadata.py fails, not skips, without it
python -m pytest "$@"
