"""Nodes that measure a result against its reference."""

from ..motion_core.fidelity import motion_fidelity
from ._comfy import CATEGORY, io, node_id, ui


class MotionFidelity(io.ComfyNode):
    """Score how closely a generated clip moves like the reference (DMT's motion fidelity)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("MotionFidelity"),
            display_name="Motion Fidelity",
            category=CATEGORY,
            description="Tracks points in both clips and scores how closely the generated clip's motion follows "
                        "the reference's: 1 = every moving point steps the way some reference point does, 0 = "
                        "unrelated, -1 = the opposite way. Where things are and how fast they move do not count. "
                        "Works on any footage; no model is downloaded.",
            inputs=[
                io.Image.Input("reference_frames", tooltip="The reference clip, e.g. from Load Reference Video."),
                io.Image.Input("generated_frames",
                               tooltip="The generated clip, e.g. from Decode Video. Its size and frame count may "
                                       "differ from the reference's (compared at evenly spaced frames)."),
            ],
            outputs=[
                io.Float.Output("motion_fidelity", display_name="motion_fidelity",
                                tooltip="Generated -> reference, as the motion transfer papers report it."),
                io.Float.Output("symmetric_fidelity", display_name="symmetric_fidelity",
                                tooltip="The mean of both directions: also low when the generated clip leaves "
                                        "part of the reference's motion out."),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, reference_frames, generated_frames) -> io.NodeOutput:
        result = motion_fidelity(reference_frames, generated_frames)
        return io.NodeOutput(result.score, result.symmetric, ui=ui.PreviewText(result.text()))


NODES = [MotionFidelity]
