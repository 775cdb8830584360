"""DDIM inversion: run deterministic DDIM backwards from clean latents to the noise that makes them.

Ascending timesteps; at each t the model's noise prediction moves x one step up the schedule
(docs/METHODS.md §6): ``x0 = (x - sqrt(1-abar_prev)·eps) / sqrt(abar_prev)``,
``x = sqrt(abar_t)·x0 + sqrt(1-abar_t)·eps``. diffusers' ``DDIMInverseScheduler`` computes this; the
empty prompt and no guidance are the methods' defaults (VMC: 75 steps; Motion Inversion and
MotionDirector: 50).
"""

from __future__ import annotations

import torch

from .progress import LatentPreview, Progress
from .sample import EpsFn, ddim_scheduler, run_scheduler


def invert(eps: EpsFn, x0: torch.Tensor, scheduler_config: dict, steps: int = 50,
           progress: Progress | None = None, preview: LatentPreview | None = None) -> torch.Tensor:
    """Latents ``(b, c, f, h, w)`` -> the inverted noise ``x_T`` of the same shape (``steps`` predictions)."""
    return run_scheduler(ddim_scheduler(scheduler_config, inverse=True), eps, x0, steps, progress, preview)
