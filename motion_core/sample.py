"""DDIM sampling with classifier-free guidance, as small functions (k-diffusion style).

A *denoise function* is any ``denoise(x, t) -> prediction`` callable (the noise ``eps`` or ``v``, as
the scheduler config's ``prediction_type`` says); guidance, adapters and progress are passed in,
never hidden in state. Latents are ``(b, c, f, h, w)``. Families reach these through their
:class:`~motion_core.sampling.Sampling` (:class:`~motion_core.sampling.DiscreteDiffusion`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from .errors import InputError
from .progress import LatentPreview, Progress
from .sampling import LatentGuide

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ddim_scheduler(scheduler_config: dict, inverse: bool = False):
    """diffusers' DDIM (or DDIM-inverse) scheduler built from a model's scheduler config.

    ``clip_sample`` is forced off: the schedulers' class default (True) clips x0 to [-1, 1], which
    is wrong for latent models (docs/METHODS.md §6).
    """
    from diffusers import DDIMInverseScheduler, DDIMScheduler

    cls = DDIMInverseScheduler if inverse else DDIMScheduler
    accepted = inspect.signature(cls.__init__).parameters  # the inverse scheduler takes fewer keys
    config = {k: v for k, v in scheduler_config.items() if k in accepted}
    config["clip_sample"] = False
    return cls.from_config(config)


def check_steps(steps: int, input_name: str = "steps") -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 1000:
        raise InputError(input_name, f"{steps!r} is not valid; use a whole number from 1 to 1000 (e.g. 30-75)")


def set_timesteps(scheduler, steps: int, input_name: str = "steps") -> None:
    """``scheduler.set_timesteps(steps)``, refusing a count whose timesteps leave the model's schedule.

    With "leading" spacing and ``steps_offset`` 1 (ModelScope's, ZeroScope's and SD1.5's configs), as
    many steps as training timesteps (1000) put the first one at 1000, past the last (999): diffusers
    then fails with an IndexError deep inside its step.
    """
    last = scheduler.config.num_train_timesteps - 1
    scheduler.set_timesteps(steps)
    if int(scheduler.timesteps.max()) <= last:
        return
    fewer = steps - 1
    while fewer > 1:
        scheduler.set_timesteps(fewer)
        if int(scheduler.timesteps.max()) <= last:
            break
        fewer -= 1
    offset = scheduler.config.steps_offset
    raise InputError(input_name, f"{steps} steps run past the end of this model's noise schedule ({last + 1} "
                                 f"timesteps, shifted by its steps_offset {offset}); use at most {fewer}")


def run_scheduler(scheduler, eps: EpsFn, x: torch.Tensor, steps: int, progress: Progress | None = None,
                  preview: LatentPreview | None = None, guide: LatentGuide | None = None) -> torch.Tensor:
    """Step ``x`` through ``scheduler``'s ``steps`` timesteps: one noise prediction per step.

    Before each prediction ``guide(x, t, index)`` may replace the latent the step starts from (DDIM's
    step is a function of that latent, t and the prediction alone, so it continues from any latent).
    After each step ``preview(x0_hat)`` sees the step's clean-latent estimate (the scheduler's
    ``pred_original_sample``), then ``progress(done, steps)``, which may raise to cancel.
    """
    check_steps(steps)
    set_timesteps(scheduler, steps)
    for done, t in enumerate(scheduler.timesteps, start=1):
        if guide is not None:
            x = guide(x, t, done - 1)
        step = scheduler.step(eps(x, t), t, x)
        x = step.prev_sample
        if preview is not None:
            preview(step.pred_original_sample)
        if progress is not None:
            progress(done, steps)
    return x


def guided(predict: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
           cond: torch.Tensor, uncond: torch.Tensor | None = None, scale: float = 1.0) -> EpsFn:
    """Classifier-free guidance as a noise predictor.

    ``predict(x, t, text)`` runs the model; with ``uncond`` and ``scale != 1`` both halves go through
    it as one batch ``[uncond, cond]`` (one model call per step) and
    ``eps = eps_u + scale·(eps_c - eps_u)``; otherwise only the conditional half runs. ``t`` is one
    timestep for the batch or one per sample ``(b,)`` (flow sampling's), doubled with the batch.
    """
    if uncond is None or scale == 1.0:
        return lambda x, t: predict(x, t, cond.expand(x.shape[0], *cond.shape[1:]))

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        text = torch.cat([uncond.expand(b, *uncond.shape[1:]), cond.expand(b, *cond.shape[1:])])
        per_sample = isinstance(t, torch.Tensor) and t.ndim == 1 and t.shape[0] == b > 1
        eps_u, eps_c = predict(torch.cat([x, x]), torch.cat([t, t]) if per_sample else t, text).chunk(2)
        return eps_u + scale * (eps_c - eps_u)

    return eps


def sample(eps: EpsFn, x_T: torch.Tensor, scheduler_config: dict, steps: int = 50,
           progress: Progress | None = None, preview: LatentPreview | None = None,
           guide: LatentGuide | None = None) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from ``x_T`` to clean latents, ``steps`` noise predictions; ``guide``
    as in :func:`run_scheduler`."""
    return run_scheduler(ddim_scheduler(scheduler_config), eps, x_T, steps, progress, preview, guide)
