"""Write diffusers models as the original single files users download: an SD1.5 (LDM) checkpoint and an
AnimateDiff motion module, for tests of the loaders that read them.

This is the inverse of diffusers' own conversion (``diffusers.loaders.single_file_utils``), written
from the published key layouts; ``tests/unit/test_animatediff_files.py`` proves it by loading the
files back through diffusers and comparing outputs with the models they were written from.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
          "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
"""diffusers ResnetBlock2D layer -> LDM ResBlock layer (UNet)."""

VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def unet_prefixes(config: dict) -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) of every block of a ``UNet2DConditionModel`` with ``config``."""
    per, levels = config["layers_per_block"], len(config["block_out_channels"])
    down, up = config["down_block_types"], config["up_block_types"]
    pairs = [("time_embedding.linear_1", "time_embed.0"), ("time_embedding.linear_2", "time_embed.2"),
             ("conv_in", "input_blocks.0.0"), ("conv_norm_out", "out.0"), ("conv_out", "out.2"),
             ("mid_block.resnets.0", "middle_block.0"), ("mid_block.attentions.0", "middle_block.1"),
             ("mid_block.resnets.1", "middle_block.2")]
    for i in range(levels):
        for j in range(per):
            pairs.append((f"down_blocks.{i}.resnets.{j}", f"input_blocks.{(per + 1) * i + j + 1}.0"))
            if down[i].startswith("CrossAttn"):
                pairs.append((f"down_blocks.{i}.attentions.{j}", f"input_blocks.{(per + 1) * i + j + 1}.1"))
        for j in range(per + 1):
            pairs.append((f"up_blocks.{i}.resnets.{j}", f"output_blocks.{(per + 1) * i + j}.0"))
            if up[i].startswith("CrossAttn"):
                pairs.append((f"up_blocks.{i}.attentions.{j}", f"output_blocks.{(per + 1) * i + j}.1"))
        if i < levels - 1:
            pairs.append((f"down_blocks.{i}.downsamplers.0.conv", f"input_blocks.{(per + 1) * (i + 1)}.0.op"))
            slot = 2 if up[i].startswith("CrossAttn") else 1
            pairs.append((f"up_blocks.{i}.upsamplers.0", f"output_blocks.{(per + 1) * i + per}.{slot}"))
    return sorted(pairs, key=lambda pair: -len(pair[0]))


def _renamed(name: str, prefixes: list[tuple[str, str]], layers: dict[str, str]) -> str:
    for new, old in prefixes:
        if name.startswith(new + "."):
            rest = name[len(new) + 1:]
            if ".resnets." in new:
                for layer, original in layers.items():
                    if rest.startswith(layer + "."):
                        rest = original + rest[len(layer):]
                        break
            return f"{old}.{rest}"
    raise KeyError(f"no LDM name for {name}")


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    """A diffusers ``UNet2DConditionModel``'s tensors under SD1.5's ``model.diffusion_model.`` keys."""
    prefixes = unet_prefixes(dict(unet.config))
    return {"model.diffusion_model." + _renamed(name, prefixes, RESNET): tensor.clone()
            for name, tensor in unet.state_dict().items()}


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    """A diffusers ``AutoencoderKL``'s tensors under SD1.5's ``first_stage_model.`` keys (LDM layout:
    decoder levels counted from the bottom, attention as 1×1 convolutions)."""
    levels = len(vae.config.block_out_channels)
    prefixes = [("encoder.conv_norm_out", "encoder.norm_out"), ("decoder.conv_norm_out", "decoder.norm_out")]
    for part in ("encoder", "decoder"):
        prefixes += [(f"{part}.mid_block.resnets.{j}", f"{part}.mid.block_{j + 1}") for j in range(2)]
        prefixes.append((f"{part}.mid_block.attentions.0", f"{part}.mid.attn_1"))
    for i in range(levels):
        prefixes += [(f"encoder.down_blocks.{i}.resnets.{j}", f"encoder.down.{i}.block.{j}") for j in range(8)]
        prefixes.append((f"encoder.down_blocks.{i}.downsamplers.0", f"encoder.down.{i}.downsample"))
        level = levels - 1 - i
        prefixes += [(f"decoder.up_blocks.{i}.resnets.{j}", f"decoder.up.{level}.block.{j}") for j in range(8)]
        prefixes.append((f"decoder.up_blocks.{i}.upsamplers.0", f"decoder.up.{level}.upsample"))
    prefixes.sort(key=lambda pair: -len(pair[0]))
    out = {}
    for name, tensor in vae.state_dict().items():
        if name.startswith(("encoder.", "decoder.")) and not name.startswith(("encoder.conv_in", "encoder.conv_out",
                                                                              "decoder.conv_in", "decoder.conv_out")):
            name = _renamed(name, prefixes, {"conv_shortcut": "nin_shortcut"})
            if ".attn_1." in name:
                layer, _, kind = name.rpartition(".")
                head, _, last = layer.rpartition(".attn_1.")
                name = f"{head}.attn_1.{VAE_ATTENTION[last]}.{kind}"
                if kind == "weight" and tensor.ndim == 2:
                    tensor = tensor[:, :, None, None]
        out["first_stage_model." + name] = tensor.clone()
    return out


def text_encoder_to_ldm(text_encoder) -> dict[str, torch.Tensor]:
    """A transformers ``CLIPTextModel``'s tensors under SD1.5's ``cond_stage_model.transformer.text_model.`` keys."""
    out = {}
    for name, tensor in text_encoder.state_dict().items():
        name = name if name.startswith("text_model.") else "text_model." + name
        out["cond_stage_model.transformer." + name] = tensor.clone()
    return out


def write_sd15_checkpoint(path: Path, unet, vae, text_encoder) -> Path:
    """One SD1.5-layout checkpoint (``.safetensors`` or, for any other suffix, a ``torch.save`` file)."""
    state = {**unet_to_ldm(unet), **vae_to_ldm(vae), **text_encoder_to_ldm(text_encoder)}
    return _save(path, state)


def sinusoidal_positions(length: int, width: int) -> torch.Tensor:
    """AnimateDiff's positional encoding ``(1, length, width)``: sin on even, cos on odd channels."""
    position = torch.arange(length).unsqueeze(1)
    rate = torch.exp(torch.arange(0, width, 2) * (-math.log(10000.0) / width))
    pe = torch.zeros(1, length, width)
    pe[0, :, 0::2] = torch.sin(position * rate)
    pe[0, :, 1::2] = torch.cos(position * rate)
    return pe


def motion_adapter_to_original(adapter, positional_encoding: bool = True) -> dict[str, torch.Tensor]:
    """A diffusers ``MotionAdapter``'s tensors under the original motion-module keys
    (``…motion_modules.M.temporal_transformer.transformer_blocks.0.attention_blocks.{0|1}…``), with a
    ``pos_encoder.pe`` per attention block (left out with ``positional_encoding=False``, as AnimateLCM)."""
    out = {}
    for name, tensor in adapter.state_dict().items():
        if name.endswith("pos_embed.pe"):
            if positional_encoding:
                block = name[: -len("pos_embed.pe")]
                original = re.sub(r"(motion_modules\.\d+)\.", r"\1.temporal_transformer.", block)
                for slot in (0, 1):
                    out[f"{original}attention_blocks.{slot}.pos_encoder.pe"] = tensor.clone()
            continue
        name = re.sub(r"(motion_modules\.\d+)\.", r"\1.temporal_transformer.", name)
        name = (name.replace(".norm1.", ".norms.0.").replace(".norm2.", ".norms.1.").replace(".norm3.", ".ff_norm.")
                .replace(".attn1.", ".attention_blocks.0.").replace(".attn2.", ".attention_blocks.1."))
        out[name] = tensor.clone()
    return out


def write_motion_module(path: Path, adapter, positional_encoding: bool = True) -> Path:
    return _save(path, motion_adapter_to_original(adapter, positional_encoding))


def write_configs(folder: Path, unet, vae, text_encoder, adapter, scheduler) -> Path:
    """The ``configs`` part for non-standard sizes: each model's diffusers config, and the motion
    adapter's heads and groups."""
    folder = Path(folder)
    unet.save_config(folder / "unet")
    vae.save_config(folder / "vae")
    text_encoder.config.to_json_file(_made(folder / "text_encoder") / "config.json")
    scheduler.save_config(folder / "scheduler")
    settings = {key: adapter.config[key] for key in ("motion_num_attention_heads", "motion_norm_num_groups")}
    (_made(folder / "motion_adapter") / "config.json").write_text(json.dumps(settings))
    return folder


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _save(path: Path, state: dict[str, torch.Tensor]) -> Path:
    path = Path(path)
    _made(path.parent)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        torch.save(state, path)
    return path


def controlnet_to_cldm(controlnet, prefix: str = "control_model.") -> dict[str, torch.Tensor]:
    """A diffusers ``ControlNetModel``'s tensors under ControlNet 1.x's cldm keys (``prefix`` + the
    UNet encoder's LDM names, ``input_hint_block``, ``zero_convs``, ``middle_block_out``)."""
    config = dict(controlnet.config)
    levels = len(config["block_out_channels"])
    encoder = [(new, old) for new, old in unet_prefixes({**config, "up_block_types": ["UpBlock2D"] * levels})
               if not new.startswith(("up_blocks", "conv_norm_out", "conv_out"))]
    hints = len(controlnet.controlnet_cond_embedding.blocks)
    own = [("controlnet_cond_embedding.conv_in", "input_hint_block.0"),
           ("controlnet_cond_embedding.conv_out", f"input_hint_block.{2 * hints + 2}"),
           *((f"controlnet_cond_embedding.blocks.{i}", f"input_hint_block.{2 * i + 2}") for i in range(hints)),
           *((f"controlnet_down_blocks.{i}", f"zero_convs.{i}.0") for i in range(len(controlnet.controlnet_down_blocks))),
           ("controlnet_mid_block", "middle_block_out.0")]
    prefixes = sorted(encoder + own, key=lambda pair: -len(pair[0]))
    return {prefix + _renamed(name, prefixes, RESNET): tensor.clone() for name, tensor in controlnet.state_dict().items()}
