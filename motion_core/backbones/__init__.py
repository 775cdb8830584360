"""Model families behind one interface (:class:`VideoBackbone`), picked from the user's files.

One module per family, each defining one :class:`VideoBackbone` subclass, which registers it in
:data:`FAMILIES`. Adding a family is a module here plus its import below; the pipeline, training,
the objectives, inversion, sampling and the adapters reach it only through the interface:
its denoiser call and :class:`~motion_core.sampling.Sampling`, and its motion sites
(:mod:`.sites`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .base import FAMILIES, describe_contents, Denoiser, ModelOptions, Parts, VideoBackbone
from .single_files import refuse_gguf
from .sites import LAYOUTS, MotionSite, SiteAttention, motion_sites, site_attentions
from .unet3d import UNet3DBackbone
from .animatediff import AnimateDiffBackbone  # noqa: E402  (registers after unet3d: folders are tried in order)
from .wan import WanBackbone  # noqa: E402


def family_for(path: str | Path, input_name: str = "model", parts: Parts | None = None) -> type[VideoBackbone]:
    """The family whose files ``path`` (with the extra ``parts``) holds; :class:`InputError` naming
    what each family takes."""
    path = Path(path)
    refuse_gguf(path, input_name)
    for family in FAMILIES.values():
        if family.recognises(path, parts):
            return family
    if len(FAMILIES) == 1:  # the family's own checks say best what is wrong with the folder
        return next(iter(FAMILIES.values()))
    choices = "; or ".join(family.describe for family in FAMILIES.values())
    raise InputError(input_name, f"{path.name!r} is not a model this pack can load ({describe_contents(path)}); "
                                 f"choose {choices}")


def _check_parts(family: type[VideoBackbone], parts: Parts | None) -> type[VideoBackbone]:
    for name in parts or {}:
        if name not in family.parts:
            raise InputError(name, f"{family.describe} takes no {name.replace('_', ' ')}; leave it out (none)")
    return family


def check_model(path: str | Path, input_name: str = "model", parts: Parts | None = None) -> None:
    """Check, without loading weights, that ``path`` (with ``parts``) holds a model some family loads
    (for node validation)."""
    _check_parts(family_for(path, input_name, parts), parts).check_files(Path(path), input_name, parts)


def load_backbone(path: str | Path, options: ModelOptions = ModelOptions(), input_name: str = "model",
                  parts: Parts | None = None) -> VideoBackbone:
    """Load the model at ``path`` (with the extra files ``parts``, e.g. AnimateDiff's motion module)
    with the family its files belong to (see :data:`FAMILIES`)."""
    return _check_parts(family_for(path, input_name, parts), parts).load(Path(path), options, input_name, parts)


__all__ = ["FAMILIES", "AnimateDiffBackbone", "WanBackbone", "LAYOUTS", "Denoiser", "ModelOptions", "MotionSite", "SiteAttention", "VideoBackbone",
           "UNet3DBackbone", "check_model", "family_for", "load_backbone", "motion_sites", "site_attentions"]
