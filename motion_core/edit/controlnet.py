"""A pose ControlNet for SD1.5 (Edit-Your-Motion's skeleton guidance) from the file a user has, offline.

ComfyUI users keep ControlNets in ``models/controlnet``: ``control_v11p_sd15_openpose.pth`` (ControlNet
1.1, cldm keys with the ``control_model.`` prefix, a pickle read with ``weights_only``), its
``.safetensors`` repackagings (often without the prefix), or diffusers-format files. diffusers'
``ControlNetModel.from_single_file`` converts all three given a local config
(``backbones/configs/sd15/controlnet``, shipped; ``configs`` replaces it, e.g. for tiny test models);
with ``original_config=`` it fails in diffusers 0.42.1, and without a config it reaches for a hub.
"""

from __future__ import annotations

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


def load_controlnet(path: str | Path, dtype: torch.dtype = torch.float32, configs: str | Path | None = None,
                    input_name: str = "controlnet"):
    """The ``ControlNetModel`` in ``path`` (``.safetensors``, or ``.pth``/``.ckpt`` read with
    ``weights_only``), in eval mode without gradients.

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
    config = Path(configs) if configs is not None else SD15_CONFIGS / "controlnet"
    try:
        model = ControlNetModel.from_single_file(state, config=str(config), local_files_only=True, torch_dtype=dtype)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise InputError(input_name, f"{path.name!r} is a ControlNet ({layout} keys) but not of SD1.5's shape "
                                     f"({str(err).splitlines()[0][:300]}); the pose ControlNet must match the "
                                     "SD1.5 checkpoint") from err
    return model.requires_grad_(False).eval()
