"""Time and peak memory of training, sampling and decoding with each memory option, and the number
of UNet evaluations inversion and sampling make.

Every configuration runs in its own process: CPU peak memory is the process's peak RSS
(``ru_maxrss``), which no process can reset. Memory = peak during the measured work minus the peak
before it (model loaded, inputs made, one no-grad forward); on CUDA ``torch.cuda.max_memory_allocated``
after a reset. Time = median seconds per step after one warm-up step.

Models: ``tiny`` is the tiny text-to-video folder of ``motion_core.testing`` loaded through the
normal loader (what the tests run on); ``zeroscope`` is ZeroScope v2's UNet3D architecture (the
class defaults, as ModelScope) with random weights at 576x320, for a GPU (``--frames 24``);
``tiny-animatediff`` / ``animatediff`` the same for SD1.5 + a v2 motion module; ``tiny-wan`` the
tests' tiny Wan folder, ``wan`` Wan 2.1 T2V 1.3B (the shipped configs) with random weights, for a GPU
(``--model wan --frames 33 --width 832 --height 480 --kind lora``: Wan's own size; half = bf16, as
Wan's weights). Wan's attention is diffusers' own processor, so its rows skip ``attention=classic``.

Usage: python benchmarks/memory_options.py [--model tiny|zeroscope|tiny-animatediff|animatediff|tiny-wan|wan]
       [--frames 16] [--width 64] [--height 64] [--steps 4] [--kind temporal_attention] [--write]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TRAINING = {
    # name: (ModelOptions changes, TrainOptions changes)
    "baseline (fp32, sdpa)": ({"dtype": "fp32"}, {"precision": "fp32"}),
    "attention=classic": ({"dtype": "fp32", "attention": "classic"}, {"precision": "fp32"}),
    "gradient_checkpointing": ({"dtype": "fp32"}, {"precision": "fp32", "gradient_checkpointing": True}),
    "half-precision autocast": ({"dtype": "fp32"}, {"precision": "half"}),
    "half weights + autocast": ({"dtype": "half"}, {"precision": "half"}),
    "all: half + checkpointing": ({"dtype": "half"}, {"precision": "half", "gradient_checkpointing": True}),
}
SAMPLING = {
    "baseline (fp32, sdpa)": {"dtype": "fp32"},
    "attention=classic": {"dtype": "fp32", "attention": "classic"},
    "half weights": {"dtype": "half"},
}
DECODING = {f"vae_decode_chunk={chunk}": {"dtype": "fp32", "vae_decode_chunk": chunk} for chunk in (0, 8, 2)}


WAN_MODELS = ("tiny-wan", "wan")


def half_name(device, model: str = "tiny") -> str:
    if model in WAN_MODELS:
        return "bf16"  # Wan is released and run in bf16
    return "fp16" if device.type == "cuda" else "bf16"  # CPU kernels are bf16; GPUs of 8-16 GB: fp16


def resolve(options: dict, device, model: str = "tiny") -> dict:
    return {key: (half_name(device, model) if value == "half" else value) for key, value in options.items()}


def configurations(table: dict, model: str) -> dict:
    """The rows of ``table`` that mean something on ``model`` (Wan ignores the ``attention`` option)."""
    def applies(options) -> bool:
        first = options[0] if isinstance(options, tuple) else options
        return not (model in WAN_MODELS and "attention" in first)
    return {name: options for name, options in table.items() if applies(options)}


class Meter:
    """Peak memory above a baseline, and per-step times."""

    def __init__(self, device):
        import resource

        import torch

        self.torch, self.resource, self.device = torch, resource, device
        self.times, self.last = [], None

    def _peak(self) -> int:
        if self.device.type == "cuda":
            return self.torch.cuda.max_memory_allocated()
        return self.resource.getrusage(self.resource.RUSAGE_SELF).ru_maxrss * 1024

    def start(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()
        self.base = self._peak()
        self.last = time.perf_counter()

    def tick(self, *_) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now

    def result(self) -> dict:
        seconds = statistics.median(self.times[1:] or self.times) if self.times else float("nan")
        return {"memory_mb": (self._peak() - self.base) / 2**20, "seconds": seconds}


def load(model: str, options: dict):
    """The backbone of one configuration (zeroscope: no text encoder; prompts are not measured)."""
    import torch

    from motion_core.backbones.base import ModelOptions

    model_options = ModelOptions(device="auto", **options)
    if model in ("tiny", "tiny-animatediff", "tiny-wan"):
        from motion_core.backbones import load_backbone
        from motion_core.testing import (write_tiny_animatediff_folder, write_tiny_text_to_video_folder,
                                         write_tiny_wan_folder)

        write = {"tiny": write_tiny_text_to_video_folder, "tiny-animatediff": write_tiny_animatediff_folder,
                 "tiny-wan": write_tiny_wan_folder}[model]
        return load_backbone(write(Path(tempfile.mkdtemp()) / model), model_options)
    if model == "animatediff":
        return animatediff_backbone(model_options)
    if model == "wan":
        return wan_backbone(model_options)
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel

    from motion_core.backbones.unet3d import UNet3DBackbone, set_attention

    dtype = model_options.torch_dtype()
    unet, vae = UNet3DConditionModel().to(dtype), AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), latent_channels=4, layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4).to(dtype)
    set_attention(unet, model_options.attention)
    set_attention(vae, model_options.attention)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear").config
    return UNet3DBackbone(unet, vae, torch.nn.Module(), None, dict(scheduler), model_options)


def wan_backbone(model_options):
    """Wan 2.1 T2V 1.3B at real size with random weights, from the configs the pack ships (no text
    encoder: prompts are not measured)."""
    import json

    import torch
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    from motion_core.backbones.wan import WAN_CONFIGS, WanBackbone

    dtype = model_options.torch_dtype()
    transformer = WanTransformer3DModel.from_config(
        WanTransformer3DModel.load_config(WAN_CONFIGS / "t2v-1.3b" / "transformer")).to(dtype)
    vae = AutoencoderKLWan.from_config(AutoencoderKLWan.load_config(WAN_CONFIGS / "vae")).to(dtype)
    scheduler = json.loads((WAN_CONFIGS / "scheduler" / "scheduler_config.json").read_text())
    return WanBackbone(transformer, vae, torch.nn.Module(), None, scheduler, model_options)


def animatediff_backbone(model_options):
    """SD1.5 + a v2 motion module at real size with random weights (no text encoder: prompts are not measured)."""
    import json

    import torch
    from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel, UNetMotionModel

    from motion_core.backbones.animatediff import SD15_CONFIGS, AnimateDiffBackbone, MotionModuleInfo
    from motion_core.backbones.latent_unet import set_attention

    def config(part):
        return json.loads((SD15_CONFIGS / part / ("scheduler_config.json" if part == "scheduler" else "config.json"))
                          .read_text())

    dtype = model_options.torch_dtype()
    unet = UNetMotionModel.from_unet2d(UNet2DConditionModel.from_config(config("unet")), MotionAdapter()).to(dtype)
    vae = AutoencoderKL.from_config(config("vae")).to(dtype)
    set_attention(unet, model_options.attention)
    set_attention(vae, model_options.attention)
    return AnimateDiffBackbone(unet, vae, torch.nn.Module(), None, config("scheduler"), model_options,
                               MotionModuleInfo("v2", 32, {}))


def arguments(doc: str, steps: int, child_values: int | None = None) -> argparse.ArgumentParser:
    """The options every benchmark script takes (model, clip shape, steps, --write, the hidden --child)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--model", choices=("tiny", "zeroscope", "tiny-animatediff", "animatediff", *WAN_MODELS),
                        default="tiny", help="tiny / tiny-animatediff / tiny-wan: the tests' tiny models; zeroscope "
                                             "/ animatediff (SD1.5 + mm v2) / wan (2.1 T2V 1.3B): real size, "
                                             "random weights")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--width", type=int, default=64, help="pixels (zeroscope: 576)")
    parser.add_argument("--height", type=int, default=64, help="pixels (zeroscope: 320)")
    parser.add_argument("--steps", type=int, default=steps, help="measured steps per row (the first is a warm-up)")
    parser.add_argument("--kind", default="temporal_attention",
                        help="the parameterisation trained (default: %(default)s; lora, motion_embeddings)")
    parser.add_argument("--write", action="store_true", help="record the figures in BENCHMARKS.md")
    parser.add_argument("--child", nargs=child_values, help=argparse.SUPPRESS)
    return parser


def child_command(script: str, args, *child: str) -> list[str]:
    """The command measuring one row in a process of its own (with the parent's model and shape)."""
    return [sys.executable, script, "--model", args.model, "--frames", str(args.frames), "--width", str(args.width),
            "--height", str(args.height), "--steps", str(args.steps), "--kind", args.kind, "--child", *child]


def child(args) -> dict:
    import torch

    from motion_core.backbones.wan import TEXT_TOKENS
    from motion_core.pipeline import VideoLatents, generate, train_adapter
    from motion_core.train import TrainOptions

    task, name = args.child
    table = {"train": TRAINING, "sample": SAMPLING, "decode": DECODING}[task]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    options = table[name][0] if task == "train" else table[name]
    backbone = load(args.model, resolve(options, device, args.model))
    denoiser, scale = backbone.denoiser_module, backbone.latent_scale()
    latents = torch.randn(1, denoiser.config.in_channels, backbone.latent_frames(args.frames), args.height // scale,
                          args.width // scale, device=device)
    # The text encoder is not measured: embeddings of the shape each family's encoder gives.
    tokens, text_dim = ((TEXT_TOKENS, denoiser.config.text_dim) if args.model in WAN_MODELS
                        else (77, denoiser.config.cross_attention_dim))
    text = torch.randn(1, tokens, text_dim, device=device, dtype=backbone.dtype)
    backbone.encode_prompt = lambda prompts: text.expand(len(prompts), -1, -1)
    with torch.no_grad():  # warm-up, so that one-time allocations are part of the baseline
        if task == "decode":
            backbone.decode_latents(latents[:, :, :1].to(backbone.dtype))
        else:
            backbone.call_denoiser(denoiser, latents, torch.tensor([1], device=device), text)
    meter = Meter(device)
    reference = VideoLatents(latents, backbone.fingerprint)
    meter.start()
    if task == "train":
        train_options = TrainOptions(**resolve(table[name][1], device, args.model))
        train_adapter(backbone, reference, "", kind=args.kind, steps=args.steps, options=train_options,
                      callback=lambda *step: meter.tick())
    elif task == "sample":
        noise = VideoLatents(latents, backbone.fingerprint, noise=True)
        generate(backbone, noise, "", steps=args.steps, cfg=9.0, progress=meter.tick)
    else:
        backbone.decode_latents(latents.to(backbone.dtype))
        meter.tick()
    return meter.result()


def count_evaluations(steps: int) -> list[list]:
    """UNet evaluations (calls) and batch rows of inversion and sampling on the tiny model."""
    import torch

    from motion_core.backbones import load_backbone
    from motion_core.pipeline import VideoLatents, generate, invert_reference
    from motion_core.testing import write_tiny_text_to_video_folder

    backbone = load_backbone(write_tiny_text_to_video_folder(Path(tempfile.mkdtemp()) / "tiny"))
    calls = []
    backbone.unet.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    latents = VideoLatents(torch.randn(1, 4, 8, 8, 8), backbone.fingerprint)
    rows = []
    for what, run in (
        ("inversion (empty prompt, no guidance)", lambda: invert_reference(backbone, latents, steps)),
        ("sampling, cfg 9 (cond + uncond batched)",
         lambda: generate(backbone, VideoLatents(latents.samples, latents.backbone, True), "x", "", steps, 9.0)),
        ("sampling, cfg 1 (no guidance)",
         lambda: generate(backbone, VideoLatents(latents.samples, latents.backbone, True), "x", "", steps, 1.0)),
    ):
        calls.clear()
        run()
        rows.append([what, steps, len(calls), sum(calls), "yes" if len(calls) == steps else "NO"])
    return rows


def main():
    args = arguments(__doc__, steps=4, child_values=2).parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    def measure(task: str, name: str) -> dict:
        done = subprocess.run(child_command(__file__, args, task, name), capture_output=True, text=True,
                              env={**os.environ})
        if done.returncode:
            return {"error": done.stderr.strip().splitlines()[-1][:120]}
        return json.loads(done.stdout.strip().splitlines()[-1])

    from benchmarks._report import table, write_section

    def section(task: str, configurations: dict, unit: str) -> str:
        rows, base = [], None
        for name in configurations:
            result = measure(task, name)
            print(task, name, result, flush=True)
            if "error" in result:
                rows.append([name, "failed: " + result["error"], "", "", ""])
                continue
            base = base or result
            rows.append([name, f"{result['memory_mb']:.0f}", f"{result['seconds']:.3f}",
                         f"{result['memory_mb'] / base['memory_mb']:.2f}" if base["memory_mb"] > 0 else "-",
                         f"{result['seconds'] / base['seconds']:.2f}"])
        return table(["option", "peak memory above baseline (MB)", unit, "memory vs baseline",
                      "time vs baseline"], rows)

    shape = f"{args.frames} frames × {args.width}×{args.height} pixels"
    weights = "tiny diffusers folder" if args.model.startswith("tiny") else "random weights"
    half = "bf16" if args.model in WAN_MODELS else "bf16 on the CPU, fp16 on CUDA"
    body = (f"Model: {args.model} ({weights}), batch 1, {shape}. Half = {half}. One process per row; memory is the "
            "peak above the loaded model (process RSS on the CPU, allocated CUDA memory on a GPU).\n\n"
            f"**Training** (VMC + SMA, `{args.kind}` adapter, {args.steps} steps):\n\n"
            + section("train", configurations(TRAINING, args.model), "s / step")
            + "\n\n**Sampling** (cfg 9: conditional and unconditional in one batch):\n\n"
            + section("sample", configurations(SAMPLING, args.model), "s / step")
            + "\n\n**Decoding** the latents with the VAE:\n\n" + section("decode", DECODING, "s (whole clip)"))
    if args.model == "tiny":
        body += ("\n\n**UNet evaluations** (counted with a forward hook, "
                 "`python benchmarks/memory_options.py` with the tiny model):\n\n"
                 + table(["run", "steps", "UNet calls", "batch rows", "calls = steps"], count_evaluations(10)))
    print(body)
    if args.write:
        write_section(f"memory_options_{args.model}", f"Memory options: {args.model} model", body)


if __name__ == "__main__":
    main()
