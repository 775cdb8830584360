#!/usr/bin/env bash
# Re-measure every figure that README.md and BENCHMARKS.md give for the toy Wan model, after
# models/toy-wan was replaced (each command is the one its BENCHMARKS.md section names).
#
#     bash benchmarks/rerun_toy_wan.sh            # about 2.6 h on 2 CPU cores
#
# (Measured in pieces on 2026-11-30: the model, shape and motion-word figures 13 min; the memorisation
# rows 75 min, on one thread; the transfer runs about 75 min on one thread, run beside the
# memorisation rows and the tests.)
#
# The memorisation rows go to a new log, benchmarks/results/toy_memorisation_wan.new.jsonl (refused
# if it exists), and their table is written from it; the log the old figures came from stays until
# you replace it with the new one. Then recalibrate tests/unit/test_training_carries_motion_wan.py
# and rewrite the README's toy Wan paragraphs from the new tables.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ]; then
    source .venv/bin/activate
fi
LOG=benchmarks/results/toy_memorisation_wan.new.jsonl
if [ -e "$LOG" ]; then
    echo "rerun_toy_wan.sh: $LOG exists (an earlier rerun); move it away first" >&2
    exit 2
fi
WAN=models/toy-wan

python benchmarks/toy_model.py --model "$WAN" --clips 8 --write
python benchmarks/toy_shapes.py --write
python benchmarks/toy_motion_words.py --models models/toy-t2v models/toy-animatediff "$WAN" --write

# Memorisation and transfer from fresh noise: one row per line, 2 references x 4 seeds each.
memorise() {
    python benchmarks/toy_memorisation.py --model "$WAN" --references 2 --seeds 4 --threads 1 --log "$LOG" "$@"
}
memorise --method none --steps 300
memorise --method motiondirector --timesteps 0 1 --steps 300 --lr 5e-4
memorise --method motiondirector --timesteps 0 1 --steps 600 --lr 2e-3
memorise --method motiondirector --timesteps 0.6 1 --steps 300 --lr 2e-3
memorise --method motiondirector --timesteps 0.6 1 --steps 600 --lr 2e-3
memorise --method motion-inversion --timesteps 0.6 1 --steps 300 --lr 2e-2
memorise --method vmc --timesteps 0 1 --steps 300 --lr 1e-4
memorise --method vmc --timesteps 0.6 1 --steps 300 --lr 1e-3
memorise --method vmc --timesteps 0.6 1 --steps 600 --lr 3e-3
memorise --method vmc --timesteps 0.6 1 --steps 900 --lr 3e-3
memorise --method vmc+sma --timesteps 0.6 1 --steps 900 --lr 3e-3
memorise --method vmc+sma --timesteps 0.6 1 --steps 900 --lr 3e-3 --objective-fields x0_estimate=scaled
python benchmarks/toy_memorisation.py --report "$LOG" --write

# Transfer with the pack's default settings, from inverted, fresh and blended noise.
transfer() {
    python benchmarks/toy_transfer.py --model "$WAN" --references 4 --seeds 3 --no-training-noise random direct blend \
        --write "$@"
}
transfer --steps 100
python benchmarks/toy_transfer.py --model "$WAN" --references 8 --seeds 3 --steps 100 --methods motion-inversion \
    --training-free --no-training-noise random direct blend --write --section motion_inversion_24
transfer --methods --training-free --section node_defaults \
    --variants motion-inversion:timestep_low=0,steps=400 motiondirector:steps=400 vmc:steps=400
transfer --methods --training-free --section trained_to_memorise \
    --variants motiondirector:lr=0.002,steps=600,timestep_low=0.6 vmc:lr=0.003,steps=600,timestep_low=0.6
echo "done: compare git diff BENCHMARKS.md, then replace benchmarks/results/toy_memorisation_wan.jsonl with $LOG"
