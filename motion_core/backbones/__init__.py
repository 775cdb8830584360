"""Model families behind one interface: encode text, encode/decode video, predict noise, schedule.

One module per family; :func:`load_backbone` reads a diffusers folder and picks the family.
``temporal`` finds the temporal attention layers that adapters attach to.
"""

from .base import ModelOptions, VideoBackbone
from .unet3d import UNet3DBackbone, load_backbone

__all__ = ["ModelOptions", "VideoBackbone", "UNet3DBackbone", "load_backbone"]
