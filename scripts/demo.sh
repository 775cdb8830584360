#!/usr/bin/env bash
# Runs the whole pipeline headless on a fresh machine, with nothing downloaded: writes a tiny
# random text-to-video model (motion_core.testing) and a clip of a moving square into .demo/, then
# `python -m motion_core transfer` trains, inverts, generates and writes MP4s to demo_output/.
# The random model draws noise: this shows the pipeline running, not motion transfer quality.
# Extra arguments go to `python -m motion_core transfer` (e.g. --steps 100).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

if [ ! -f .demo/tiny-t2v/model_index.json ]; then
    python - <<'PY'
from motion_core.testing import moving_square_frames, write_tiny_text_to_video_folder
from motion_core.video import write_video

write_tiny_text_to_video_folder(".demo/tiny-t2v")
write_video(moving_square_frames(8, 32, 32), ".demo/square.mp4", fps=8)
PY
fi
python -m motion_core transfer --model .demo/tiny-t2v --video .demo/square.mp4 --frames 8 \
    --prompt "a square is moving" --target "a blue circle" --out demo_output \
    --steps 40 --inversion-steps 20 --sampling-steps 20 "$@"
