"""The progress callback every long loop of the library accepts, and the latent preview of samplers."""

from collections.abc import Callable

import torch

Progress = Callable[[int, "int | None"], None]
"""``progress(done, total)`` after each unit of work (total None when unknown). Whatever it raises
(ComfyUI's interrupt, Ctrl-C in the command line) cancels the loop and propagates."""

LatentPreview = Callable[[torch.Tensor], None]
"""``preview(x0)`` after each sampler step, with that step's estimate of the clean latents ``(b, c, f,
h, w)`` (detached, on the model's device): what a front end draws while sampling (ComfyUI's latent
previews). It must not change the tensor."""
