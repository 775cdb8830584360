"""Nodes that load a text-to-video model and move clips in and out of its latent space."""

import os

from ..motion_core.backbones import check_model, load_backbone
from ..motion_core.backbones.base import ATTENTION, DTYPES, OFFLOAD, ModelOptions
from ..motion_core.pipeline import decode, describe_fitting, encode_reference
from ..motion_core.video import MAX_SIDE
from ..motion_core.errors import InputError
from ._comfy import (CATEGORY, CHECKPOINTS, Progress, compute_device, diffusion_model_file_path, file_fingerprint,
                     input_problem, io, list_diffusion_model_files, list_motion_modules, list_text_encoder_files,
                     list_vae_files, list_video_models, load_video_model, motion_module_path, node_id,
                     sd1_tokenizer_folder, text_encoder_path, ui, use_model, vae_path, video_model_path)
from .types import Latents, VideoInfo, VideoModel


NONE = "none"
PART_INPUTS = {"vae": "vae_name", "text_encoder": "text_encoder_name", "low_noise_model": "low_noise_model_name"}
"""Load Video Model's input of each model part whose name differs from the part's."""


def model_parts(model_name: str, path: str, motion_module: str = NONE, vae_name: str = NONE,
                text_encoder_name: str = NONE, low_noise_model_name: str = NONE) -> dict[str, str]:
    """The extra files (``motion_core.backbones`` parts) Load Video Model's inputs name for the model at
    ``path``: ComfyUI's SD1.5 tokenizer for checkpoint files, the motion module, the VAE and text encoder,
    Wan 2.2 A14B's low-noise expert."""
    is_checkpoint = model_name.startswith(CHECKPOINTS) and not os.path.isdir(path)
    parts = {"tokenizer": sd1_tokenizer_folder()} if is_checkpoint else {}
    for part, name, locate in (("motion_module", motion_module, motion_module_path), ("vae", vae_name, vae_path),
                               ("text_encoder", text_encoder_name, text_encoder_path),
                               ("low_noise_model", low_noise_model_name, diffusion_model_file_path)):
        if name and name != NONE:
            parts[part] = locate(name)
    return parts


def _named_as_inputs(load):
    """Run ``load()``; an :class:`InputError` about a part names the node input that chose it."""
    try:
        return load()
    except InputError as err:
        raise err.renamed(PART_INPUTS) from None


class LoadVideoModel(io.ComfyNode):
    """Load a video model: a ModelScope/ZeroScope diffusers folder; SD1.5 (a checkpoint or diffusers
    folder) with an AnimateDiff motion module, or an AnimateDiff diffusers folder; Wan (a diffusers
    folder, or ComfyUI's transformer file with its VAE and text encoder files)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("LoadVideoModel"),
            display_name="Load Video Model",
            category=CATEGORY,
            description="Loads a text-to-video model: ModelScope, ZeroScope or a compatible fine-tune (a diffusers "
                        "folder in models/diffusers); AnimateDiff: a Stable Diffusion 1.5 checkpoint (models/"
                        "checkpoints) or diffusers folder with a motion module (models/animatediff_models); Wan 2.1 "
                        "text-to-video: a diffusers folder, or the files ComfyUI uses (models/diffusion_models with a "
                        "VAE and a text encoder; Wan 2.2 A14B: both expert files). Never runs pickled code.",
            inputs=[
                io.Combo.Input("model_name", options=list_video_models(),
                               tooltip="A diffusers folder (with model_index.json) in models/diffusers; "
                                       "checkpoints/<file>: an SD1.5 checkpoint to animate with a motion module; "
                                       "diffusion_models/<file>: a Wan text-to-video model (e.g. "
                                       "wan2.1_t2v_1.3B_fp16), with vae_name and text_encoder_name."),
                io.Combo.Input("dtype", options=["auto", *DTYPES], default="auto",
                               tooltip="Weight precision. auto: fp16 on a GPU (half the memory), fp32 on "
                                       "the CPU. bf16 suits recent GPUs."),
                io.Combo.Input("offload", options=list(OFFLOAD), default="none",
                               tooltip="model: keep the text encoder, UNet and VAE in system memory and move "
                                       "each to the GPU only while it runs (for 8-12 GB cards; slower)."),
                io.Combo.Input("attention", options=list(ATTENTION), default="sdpa",
                               tooltip="sdpa: PyTorch's fused attention (less memory, faster). classic: the "
                                       "full attention matrix, for comparison or old setups."),
                io.Int.Input("vae_decode_chunk", default=8, min=0, max=1024,
                             tooltip="Frames the VAE encodes/decodes at a time: lower uses less memory on "
                                     "long clips. 0 does all frames at once."),
                io.Combo.Input("motion_module", options=[NONE, *list_motion_modules()],
                               default=NONE, optional=True,
                               tooltip="AnimateDiff motion module (models/animatediff_models) for an SD1.5 model: "
                                       "mm_sd_v15_v2, v3_sd15_mm, AnimateLCM… none for ModelScope/ZeroScope and "
                                       "AnimateDiff folders, which carry their own."),
                io.Combo.Input("vae_name", options=[NONE, *list_vae_files()], default=NONE, optional=True,
                               tooltip="The VAE (models/vae) for a Wan model from diffusion_models: "
                                       "wan_2.1_vae, or wan2.2_vae for Wan 2.2 TI2V-5B. none for diffusers folders "
                                       "and checkpoints."),
                io.Combo.Input("text_encoder_name", options=[NONE, *list_text_encoder_files()], default=NONE,
                               optional=True,
                               tooltip="The text encoder (models/text_encoders) for a Wan model from "
                                       "diffusion_models: umt5_xxl_fp16, _bf16 or _fp8_e4m3fn_scaled. none for "
                                       "diffusers folders and checkpoints."),
                io.Combo.Input("low_noise_model_name", options=[NONE, *list_diffusion_model_files()], default=NONE,
                               optional=True,
                               tooltip="Wan 2.2 A14B: the low-noise expert (models/diffusion_models, e.g. "
                                       "wan2.2_t2v_low_noise_14B_fp16), with model_name the high-noise expert "
                                       "(diffusion_models/wan2.2_t2v_high_noise_14B_fp16). Both load as one model "
                                       "that switches to this expert below 87.5 % noise, as Wan 2.2 does. none: "
                                       "one model."),
            ],
            outputs=[VideoModel.Output("model", display_name="model",
                                       tooltip="The loaded model, for the other motion transfer nodes.")],
        )

    @classmethod
    def validate_inputs(cls, model_name, motion_module=NONE, vae_name=NONE, text_encoder_name=NONE,
                        low_noise_model_name=NONE):
        def check():
            path = video_model_path(model_name)
            parts = model_parts(model_name, path, motion_module, vae_name, text_encoder_name, low_noise_model_name)
            _named_as_inputs(lambda: check_model(path, "model_name", parts))

        return input_problem(check)

    @classmethod
    def fingerprint_inputs(cls, model_name, motion_module=NONE, vae_name=NONE, text_encoder_name=NONE,
                           low_noise_model_name=NONE, **_):
        def files() -> list[str]:
            path = video_model_path(model_name)
            found = [os.path.join(path, part) for part in ("model_index.json", "unet")] if os.path.isdir(path) else [path]
            return found + list(model_parts(model_name, path, motion_module, vae_name, text_encoder_name,
                                            low_noise_model_name).values())

        return file_fingerprint(files)

    @classmethod
    def execute(cls, model_name, dtype, offload, attention, vae_decode_chunk, motion_module=NONE,
                vae_name=NONE, text_encoder_name=NONE, low_noise_model_name=NONE) -> io.NodeOutput:
        options = ModelOptions(dtype=dtype, device=compute_device(), offload=offload,
                               vae_decode_chunk=vae_decode_chunk, attention=attention)
        path = video_model_path(model_name)
        parts = model_parts(model_name, path, motion_module, vae_name, text_encoder_name, low_noise_model_name)
        files = [path, *parts.values()] if offload == "none" else []
        return io.NodeOutput(_named_as_inputs(lambda: load_video_model(
            lambda: load_backbone(path, options, "model_name", parts), files, options.device, options.torch_dtype())))


class EncodeReference(io.ComfyNode):
    """Reference frames -> clean latents of the model."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("EncodeReference"),
            display_name="Encode Reference",
            category=CATEGORY,
            description="Turns the reference frames into the model's latents, resizing (cover and centre crop) to "
                        "a size the model takes. Every frame given is used (set the frame count on the loader), "
                        "except that Wan takes 1 + 4k frames and, with video_info, gets the clip resampled to "
                        "its 16 fps; the node says when it did either.",
            inputs=[
                VideoModel.Input("model", tooltip="From Load Video Model."),
                io.Image.Input("frames", tooltip="Reference frames (at least 2), e.g. from Load Reference Video."),
                io.Int.Input("width", default=0, min=0, max=MAX_SIDE, step=8,
                             tooltip="Width to encode at. 0: the frames' width rounded down to what the model "
                                     "takes. ZeroScope v2 576w was trained at 576x320."),
                io.Int.Input("height", default=0, min=0, max=MAX_SIDE, step=8,
                             tooltip="Height to encode at; 0 as for the width."),
                VideoInfo.Input("video_info", optional=True,
                                tooltip="From Load Reference Video: the clip's frame rate. A model trained at "
                                        "one rate (Wan: 16 fps) then gets the clip resampled to it, as the "
                                        "loader's force_rate would; without it the frames are taken as they "
                                        "are."),
            ],
            outputs=[
                Latents.Output("latents", display_name="latents",
                               tooltip="Clean latents of the reference, for training and inversion."),
                io.Image.Output("encoded_frames", display_name="encoded_frames",
                                tooltip="The frames as encoded (after resizing), for previews."),
            ],
        )

    @classmethod
    def execute(cls, model, frames, width, height, video_info=None) -> io.NodeOutput:
        scale = model.latent_scale()
        use_model(model, "encode", (1, 4, frames.shape[0], (height or frames.shape[1]) // scale,
                                    (width or frames.shape[2]) // scale))
        fps = (video_info or {}).get("loaded_fps")
        latents, fitted = encode_reference(model, frames, width, height, fps=fps,
                                           progress=Progress(2 * frames.shape[0]))
        note = describe_fitting(model, frames.shape[0], fps, fitted.shape[0])
        return io.NodeOutput(latents, fitted, ui=ui.PreviewText(note) if note else None)


class DecodeVideo(io.ComfyNode):
    """Clean latents -> IMAGE frames."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("DecodeVideo"),
            display_name="Decode Video",
            category=CATEGORY,
            description="Turns generated latents into frames for ComfyUI's preview and save nodes.",
            inputs=[
                VideoModel.Input("model", tooltip="The model that made the latents."),
                Latents.Input("latents", tooltip="From Generate Video (or Encode Reference)."),
            ],
            outputs=[io.Image.Output("frames", display_name="frames",
                                     tooltip="The video's frames, as an IMAGE batch.")],
        )

    @classmethod
    def execute(cls, model, latents) -> io.NodeOutput:
        use_model(model, "decode", latents.samples.shape)
        return io.NodeOutput(decode(model, latents, Progress(latents.samples.shape[0] * latents.samples.shape[2])))


NODES = [LoadVideoModel, EncodeReference, DecodeVideo]
