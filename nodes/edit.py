"""Nodes of Edit-Your-Motion (docs/METHODS.md §7): motion editing from two clips' poses."""

from ..motion_core.edit import SIZE_MEASURES, align_pose_keypoint
from ..motion_core.video import MAX_SIDE
from ._comfy import CATEGORY, Progress, io, node_id, ui
from .types import PoseKeypoint


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


NODES = [AlignPose]
