"""Peak memory and time of one-shot training steps, with and without gradient checkpointing.

Each configuration runs in its own process (CPU peak memory is the process's peak RSS, so runs must
not share a process). Memory = peak during training minus peak before it (model, inputs, one
no-grad forward): on CUDA from ``torch.cuda.max_memory_allocated``, on the CPU from ``ru_maxrss``.
Time = median seconds per step after one warm-up step. The tiny UNet3D runs anywhere; ``--model
modelscope`` builds the published ModelScope/ZeroScope UNet with random weights (GPU only in practice).

Usage: python benchmarks/train_memory.py [--model tiny|modelscope] [--frames 16] [--size 32] [--steps 4]
Prints a table; ``--write`` also records it in BENCHMARKS.md (benchmarks/results/train_memory.md).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def one_run(model: str, frames: int, size: int, steps: int, checkpointing: bool) -> dict:
    import resource

    import torch
    from diffusers import DDPMScheduler, UNet3DConditionModel

    from motion_core.adapters import TemporalAttentionAdapter
    from motion_core.objectives import ObjectiveSpec
    from motion_core.testing import TINY_TEXT_DIM, tiny_unet3d
    from motion_core.train import TrainOptions, train

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if model == "tiny":
        unet, text_dim = tiny_unet3d(), TINY_TEXT_DIM
    else:
        unet, text_dim = UNet3DConditionModel(), 1024  # the class defaults are ModelScope's config
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    unet = unet.requires_grad_(False).to(device, dtype)
    x0 = torch.randn(1, 4, frames, size, size, device=device)
    text = torch.randn(1, 77, text_dim, device=device, dtype=dtype)
    with torch.no_grad():
        unet(x0.to(dtype), torch.tensor([1], device=device), encoder_hidden_states=text)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.max_memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times, last = [], [time.perf_counter()]

    def tick(step, total, terms):
        if device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    train(unet, TemporalAttentionAdapter.for_unet(unet), x0, text, DDPMScheduler().alphas_cumprod, ObjectiveSpec(),
          steps=steps, lr=1e-4, options=TrainOptions(gradient_checkpointing=checkpointing), callback=tick)
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"memory_mb": (peak - base) / 2**20, "seconds": statistics.median(times[1:] or times)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("tiny", "modelscope"), default="tiny")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=32, help="latent height and width")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--child", choices=("plain", "checkpointed"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.model, args.frames, args.size, args.steps, args.child == "checkpointed")))
        return
    rows = {}
    for mode in ("plain", "checkpointed"):
        command = [sys.executable, __file__, "--model", args.model, "--frames", str(args.frames), "--size",
                   str(args.size), "--steps", str(args.steps), "--child", mode]
        output = subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ}).stdout
        rows[mode] = json.loads(output.strip().splitlines()[-1])
    from benchmarks._report import table, write_section

    plain = rows["plain"]
    body = (f"{args.model} UNet3D, batch 1, {args.frames} frames × {args.size}×{args.size} latents, VMC + SMA "
            f"objective, temporal-attention adapter; memory = training peak above the no-grad baseline.\n\n"
            + table(["", "training memory (MB)", "s / step", "memory vs plain", "time vs plain"],
                    [[mode, f"{r['memory_mb']:.0f}", f"{r['seconds']:.3f}", f"{r['memory_mb'] / plain['memory_mb']:.2f}",
                      f"{r['seconds'] / plain['seconds']:.2f}"] for mode, r in rows.items()]))
    print(body)
    if args.write:
        write_section("train_memory", "Training: gradient checkpointing, memory and time", body)


if __name__ == "__main__":
    main()
