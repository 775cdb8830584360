"""Cost of each motion objective as a fraction of one training step of the tiny UNet3D.

One training step = UNet3D forward at batch 1, 8 frames × 16×16 latents, plain noise MSE, backward
and an AdamW update (the reference the issue sets). An objective's cost = evaluating it on that
step's tensors and back-propagating to the predicted noise (the part of the step an objective adds
or replaces). Both are measured in the same process, interleaved round by round so that drift in
the machine's speed affects both alike; each figure is the median over rounds (an objective's time
in one round is the mean of several calls, as one call is far below timer resolution noise).

Usage: python benchmarks/objectives.py [--rounds 15] [--calls 20] [--frames 8] [--size 16]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks._report import table, write_section  # noqa: E402
from motion_core.objectives import ObjectiveSpec, StepTensors, build_objective, x0_motion  # noqa: E402
from motion_core.objectives.sma import sma_global, sma_local  # noqa: E402
from motion_core.testing import TINY_TEXT_DIM, tiny_unet3d  # noqa: E402

NO_SMA = dict(sma_global_weight=0.0, sma_local_weight=0.0)


def sma_only(global_term: bool, local_term: bool):
    """The SMA terms alone (x0-space motion + wavelet and/or Fourier term), as the default spec has them."""
    def loss(step: StepTensors, _generator) -> torch.Tensor:
        d_hat, d = x0_motion(step, "scaled")
        total = d_hat.new_zeros(())
        if global_term:
            total = total + 0.4 * sma_global(d_hat, d, 2, "haar")
        if local_term:
            total = total + 0.2 * sum(sma_local(d_hat, d))
        return total
    return loss


def whole(spec: ObjectiveSpec):
    objective = build_objective(spec)
    return lambda step, generator: objective(step, generator).total


OBJECTIVES = {
    "noise MSE": whole(ObjectiveSpec(base_loss="mse", **NO_SMA)),
    "VMC (released: abs, cosine per pixel)": whole(ObjectiveSpec(**NO_SMA)),
    "VMC (paper: cosine per frame pair)": whole(ObjectiveSpec(vmc_variant="paper", **NO_SMA)),
    "VMC (L2)": whole(ObjectiveSpec(vmc_variant="l2", **NO_SMA)),
    "MotionDirector debiased (+ MSE)": whole(ObjectiveSpec(base_loss="motion_director", **NO_SMA)),
    "SMA global (J=2, haar)": sma_only(True, False),
    "SMA local (FFT amplitude + phase)": sma_only(False, True),
    "**SMA global + local**": sma_only(True, True),
    "VMC + SMA (default spec, whole)": whole(ObjectiveSpec()),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20, help="objective calls averaged per round")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=16, help="latent height and width")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    from diffusers import DDPMScheduler

    unet = tiny_unet3d().train()
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4, weight_decay=1e-2)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, 4, args.frames, args.size, args.size, generator=gen)
    text = torch.randn(1, 8, TINY_TEXT_DIM, generator=gen)

    def train_step() -> StepTensors:
        t = torch.randint(0, 1000, (1,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        x_t = scheduler.add_noise(x0, eps, t)
        eps_hat = unet(x_t, t, encoder_hidden_states=text).sample
        loss = torch.nn.functional.mse_loss(eps_hat, eps)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return StepTensors.for_noise_prediction(eps_hat.detach(), eps, x0, x_t, scheduler.alphas_cumprod[t])

    def time_objective(loss_fn, step: StepTensors) -> float:
        start = time.perf_counter()
        for _ in range(args.calls):
            leaf = step.prediction.clone().requires_grad_()
            abar = step.signal_scale.square()
            loss_fn(StepTensors.for_noise_prediction(leaf, step.target, step.x0, step.x_t, abar), gen).backward()
        return (time.perf_counter() - start) / args.calls

    for _ in range(3):  # warm-up: allocator, kernels, lazy initialisation
        step = train_step()
        for loss_fn in OBJECTIVES.values():
            time_objective(loss_fn, step)

    step_times, objective_times = [], {name: [] for name in OBJECTIVES}
    for _ in range(args.rounds):
        start = time.perf_counter()
        step = train_step()
        step_times.append(time.perf_counter() - start)
        for name, loss_fn in OBJECTIVES.items():
            objective_times[name].append(time_objective(loss_fn, step))

    step_s = statistics.median(step_times)
    rows = [["training step (forward + MSE + backward + AdamW)", f"{step_s * 1e3:.1f}", "100 %"]]
    for name, times in objective_times.items():
        cost = statistics.median(times)
        rows.append([name, f"{cost * 1e3:.2f}", f"{100 * cost / step_s:.2f} %"])
    sma = statistics.median(objective_times["**SMA global + local**"]) / step_s
    body = (f"Tiny UNet3D (1.3 M parameters, `motion_core.testing.tiny_unet3d`), batch 1, {args.frames} frames × "
            f"{args.size}×{args.size} latents, fp32, {torch.get_num_threads()} threads. Objective = its forward and "
            f"backward to the predicted noise on one step's tensors. Medians of {args.rounds} interleaved rounds "
            f"({args.calls} objective calls averaged per round).\n\n"
            + table(["what", "ms (median)", "share of one training step"], rows)
            + f"\n\nSMA global + local together: **{100 * sma:.2f} %** of a training step "
              f"(target: under 5 %): {'met' if sma < 0.05 else 'NOT met'}.\n")
    path = write_section("objectives", "Motion objectives: cost per training step", body)
    print(body)
    print(f"written to {path.relative_to(Path(__file__).resolve().parents[1])}")


if __name__ == "__main__":
    main()
