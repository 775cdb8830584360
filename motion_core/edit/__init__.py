"""Edit-Your-Motion (docs/METHODS.md §7): give a source clip a reference clip's motion.

- :mod:`.pose`: ComfyUI's ``POSE_KEYPOINT`` (DWPose / OpenPose nodes) -> :class:`PoseClip` in pixels.
- :mod:`.align`: the skeleton offset, one similarity placing the reference skeleton on the source.
- :mod:`.draw`: skeleton images in the OpenPose ControlNet colour convention (PIL).
- :mod:`.rca`: Recurrent Causal Attention in place of spatial self-attention.
"""

from .align import SIZE_MEASURES, AlignedPoses, Similarity, align_pose_keypoint, align_reference, skeleton_offset
from .draw import COLOURS, LIMBS, draw_pose_frames, draw_skeleton
from .pose import POINT_NAMES, PoseClip, parse_pose_keypoint, read_pose_file, to_pose_keypoint
from .rca import RCAAttachment, RecurrentCausalAttention, attach_rca, neighbour_frames, spatial_self_attentions

__all__ = ["SIZE_MEASURES", "AlignedPoses", "Similarity", "align_pose_keypoint", "align_reference", "skeleton_offset",
           "COLOURS", "LIMBS", "draw_pose_frames", "draw_skeleton", "POINT_NAMES", "PoseClip", "parse_pose_keypoint",
           "read_pose_file", "to_pose_keypoint", "RCAAttachment", "RecurrentCausalAttention", "attach_rca",
           "neighbour_frames", "spatial_self_attentions"]
