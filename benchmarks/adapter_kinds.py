"""Each parameterisation's training cost (seconds per step, peak memory) on the tiny model, and its
size (trainable numbers, file size) at ZeroScope's and AnimateDiff's architectures.

Training rows run in their own process each (CPU peak memory is the process's peak RSS, which
cannot be reset), with the same clip, objective (VMC + SMA) and steps; ratios are against the
temporal-attention (VMC) row of the same run. Sizes are counted on ZeroScope's UNet3D config (576×320,
24 frames) and SD1.5 + AnimateDiff v2 (512×512, 16 frames) built on the ``meta`` device (real names
and shapes, no weights).

Usage: python benchmarks/adapter_kinds.py [--model tiny|tiny-animatediff|zeroscope|animatediff] [--frames 16] [--width 64]
       [--height 64] [--steps 6] [--write]
"""

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = {
    # row: (parameterisation, adapter options)
    "temporal_attention (VMC)": ("temporal_attention", {}),
    "lora r32 (MotionDirector, temporal)": ("lora", {}),
    "lora r32 + spatial (dual path, skip 0.2)": ("lora", {"spatial": True}),
    "motion_embeddings, widest blocks": ("motion_embeddings", {}),
    "motion_embeddings, all blocks": ("motion_embeddings", {"blocks": "all"}),
}


def child(args) -> dict:
    import torch

    from benchmarks.memory_options import Meter, load
    from motion_core.adapters import ADAPTER_KINDS
    from motion_core.pipeline import VideoLatents, train_adapter
    from motion_core.train import TrainOptions

    kind, options = KINDS[args.child]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backbone = load(args.model, {"dtype": "fp32"})
    scale = backbone.latent_scale()
    latents = torch.randn(1, backbone.unet.config.in_channels, args.frames, args.height // scale, args.width // scale,
                          generator=torch.Generator().manual_seed(0)).to(device)
    text = torch.randn(1, 77, backbone.unet.config.cross_attention_dim, device=device)
    backbone.encode_prompt = lambda prompts: text.expand(len(prompts), -1, -1)  # the text encoder is not measured
    with torch.no_grad():  # warm-up: one-time allocations belong to the baseline
        backbone.call_denoiser(backbone.unet, latents, torch.tensor([1], device=device), text)
    meter = Meter(device)
    meter.start()
    result = train_adapter(backbone, VideoLatents(latents, backbone.fingerprint), "", kind=kind, steps=args.steps,
                           lr=ADAPTER_KINDS[kind].default_lr, options=TrainOptions(precision="fp32"),
                           adapter_options=options, callback=lambda *step: meter.tick())
    numbers = sum(t.numel() for t in result.adapter.to_tensors().values())
    return {**meter.result(), "numbers": numbers, "final_loss": result.history[-1]["total"]}


ARCHITECTURES = {
    "zeroscope": ("ZeroScope's architecture (UNet3D config on the meta device; 576×320 pixels = 72×40 latents, "
                  "24 frames; embeddings keep 32 frame slots)", (24, 40, 72)),
    "animatediff": ("AnimateDiff's architecture (SD1.5 + mm v2 on the meta device; 512×512 pixels = 64×64 latents, "
                    "16 frames; embeddings keep 32 frame slots)", (16, 64, 64)),
}


def published_unet(architecture: str):
    """The denoiser of a published architecture on the ``meta`` device (names and shapes, no weights)."""
    import json

    import torch
    from diffusers import MotionAdapter, UNet2DConditionModel, UNet3DConditionModel, UNetMotionModel

    from motion_core.backbones.animatediff import SD15_CONFIGS

    with torch.device("meta"):
        if architecture == "zeroscope":
            return UNet3DConditionModel()  # the class defaults are ModelScope's / ZeroScope's architecture
        unet = UNet2DConditionModel.from_config(json.loads((SD15_CONFIGS / "unet" / "config.json").read_text()))
        return UNetMotionModel.from_unet2d(unet, MotionAdapter(), load_weights=False)


def published_sizes(architecture: str) -> list[list]:
    """Trainable numbers and fp32 file size of each row at a published architecture (:data:`ARCHITECTURES`)."""
    import torch

    from motion_core.adapters import ADAPTER_KINDS

    unet, shape = published_unet(architecture), ARCHITECTURES[architecture][1]
    rows = []
    for name, (kind, options) in KINDS.items():
        if kind == "lora":  # LoRA's A is drawn on the CPU (seeded); its size is small
            adapter = ADAPTER_KINDS[kind].for_unet(unet, "", shape, **options)
        else:
            with torch.device("meta"):
                adapter = ADAPTER_KINDS[kind].for_unet(unet, "", shape, **options)
        tensors = adapter.to_tensors()
        numbers = sum(t.numel() for t in tensors.values())
        rows.append([name, len(tensors), f"{numbers / 1e6:.2f} M", f"{numbers * 4 / 2**20:.0f} MB"])
    return rows


def main():
    from benchmarks.memory_options import arguments, child_command

    args = arguments(__doc__, steps=6).parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    from benchmarks._report import table, write_section

    rows, base = [], None
    for name in KINDS:
        done = subprocess.run(child_command(__file__, args, name), capture_output=True, text=True, env={**os.environ})
        if done.returncode:
            rows.append([name, "failed: " + done.stderr.strip().splitlines()[-1][:120], "", "", "", ""])
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(name, result, flush=True)
        base = base or result
        rows.append([name, f"{result['numbers'] / 1e3:.1f} k", f"{result['seconds']:.3f}",
                     f"{result['seconds'] / base['seconds']:.2f}", f"{result['memory_mb']:.0f}",
                     f"{result['memory_mb'] / base['memory_mb']:.2f}" if base["memory_mb"] > 0 else "-"])
    shape = f"{args.frames} frames × {args.width}×{args.height} pixels"
    body = (f"**Training** on the {args.model} model, batch 1, {shape}, fp32, VMC + SMA objective, each kind at its "
            f"method's learning rate, {args.steps} steps (median s/step after the first). Memory: peak above the "
            "loaded model (process RSS on the CPU, allocated CUDA memory on a GPU).\n\n"
            + table(["parameterisation", "trainable numbers", "s / step", "time vs VMC", "peak memory (MB)",
                     "memory vs VMC"], rows)
            + ("\n\nOn the tiny model the widest and all block sets are the same three transformers (its down/up "
               "temporal transformers are all 32 channels wide); they differ at ZeroScope's size below."
               if args.model == "tiny" else "")
            + "".join(f"\n\n**Size at {description}:**\n\n"
                      + table(["parameterisation", "tensors", "trainable numbers", "file (fp32)"],
                              published_sizes(architecture))
                      for architecture, (description, _) in ARCHITECTURES.items()))
    print(body)
    if args.write:
        write_section(f"adapter_kinds_{args.model}", f"Parameterisations: cost per kind ({args.model} model)", body)


if __name__ == "__main__":
    main()
