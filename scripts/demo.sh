#!/usr/bin/env bash
# The README's main command. On a fresh machine, with nothing downloaded: a bundled reference clip
# of the toy world (assets/toy/) -> train a motion adapter (MotionDirector's LoRA) on the toy AnimateDiff
# model shipped in models/toy-animatediff -> invert -> generate a new object on the same path. Writes
# an MP4, an enlarged GIF and a PNG comparing the two clips with their tracked paths to demo_output/,
# and prints how well the motion was transferred, with and without the adapter. Extra arguments go to `python -m motion_core.toy.demo` (see --help:
# --clip, --prompt, --target, --method, --steps, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
python -m motion_core.toy.demo "$@"
