"""A pose ControlNet for SD1.5 (Edit-Your-Motion's skeleton guidance) from the file a user has, offline.

ComfyUI users keep ControlNets in ``models/controlnet``: ``control_v11p_sd15_openpose.pth`` (ControlNet
1.1, cldm keys with the ``control_model.`` prefix, a pickle read with ``weights_only``), its
``.safetensors`` repackagings (often without the prefix), or diffusers-format files. diffusers'
``ControlNetModel.from_single_file`` converts all three given a local config
(``backbones/configs/sd15/controlnet``, shipped; ``configs`` replaces it, e.g. for tiny test models);
with ``original_config=`` it fails in diffusers 0.42.1, and without a config it reaches for a hub.

A ControlNet is a copy of its UNet's encoder, so given the model it will condition,
:func:`controlnet_config` derives the config from the UNet's (SD1.5's gives the shipped one exactly,
tested) and reads the width of the pose-image encoder from the file itself: one loader for SD1.5
files and for any other size of the same architecture (the toy world's).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from ..backbones.animatediff import SD15_CONFIGS
from ..backbones.single_files import read_state_dict
from ..errors import InputError

CLDM_PREFIX = "control_model."
LAYOUT_MARKERS = {"cldm": "input_hint_block.0.weight", "diffusers": "controlnet_cond_embedding.conv_in.weight"}
"""A tensor every ControlNet file of that key layout holds (after the ``control_model.`` prefix)."""


def controlnet_layout(state: dict[str, torch.Tensor]) -> str | None:
    """``cldm`` or ``diffusers`` for the tensors of a ControlNet file (either prefix), None for anything else."""
    names = {name.removeprefix(CLDM_PREFIX) for name in state}
    return next((layout for layout, marker in LAYOUT_MARKERS.items() if marker in names), None)


UNET_FIELDS = ("in_channels", "flip_sin_to_cos", "freq_shift", "block_out_channels", "layers_per_block",
               "downsample_padding", "mid_block_scale_factor", "act_fn", "norm_num_groups", "norm_eps",
               "cross_attention_dim", "transformer_layers_per_block", "encoder_hid_dim", "encoder_hid_dim_type",
               "use_linear_projection", "class_embed_type", "addition_embed_type", "addition_time_embed_dim",
               "num_class_embeds", "upcast_attention", "resnet_time_scale_shift",
               "projection_class_embeddings_input_dim", "only_cross_attention")
"""The fields a ``ControlNetModel`` shares with the UNet it was copied from (diffusers' ``from_unet``)."""
BLOCKS_2D = {"CrossAttnDownBlockMotion": "CrossAttnDownBlock2D", "DownBlockMotion": "DownBlock2D"}
"""An AnimateDiff UNet's down blocks are its image UNet's with motion modules added."""


def controlnet_config(unet_config: dict, state: dict[str, torch.Tensor]) -> dict:
    """The ``ControlNetModel`` config for a UNet (``UNet2DConditionModel`` or AnimateDiff's
    ``UNetMotionModel`` config) and the tensors of a ControlNet file (either key layout): the UNet's
    encoder, with the pose-image encoder's widths read from the file."""
    config = json.loads((SD15_CONFIGS / "controlnet" / "config.json").read_text())
    config.update({name: unet_config[name] for name in UNET_FIELDS if name in unet_config})
    config["down_block_types"] = [BLOCKS_2D.get(kind, kind) for kind in unet_config["down_block_types"]]
    # UNetMotionModel calls the head count num_attention_heads; SD1.5's configs (and ControlNet's) call it
    # attention_head_dim, a historical misnomer diffusers keeps.
    heads = unet_config.get("attention_head_dim") or unet_config.get("num_attention_heads")
    config["attention_head_dim"], config["num_attention_heads"] = heads, None
    config["conditioning_embedding_out_channels"] = hint_widths(state)
    return config


def hint_widths(state: dict[str, torch.Tensor]) -> list[int]:
    """The pose-image encoder's widths (SD1.5: 16, 32, 96, 256) from its convolutions' output channels.

    Both layouts list the same convolutions in the same order (cldm's ``input_hint_block.<2k>``;
    diffusers' ``controlnet_cond_embedding.conv_in`` then ``blocks.<k>``): widths ``c0, c0, c1, c1, …,
    c_last`` (each width, then the strided step to the next), and cldm a last one to the UNet's width.
    """
    names = {name.removeprefix(CLDM_PREFIX): tensor for name, tensor in state.items()}
    if LAYOUT_MARKERS["cldm"] in names:
        convs = sorted((int(name.split(".")[1]), tensor) for name, tensor in names.items()
                       if name.startswith("input_hint_block.") and name.endswith(".weight"))
        outputs = [tensor.shape[0] for _, tensor in convs][:-1]
    else:
        blocks = sorted((int(name.split(".")[2]), tensor) for name, tensor in names.items()
                        if name.startswith("controlnet_cond_embedding.blocks.") and name.endswith(".weight"))
        outputs = [names["controlnet_cond_embedding.conv_in.weight"].shape[0], *(t.shape[0] for _, t in blocks)]
    return outputs[0::2]


def load_controlnet(path: str | Path, dtype: torch.dtype = torch.float32, configs: str | Path | None = None,
                    input_name: str = "controlnet", unet_config: dict | None = None):
    """The ``ControlNetModel`` in ``path`` (``.safetensors``, or ``.pth``/``.ckpt`` read with
    ``weights_only``), in eval mode without gradients.

    Its config: the folder ``configs`` if given, else derived from ``unet_config`` (the model it will
    condition, :func:`controlnet_config`), else SD1.5's.

    Raises:
        InputError: naming ``input_name`` for a file that is not a ControlNet, or not one of SD1.5's
            shape (e.g. an SDXL ControlNet), with what was found.
    """
    from diffusers import ControlNetModel

    path = Path(path)
    if not path.is_file():
        raise InputError(input_name, f"{path.name!r} does not exist")
    state = read_state_dict(path, input_name)
    layout = controlnet_layout(state)
    if layout is None:
        raise InputError(input_name, f"{path.name!r} is not a ControlNet (no '{LAYOUT_MARKERS['cldm']}' or "
                                     f"'{LAYOUT_MARKERS['diffusers']}' tensor); choose an SD1.5 pose ControlNet such "
                                     "as control_v11p_sd15_openpose from models/controlnet")
    try:
        with tempfile.TemporaryDirectory() as derived:
            if configs is not None:
                config = Path(configs)
            elif unet_config is not None:
                config = Path(derived)
                (config / "config.json").write_text(json.dumps(controlnet_config(dict(unet_config), state)))
            else:
                config = SD15_CONFIGS / "controlnet"
            model = ControlNetModel.from_single_file(state, config=str(config), local_files_only=True,
                                                     torch_dtype=dtype)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise InputError(input_name, f"{path.name!r} is a ControlNet ({layout} keys) but not of this model's shape "
                                     f"({str(err).splitlines()[0][:300]}); the pose ControlNet must match the "
                                     "SD1.5 checkpoint") from err
    return model.requires_grad_(False).eval()
