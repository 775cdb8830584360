"""Nodes that bring reference clips into the graph."""


from ..motion_core.paths import resolve_inside
from ..motion_core.video import MAX_FORCE_RATE, MAX_SIDE, FrameSelection, load_video
from ._comfy import (CATEGORY, Progress, file_fingerprint, input_problem, io, list_input_files, node_id,
                     resolve_input_file)
from .types import VideoInfo

VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v", ".gif", ".webp"})


def _resolve(video: str) -> str:
    folder, name, kind = resolve_input_file(video)
    return str(resolve_inside(folder, name, input_name="video", folder_label=f"the {kind} folder"))


class LoadReferenceVideo(io.ComfyNode):
    """Load the clip whose motion will be learned, with VideoHelperSuite's frame options."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=node_id("LoadReferenceVideo"),
            display_name="Load Reference Video",
            category=CATEGORY,
            description="Loads the clip whose motion you want to transfer. Short clips (8-24 frames) "
                        "of one clear motion work best.",
            inputs=[
                io.Combo.Input("video", options=list_input_files(VIDEO_EXTENSIONS), upload=io.UploadType.video,
                               tooltip="A video in ComfyUI's input folder (mp4, webm, mkv, mov, gif, "
                                       "animated webp). Use the upload button to add one."),
                io.Int.Input("frame_load_cap", default=16, min=0, max=100_000,
                             tooltip="Stop after this many frames. 0 loads every frame."),
                io.Int.Input("skip_first_frames", default=0, min=0, max=1_000_000,
                             tooltip="Frames to skip at the start (counted after force_rate)."),
                io.Int.Input("select_every_nth", default=1, min=1, max=1_000,
                             tooltip="Keep one frame in n: 2 halves the frame rate and doubles the "
                                     "time the clip covers."),
                io.Float.Input("force_rate", default=0.0, min=0.0, max=MAX_FORCE_RATE, step=1.0,
                               tooltip="Resample the clip to this many frames per second before the "
                                       "other options. 0 keeps the clip's own rate."),
                io.Int.Input("custom_width", default=0, min=0, max=MAX_SIDE, step=8,
                             tooltip="Output width in pixels. 0 keeps the width (or follows the "
                                     "height, keeping the aspect ratio). With both set, the clip is "
                                     "scaled to cover and centre-cropped."),
                io.Int.Input("custom_height", default=0, min=0, max=MAX_SIDE, step=8,
                             tooltip="Output height in pixels; 0 as for the width."),
            ],
            outputs=[
                io.Image.Output("frames", display_name="frames", tooltip="The frames, as an IMAGE batch."),
                io.Int.Output("frame_count", display_name="frame_count", tooltip="How many frames were loaded."),
                io.Float.Output("fps", display_name="fps",
                                tooltip="Frame rate of the loaded frames (after force_rate and "
                                        "select_every_nth)."),
                VideoInfo.Output("video_info", display_name="video_info",
                                 tooltip="Source file facts and which frames were taken."),
            ],
        )

    @classmethod
    def validate_inputs(cls, video):
        return input_problem(lambda: _resolve(video))

    @classmethod
    def fingerprint_inputs(cls, video, **_):
        return file_fingerprint(lambda: [_resolve(video)])

    @classmethod
    def execute(cls, video, frame_load_cap, skip_first_frames, select_every_nth, force_rate,
                custom_width, custom_height) -> io.NodeOutput:
        selection = FrameSelection(frame_load_cap, skip_first_frames, select_every_nth, float(force_rate),
                                   custom_width, custom_height)
        clip = load_video(_resolve(video), selection, progress=Progress(frame_load_cap or None))
        return io.NodeOutput(clip.frames, clip.frames.shape[0], clip.fps, clip.info())


NODES = [LoadReferenceVideo]
