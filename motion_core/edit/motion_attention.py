"""Pose conditioning through a ControlNet, and Edit-Your-Motion's Motion Attention on its residuals.

**Where the residuals meet the UNet.** A ControlNet returns one residual per skip connection of the
UNet (``(b·f, C_j, H_j, W_j)``, the UNet's ``down_block_res_samples`` order) and one for the mid
block. diffusers adds the skip residuals after the down pass, and only the up blocks read the skips,
so :func:`attach_pose_control` adds them where each up block receives its ``res_hidden_states_tuple``
(a forward pre-hook) and the mid residual to the mid block's output (a forward hook): the same sums
as ``UNetMotionModel(..., down_block_additional_residuals=..., mid_block_additional_residual=...)``
(tested to float precision), but at a point where the UNet's own skip feature is at hand, which the
Motion Attention module needs. A pre-hook on the UNet runs the ControlNet on the call's own noisy
latents, timestep and prompt (per frame, as diffusers' AnimateDiff ControlNet pipeline does), so any
caller — training, inversion, sampling, guided or not — works unchanged.

**Motion Attention** (docs/METHODS.md §7; the paper gives the three attentions and their order, not
their sizes). For each residual ``r_j`` and the UNet's skip feature ``u_j`` of the same shape, one
:class:`MotionAttentionBlock` computes, pre-norm and residual as in a transformer block::

    r = r + SelfAttn(LN(r))                       tokens: the H·W positions of one frame
    r = r + CrossAttn(LN(r), u)                   queries from the skeleton features, keys/values the UNet's
    r = r + TemporalAttn(LN(r) + PE(frame))       tokens: the f frames of one position

Each attention's output projection starts at zero, so an untrained module passes the ControlNet's
residual through unchanged (the conditioning a plain pose ControlNet gives) and training starts from
there, as ControlNet's zero convolutions do. The sinusoidal frame encoding is diffusers'
``SinusoidalPositionalEmbedding`` (AnimateDiff's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import InputError

MAX_FRAMES = 64
"""Frames the temporal attention's position encoding covers."""


@dataclass
class PoseCondition:
    """What a pose ControlNet is conditioned on for one clip.

    Attributes:
        controlnet: a diffusers ``ControlNetModel`` (frozen; only read).
        images: ``(f, 3, H, W)`` float in ``[0, 1]``, the skeleton images at the frames' pixel size
            (ControlNet's own input range; OpenPose ControlNets take the drawing as it is).
        scale: ControlNet's ``conditioning_scale`` (1.0 as trained; 0 switches the residuals off).
    """

    controlnet: nn.Module
    images: torch.Tensor
    scale: float = 1.0

    @classmethod
    def from_image(cls, controlnet: nn.Module, image: torch.Tensor, scale: float = 1.0) -> PoseCondition:
        """From a ComfyUI IMAGE ``(f, H, W, 3)`` in ``[0, 1]`` (what the pose drawing nodes output)."""
        return cls(controlnet, image.movedim(-1, 1).float().clamp(0, 1), scale)

    @property
    def frames(self) -> int:
        return self.images.shape[0]

    def check_fits(self, frames: int, latent_size: tuple[int, int], factor: int, input_name: str = "pose") -> None:
        """Raise :class:`InputError` naming ``input_name`` unless the images are one per latent frame at
        the latents' pixel size (``latent_size`` × the VAE's ``factor``)."""
        height, width = (side * factor for side in latent_size)
        if self.images.shape[0] != frames or tuple(self.images.shape[2:]) != (height, width):
            raise InputError(input_name, f"has {self.images.shape[0]} pose images of "
                                         f"{self.images.shape[3]}x{self.images.shape[2]} but the clip has {frames} "
                                         f"frames of {width}x{height}; draw the poses at the clip's size and frame "
                                         "count (Align Pose's width and height)")


class MotionAttentionBlock(nn.Module):
    """Self-, cross- and temporal attention over one ControlNet residual (the module doc's formula).

    ``forward(control, features, frames)``: ``control`` and ``features`` ``(b·f, C, H, W)`` batch-major
    (``b·f + i``); returns the new residual, same shape.
    """

    def __init__(self, channels: int, heads: int):
        from diffusers.models.attention_processor import Attention
        from diffusers.models.embeddings import SinusoidalPositionalEmbedding

        super().__init__()
        if channels % heads:
            raise InputError("heads", f"{heads} heads do not divide {channels} channels; use a divisor")
        self.norms = nn.ModuleList([nn.LayerNorm(channels) for _ in range(3)])
        self.self_attention = Attention(channels, heads=heads, dim_head=channels // heads, bias=True,
                                        out_bias=True)
        self.cross_attention = Attention(channels, cross_attention_dim=channels, heads=heads,
                                         dim_head=channels // heads, bias=True, out_bias=True)
        self.temporal_attention = Attention(channels, heads=heads, dim_head=channels // heads, bias=True,
                                            out_bias=True)
        self.frame_position = SinusoidalPositionalEmbedding(channels, MAX_FRAMES)
        for attention in self.attentions():
            nn.init.zeros_(attention.to_out[0].weight)
            nn.init.zeros_(attention.to_out[0].bias)

    def attentions(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        return self.self_attention, self.cross_attention, self.temporal_attention

    def forward(self, control: torch.Tensor, features: torch.Tensor, frames: int) -> torch.Tensor:
        rows, channels, height, width = control.shape
        if frames > MAX_FRAMES:
            raise InputError("frames", f"Motion Attention encodes at most {MAX_FRAMES} frames, got {frames}")
        dtype = self.norms[0].weight.dtype
        r = control.to(dtype).flatten(2).transpose(1, 2)  # (b·f, H·W, C)
        u = features.to(dtype).flatten(2).transpose(1, 2)
        r = r + self.self_attention(self.norms[0](r))
        r = r + self.cross_attention(self.norms[1](r), encoder_hidden_states=u)
        # (b·f, H·W, C) -> (b·H·W, f, C): one sequence of frames per position.
        batch = rows // frames
        per_position = r.view(batch, frames, height * width, channels).transpose(1, 2).reshape(-1, frames, channels)
        per_position = per_position + self.temporal_attention(self.frame_position(self.norms[2](per_position)))
        r = per_position.view(batch, height * width, frames, channels).transpose(1, 2).reshape(rows, -1, channels)
        return r.transpose(1, 2).reshape(rows, channels, height, width).to(control.dtype)


class MotionAttention(nn.Module):
    """One :class:`MotionAttentionBlock` per residual of a ControlNet: ``blocks[j]`` for skip ``j`` (the
    UNet's ``down_block_res_samples`` order), the last for the mid block."""

    def __init__(self, channels: list[int], heads: int = 8):
        super().__init__()
        self.blocks = nn.ModuleList([MotionAttentionBlock(width, _heads_for(width, heads)) for width in channels])

    @classmethod
    def for_controlnet(cls, controlnet: nn.Module, heads: int = 8) -> MotionAttention:
        """Sized from the ControlNet's zero convolutions (each residual's channels, then the mid block's)."""
        return cls(residual_channels(controlnet), heads)

    @property
    def channels(self) -> list[int]:
        return [block.norms[0].normalized_shape[0] for block in self.blocks]


def residual_channels(controlnet: nn.Module) -> list[int]:
    """Channels of each residual a diffusers ``ControlNetModel`` returns: the skips', then the mid block's."""
    return [block.out_channels for block in controlnet.controlnet_down_blocks] + \
        [controlnet.controlnet_mid_block.out_channels]


def _heads_for(channels: int, heads: int) -> int:
    """``heads`` where it divides ``channels`` (SD1.5's 320/640/1280 with 8), else the largest divisor below."""
    return next(h for h in range(min(heads, channels), 0, -1) if channels % h == 0)


@dataclass
class _CallState:
    """What one UNet call's hooks share: the ControlNet's residuals and the next skip to pair."""

    frames: int = 0
    residuals: list[torch.Tensor] = field(default_factory=list)
    next_skip: int = 0


def attach_pose_control(unet: nn.Module, condition: PoseCondition,
                        motion_attention: MotionAttention | None = None) -> list:
    """Condition every call of ``unet`` (a ``UNetMotionModel`` view) on ``condition``'s poses, through
    ``motion_attention`` when given (else the plain ControlNet sum). Returns the hook handles
    (``handle.remove()`` undoes it all); ``unet`` is changed in place: pass a private view.

    Raises:
        InputError: naming ``controlnet`` when its residuals do not match the UNet's skips.
    """
    skips = 1 + sum(len(block.resnets) + (1 if getattr(block, "downsamplers", None) else 0)
                    for block in unet.down_blocks)
    channels = residual_channels(condition.controlnet)
    if len(channels) != skips + 1:
        raise InputError("controlnet", f"the ControlNet gives {len(channels) - 1} skip residuals but this model's "
                                       f"UNet has {skips} skip connections; use a ControlNet made for this checkpoint "
                                       "(SD1.5)")
    if motion_attention is not None and motion_attention.channels != channels:
        raise InputError("controlnet", f"the Motion Attention was trained with a ControlNet of residual widths "
                                       f"{motion_attention.channels}, this one has {channels}")
    state = _CallState()

    def run_controlnet(module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        text = args[2] if len(args) > 2 else kwargs["encoder_hidden_states"]
        batch, _, frames = sample.shape[:3]
        controlnet = condition.controlnet
        dtype = next(controlnet.parameters()).dtype
        per_frame = sample.transpose(1, 2).flatten(0, 1).to(dtype)  # (b·f, c, h, w)
        t = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(batch).repeat_interleave(frames)
        images = condition.images.to(sample.device, dtype)
        if images.shape[0] != frames:
            raise InputError("pose", f"has {images.shape[0]} frames but the clip being denoised has {frames}")
        with torch.no_grad():  # the ControlNet is frozen: only what it gives is trained on
            down, mid = controlnet(per_frame, t, encoder_hidden_states=text.to(dtype), controlnet_cond=images.repeat(
                batch, 1, 1, 1), conditioning_scale=condition.scale, return_dict=False)
        state.frames, state.residuals, state.next_skip = frames, [*down, mid], skips

    def conditioned(index: int, features: torch.Tensor) -> torch.Tensor:
        control = state.residuals[index].to(features.dtype)
        if motion_attention is not None:
            control = motion_attention.blocks[index](control, features, state.frames)
        return features + control

    def add_to_skips(module, args, kwargs):
        skips_in = kwargs["res_hidden_states_tuple"]
        first = state.next_skip - len(skips_in)
        state.next_skip = first
        kwargs["res_hidden_states_tuple"] = tuple(conditioned(first + i, skip) for i, skip in enumerate(skips_in))
        return args, kwargs

    def add_to_mid(module, args, output):
        return conditioned(skips, output)

    handles = [unet.register_forward_pre_hook(run_controlnet, with_kwargs=True)]
    handles += [block.register_forward_pre_hook(add_to_skips, with_kwargs=True) for block in unet.up_blocks]
    handles.append(unet.mid_block.register_forward_hook(add_to_mid))
    return handles
