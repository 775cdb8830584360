"""Nodes of Edit-Your-Motion (docs/METHODS.md §7): motion editing from two clips' poses."""

import os

from ..motion_core.edit import SIZE_MEASURES, align_pose_keypoint, parse_pose_keypoint, read_pose_file
from ..motion_core.edit.controlnet import load_controlnet
from ..motion_core.edit.pipeline import EditTraining, edit_video, pose_images, subject_frames, train_edit
from ..motion_core.errors import InputError
from ..motion_core.pipeline import VideoLatents, latent_samples
from ..motion_core.train import PRECISIONS, TrainOptions, loss_series
from ..motion_core.video import MAX_SIDE
from ._comfy import (CATEGORY, Progress, file_fingerprint, input_problem, io, list_input_files, model_file_path,
                     node_id, register_beside, resolve_input_file, ui, use_model)
from .training import DEFAULT_PROMPT, training_progress
from .types import EditAdapter, Latents, PoseControlNet, PoseKeypoint, VideoModel

CONTROLNET_FOLDER = "controlnet"
"""ComfyUI's own model folder of ControlNets (``models/controlnet``)."""
POSE_FILE_EXTENSIONS = frozenset({".json"})


class AlignPose(io.ComfyNode):
    """Place the reference clip's skeleton on the source subject (Edit-Your-Motion's skeleton offset)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("AlignPose"),
            display_name="Align Pose",
            category=CATEGORY,
            description="Moves and scales the reference clip's skeleton so that it stands where the source's "
                        "subject stands, at its size: one shift and scale for the whole clip, so the reference's "
                        "own movement is kept. Takes the poses of DWPose or OpenPose nodes (comfyui_controlnet_aux); "
                        "where a frame shows several people, the largest is used. Draws the aligned skeletons for "
                        "an OpenPose ControlNet.",
            inputs=[
                PoseKeypoint.Input("source_pose", tooltip="Poses of the clip to edit (its subject keeps its "
                                                          "appearance), from a DWPose or OpenPose node."),
                PoseKeypoint.Input("reference_pose", tooltip="Poses of the clip whose motion the subject should "
                                                             "perform, from a DWPose or OpenPose node."),
                io.Int.Input("anchor_frame", default=0, min=0, max=100_000,
                             tooltip="The frame where both skeletons are measured (counted from 0). Pick one "
                                     "where both clips show the whole body."),
                io.Int.Input("width", default=0, min=0, max=MAX_SIDE, step=8,
                             tooltip="Width of the pose images in pixels. 0 = the source poses' canvas (or "
                                     "follows the height). With both set, scaled to cover and centre-cropped, "
                                     "as Load Reference Video resizes frames."),
                io.Int.Input("height", default=0, min=0, max=MAX_SIDE, step=8,
                             tooltip="Height of the pose images in pixels; 0 as for the width."),
                io.Combo.Input("size_measure", options=list(SIZE_MEASURES), default=SIZE_MEASURES[0],
                               tooltip="How the two skeletons' sizes are compared. torso: neck to hips (raised "
                                       "arms or bent legs do not count). height: the whole skeleton's height, "
                                       "for clips where the torso is not visible."),
            ],
            outputs=[
                PoseKeypoint.Output("aligned_pose", display_name="aligned_pose",
                                    tooltip="The reference's poses placed on the source, in pixels of the "
                                            "source's canvas (one person per frame)."),
                io.Image.Output("pose_images", display_name="pose_images",
                                tooltip="The aligned skeletons drawn as OpenPose ControlNet images (black "
                                        "background, coloured limbs)."),
            ],
        )

    @classmethod
    def execute(cls, source_pose, reference_pose, anchor_frame, width, height, size_measure) -> io.NodeOutput:
        result = align_pose_keypoint(source_pose, reference_pose, anchor_frame, width, height, size_measure, Progress())
        return io.NodeOutput(result.pose_keypoint, result.images, ui=ui.PreviewText(result.text))


class LoadPoseKeypoints(io.ComfyNode):
    """Read poses saved as JSON (comfyui_controlnet_aux's Save Pose Keypoints writes this format)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("LoadPoseKeypoints"),
            display_name="Load Pose Keypoints",
            category=CATEGORY,
            description="Loads a clip's poses from a .json file in the input folder: a list with one OpenPose-format "
                        "dict per frame (canvas_width, canvas_height, people), as comfyui_controlnet_aux's Save Pose "
                        "Keypoints writes it. Estimate the poses once and reuse them, or batch them through the API.",
            inputs=[io.Combo.Input("pose_file", options=list_input_files(POSE_FILE_EXTENSIONS),
                                   tooltip="A .json file in ComfyUI's input folder.")],
            outputs=[PoseKeypoint.Output("pose", display_name="pose",
                                         tooltip="The poses, as a DWPose or OpenPose node outputs them.")],
        )

    @classmethod
    def validate_inputs(cls, pose_file):
        return input_problem(lambda: _pose_path(pose_file))

    @classmethod
    def fingerprint_inputs(cls, pose_file, **_):
        return file_fingerprint(lambda: [_pose_path(pose_file)])

    @classmethod
    def execute(cls, pose_file) -> io.NodeOutput:
        pose = read_pose_file(_pose_path(pose_file), "pose_file")
        clip = parse_pose_keypoint(pose, "pose_file")
        return io.NodeOutput(pose, ui=ui.PreviewText(f"{clip.frames} frames: {clip.describe()}"))


def _pose_path(name: str) -> str:
    folder, plain, kind = resolve_input_file(name)
    path = os.path.join(folder, plain)
    if os.path.splitext(plain)[1].lower() not in POSE_FILE_EXTENSIONS or not os.path.isfile(path):
        raise InputError("pose_file", f"{name!r} is not a .json file in the {kind} folder")
    return path


class LoadPoseControlNet(io.ComfyNode):
    """Load a pose ControlNet that fits the model (Edit-Your-Motion's skeleton guidance)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("LoadPoseControlNet"),
            display_name="Load Pose ControlNet",
            category=CATEGORY,
            description="Loads an OpenPose ControlNet for the model from models/controlnet (e.g. "
                        "control_v11p_sd15_openpose: .pth or .safetensors, original or diffusers keys), offline. "
                        "Its shape is taken from the model, so it must be made for the model's base (SD1.5).",
            inputs=[
                VideoModel.Input("model", tooltip="The AnimateDiff model it will condition, from Load Video Model."),
                io.Combo.Input("controlnet_name", options=_controlnet_files(),
                               tooltip="A pose (OpenPose) ControlNet file in models/controlnet."),
            ],
            outputs=[PoseControlNet.Output("controlnet", display_name="controlnet",
                                           tooltip="For Train Motion Edit and Edit Video.")],
        )

    @classmethod
    def validate_inputs(cls, controlnet_name):
        return input_problem(lambda: _controlnet_path(controlnet_name))

    @classmethod
    def fingerprint_inputs(cls, model, controlnet_name, **_):
        return file_fingerprint(lambda: [_controlnet_path(controlnet_name)])

    @classmethod
    def execute(cls, model, controlnet_name) -> io.NodeOutput:
        _check_family(model)
        controlnet = load_controlnet(_controlnet_path(controlnet_name), model.dtype, input_name="controlnet_name",
                                     unet_config=dict(model.denoiser_module.config))
        return io.NodeOutput(register_beside(controlnet, model))


def _controlnet_files() -> list[str]:
    import folder_paths

    return folder_paths.get_filename_list(CONTROLNET_FOLDER)


def _controlnet_path(name: str) -> str:
    return model_file_path(CONTROLNET_FOLDER, name, "controlnet_name", "put an OpenPose ControlNet there")


def _check_family(model) -> None:
    if model.family != "animatediff":
        raise InputError("model", f"Edit-Your-Motion runs on AnimateDiff (SD1.5) models; this is a {model.family} "
                                  "model")


class TrainMotionEdit(io.ComfyNode):
    """Learn the source clip under its own poses, so it can be re-rendered under others (Edit-Your-Motion)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("TrainMotionEdit"),
            display_name="Train Motion Edit",
            category=CATEGORY,
            description="Edit-Your-Motion's training on the clip to edit: stage 1 learns the subject alone "
                        "(masked, if a mask is given) in the temporal attention, stage 2 the whole frames in the "
                        "spatial self-attention (made recurrent-causal), both with the Motion Attention module on "
                        "the pose ControlNet's path. The model itself is not changed. Cancel stops it and outputs "
                        "nothing.",
            inputs=[
                VideoModel.Input("model", tooltip="An AnimateDiff model, from Load Video Model."),
                PoseControlNet.Input("controlnet", tooltip="From Load Pose ControlNet."),
                Latents.Input("source", tooltip="The clip to edit, from Encode Reference."),
                PoseKeypoint.Input("source_pose", tooltip="The clip's poses (DWPose / OpenPose node, or Load Pose "
                                                          "Keypoints), one per encoded frame."),
                io.String.Input("prompt", default=DEFAULT_PROMPT, multiline=True,
                                tooltip="What the clip shows: its subject and scene. Edit Video uses the same."),
                io.Int.Input("subject_steps", default=300, min=0, max=100_000,
                             tooltip="Stage 1 steps, on the masked subject (the paper: 300). 0 trains in one stage "
                                     "(every part at once, on full frames)."),
                io.Int.Input("full_steps", default=300, min=0, max=100_000,
                             tooltip="Stage 2 steps, on the full frames (the paper: 300)."),
                io.Float.Input("lr", default=5e-4, min=1e-7, max=1.0, step=1e-5, round=False,
                               tooltip="AdamW learning rate of both stages (5e-4: the pack's LoRA rate; on the "
                                       "toy world it kept the look better than 1e-4). Lower it if training stops "
                                       "with a divergence message."),
                io.Int.Input("seed", default=0, min=0, max=2**63 - 1, control_after_generate=False,
                             tooltip="Seed of the initial values, training noise and timesteps."),
                io.Combo.Input("precision", options=list(PRECISIONS), default="auto",
                               tooltip="auto: mixed precision on a GPU, fp32 on the CPU."),
                io.Boolean.Input("gradient_checkpointing", default=False,
                                 tooltip="Less memory, about a third more time, same result."),
                io.Mask.Input("subject_mask", optional=True,
                              tooltip="The subject in every frame (1 = subject), e.g. from a segmentation node, at "
                                      "the encoded frames' size. Stage 1 then sees the subject on black. Without "
                                      "it stage 1 trains on the full frames."),
                io.Image.Input("source_frames", optional=True,
                               tooltip="The encoded frames (Encode Reference's encoded_frames): needed with "
                                       "subject_mask, to encode the masked subject."),
                io.Boolean.Input("recurrent_causal_attention", default=True, optional=True,
                                 tooltip="Spatial self-attention looks at the previous and next frames (RCA). "
                                         "Off: plain self-attention (an ablation)."),
                io.Boolean.Input("motion_attention", default=True, optional=True,
                                 tooltip="The Motion Attention module on the ControlNet's residuals. Off: the plain "
                                         "ControlNet sum (an ablation)."),
            ],
            outputs=[
                EditAdapter.Output("edit", display_name="edit", tooltip="For Edit Video (with the same source)."),
                io.LossMap.Output("loss", display_name="loss", tooltip="Loss per step of both stages, for Plot "
                                                                       "Loss Graph."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, controlnet, source, source_pose, prompt, subject_steps, full_steps, lr, seed, precision,
                gradient_checkpointing, subject_mask=None, source_frames=None, recurrent_causal_attention=True,
                motion_attention=True) -> io.NodeOutput:
        _check_family(model)
        x0 = latent_samples(source, model, False, "source")
        images = pose_images(source_pose, model, source, "source_pose")
        subject = None
        if subject_mask is not None:
            if source_frames is None:
                raise InputError("source_frames", "is needed with subject_mask: connect Encode Reference's "
                                                  "encoded_frames")
            if tuple(source_frames.shape[:3]) != (x0.shape[2], images.shape[1], images.shape[2]):
                raise InputError("source_frames", f"are {source_frames.shape[0]} of {source_frames.shape[2]}x"
                                                  f"{source_frames.shape[1]} but the source was encoded from "
                                                  f"{x0.shape[2]} of {images.shape[2]}x{images.shape[1]}; connect "
                                                  "Encode Reference's encoded_frames")
            use_model(model, "encode", x0.shape)
            subject = VideoLatents(model.encode_video(subject_frames(source_frames, subject_mask, "subject_mask")),
                                   model.fingerprint)
        callback, _ = training_progress(
            subject_steps + full_steps, cls.hidden.unique_id if cls.hidden else None,
            lambda step: "stage 1 (subject) · " if step <= subject_steps else "stage 2 (full frames) · ")

        use_model(model, "train", x0.shape, beside=(controlnet,))
        settings = EditTraining(subject_steps, full_steps, lr, seed,
                                TrainOptions(precision=precision, gradient_checkpointing=gradient_checkpointing))
        result = train_edit(model, controlnet, source, images, prompt, subject, settings,
                            {"rca": recurrent_causal_attention, "motion_attention": motion_attention}, callback)
        return io.NodeOutput(result.adapter, loss_series(result.history))


class EditVideo(io.ComfyNode):
    """Re-render the source clip under other poses (Edit-Your-Motion)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("EditVideo"),
            display_name="Edit Video",
            category=CATEGORY,
            description="The source clip performing the target poses' motion, with its look kept: the source is "
                        "inverted under its own poses, then sampled from that noise under the target poses, with "
                        "what Train Motion Edit learnt. Target poses from Align Pose keep the subject where and as "
                        "large as it is.",
            inputs=[
                VideoModel.Input("model", tooltip="The model Train Motion Edit used."),
                PoseControlNet.Input("controlnet", tooltip="The ControlNet Train Motion Edit used."),
                EditAdapter.Input("edit", tooltip="From Train Motion Edit, trained on this source."),
                Latents.Input("source", tooltip="The clip to edit, from Encode Reference."),
                PoseKeypoint.Input("source_pose", tooltip="The clip's own poses (as given to Train Motion Edit)."),
                PoseKeypoint.Input("target_pose", tooltip="The motion to perform: Align Pose's aligned_pose, one "
                                                          "pose per source frame."),
                io.String.Input("prompt", default=DEFAULT_PROMPT, multiline=True,
                                tooltip="The prompt Train Motion Edit used."),
                io.String.Input("negative_prompt", default="", multiline=True, tooltip="What to avoid."),
                io.Int.Input("steps", default=50, min=1, max=1000,
                             tooltip="DDIM steps of the inversion and of the sampling."),
                io.Float.Input("cfg", default=7.5, min=0.0, max=100.0, step=0.5,
                               tooltip="Classifier-free guidance scale (1 = none)."),
            ],
            outputs=[Latents.Output("latents", display_name="latents",
                                    tooltip="The edited clip, for Decode Video.")],
        )

    @classmethod
    def execute(cls, model, controlnet, edit, source, source_pose, target_pose, prompt, negative_prompt, steps,
                cfg) -> io.NodeOutput:
        _check_family(model)
        x0 = latent_samples(source, model, False, "source")
        source_images = pose_images(source_pose, model, source, "source_pose")
        target_images = pose_images(target_pose, model, source, "target_pose")
        use_model(model, "sample", x0.shape, beside=(controlnet,))
        inversion = Progress(steps, latent_format=model.latent_format)
        sampling = Progress(steps, latent_format=model.latent_format)
        return io.NodeOutput(edit_video(model, edit, controlnet, source, source_images, target_images, prompt,
                                        negative_prompt, steps, cfg, inversion, sampling))


NODES = [AlignPose, LoadPoseKeypoints, LoadPoseControlNet, TrainMotionEdit, EditVideo]
