#!/usr/bin/env bash
# The Comfy Registry's own tool, comfy-cli (pinned), in a virtual environment of its own,
# .venv/comfy-cli, created on first use from PyPI: its dependencies (uv, ruff, typer, posthog, ...)
# stay out of the project's .venv. Apart from that first install everything here works offline and
# without a git remote; no telemetry (DO_NOT_TRACK=1), no consent prompt.
#   bash scripts/registry.sh setup            create the environment (scripts/test.sh runs this)
#   bash scripts/registry.sh validate         `comfy node validate`, failing on its warnings too
#   bash scripts/registry.sh pack [OUT.zip]   the archive `comfy node publish` would upload
#                                             (default out/node.zip), then its files and size
#   bash scripts/registry.sh release-check    validate, and fail while pyproject.toml has placeholders
#   bash scripts/registry.sh comfy ARGS...    any comfy-cli command, e.g. `comfy node publish`
set -euo pipefail
cd "$(dirname "$0")/.."
COMFY_CLI_VERSION=1.23.0
TOOLS=.venv/comfy-cli
# ruff (run by `comfy node validate`) would otherwise leave .ruff_cache/ in the repository
export DO_NOT_TRACK=1 RUFF_CACHE_DIR="$PWD/$TOOLS/ruff-cache"

setup() {
    local have
    have=$("$TOOLS/bin/python" -c 'import importlib.metadata as m; print(m.version("comfy-cli"))' 2>/dev/null || true)
    if [ "$have" != "$COMFY_CLI_VERSION" ]; then
        "${PYTHON:-python3}" -m venv "$TOOLS"
        "$TOOLS/bin/python" -m pip install --quiet "comfy-cli==$COMFY_CLI_VERSION"
    fi
}

comfy() {
    "$TOOLS/bin/comfy" --skip-prompt "$@"
}

validate() {
    local log
    log=$(comfy node validate </dev/null 2>&1) || { echo "$log"; return 1; }
    echo "$log"
    # comfy-cli exits 0 on most problems (a malformed licence, classifier or version range, exec/eval
    # found by its ruff check): it prints them and drops the field, so any warning fails here.
    if grep -qiE "warning|error" <<<"$log" || ! grep -q "All validation checks passed" <<<"$log"; then
        echo "registry.sh: comfy node validate is not clean (see above)" >&2
        return 1
    fi
}

pack() {
    local out=${1:-out/node.zip}
    # Outside a git checkout comfy-cli would zip every file here (.venv included): refuse instead.
    git rev-parse --is-inside-work-tree >/dev/null
    mkdir -p "$(dirname "$out")"
    rm -f "$out"
    # What `comfy node pack` runs (its configuration reader and zip_files), with a chosen output
    # path instead of node.zip in the repository root.
    "$TOOLS/bin/python" - "$out" <<'PY'
import sys
import zipfile

from comfy_cli.file_utils import zip_files
from comfy_cli.registry.config_parser import extract_node_configuration

config = extract_node_configuration()
if config is None:
    sys.exit(1)
zip_files(sys.argv[1], includes=config.tool_comfy.includes)
with zipfile.ZipFile(sys.argv[1]) as archive:
    entries = archive.infolist()
for entry in entries:
    print(f"{entry.file_size:>10}  {entry.filename}")
print(f"{sys.argv[1]}: {len(entries)} files, {sum(e.file_size for e in entries)} bytes "
      f"({sum(e.compress_size for e in entries)} bytes compressed)")
PY
}

release_check() {
    validate
    if grep -ni "placeholder" pyproject.toml; then
        echo "registry.sh: set the placeholder values above in pyproject.toml before publishing" >&2
        return 1
    fi
}

command=${1:-validate}
shift || true
case "$command" in
    setup) setup ;;
    validate) setup; validate ;;
    pack) setup; pack "$@" ;;
    release-check) setup; release_check ;;
    comfy) setup; comfy "$@" ;;
    *) sed -n '2,11p' "$0" >&2; exit 2 ;;
esac
