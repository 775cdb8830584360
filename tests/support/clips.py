"""Test clips written with PyAV whose frames carry their own index in their colour.

Frame ``i`` is a flat colour whose red, green and blue levels spell ``i`` in base 8, 8 and 4. The
levels are exactly the entries of the 3-3-2 ``rgb8`` palette GIF uses, and neighbouring levels are
36 (red, green) or 85 (blue) grey values apart, so lossy codecs (H.264, VP9, WebP) keep every index
readable: :func:`frame_index` reads the index back from a decoded frame, independently of how the
loader selected it.
"""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

MAX_INDEX = 8 * 8 * 4

CONTAINERS = {
    # name: (file suffix, encoder, pixel format, muxer)
    "mp4": (".mp4", "libx264", "yuv420p", None),
    "webm": (".webm", "libvpx-vp9", "yuv420p", None),
    "mkv-ffv1": (".mkv", "ffv1", "bgr0", None),
    "gif": (".gif", "gif", "rgb8", None),
    "webp": (".webp", "libwebp_anim", "yuv420p", "webp"),
}


def index_colour(index: int) -> tuple[int, int, int]:
    if not 0 <= index < MAX_INDEX:
        raise ValueError(f"index {index} outside 0..{MAX_INDEX - 1}")
    red, green, blue = index % 8, (index // 8) % 8, index // 64
    return round(red * 255 / 7), round(green * 255 / 7), round(blue * 255 / 3)


def frame_index(rgb: np.ndarray) -> int:
    """Index spelled by a decoded frame: ``rgb`` is ``(h, w, 3)``, uint8 or float in [0, 1]."""
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.max() <= 1.0:
        rgb = rgb * 255
    h, w, _ = rgb.shape
    centre = rgb[h // 4 : h - h // 4 or None, w // 4 : w - w // 4 or None].reshape(-1, 3).mean(0)
    red = int(round(centre[0] * 7 / 255))
    green = int(round(centre[1] * 7 / 255))
    blue = int(round(centre[2] * 3 / 255))
    return red + 8 * green + 64 * blue


def write_index_clip(
    path: Path, frames: int, fps: int = 8, size: tuple[int, int] = (64, 48), kind: str = "mp4",
    picture=None,
) -> Path:
    """Write ``frames`` frames of ``size`` (width, height) at ``fps`` with PyAV; returns the path.

    ``picture(index) -> (h, w, 3) uint8`` overrides the flat index colour (for geometry tests).
    """
    suffix, codec, pix_fmt, muxer = CONTAINERS[kind]
    path = Path(path).with_suffix(suffix)
    width, height = size
    with av.open(str(path), mode="w", format=muxer) as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            stream.options = {"crf": "12"}
        for index in range(frames):
            rgb = picture(index) if picture else np.broadcast_to(
                np.array(index_colour(index), np.uint8), (height, width, 3)
            ).copy()
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode_reference(path: Path) -> tuple[list[Fraction], list[int]]:
    """Independent decode of every frame: timestamps (s, from the first frame) and content indices.

    Uses Pillow for WebP (FFmpeg has no animated WebP decoder) and plain PyAV otherwise.
    """
    path = Path(path)
    times, indices = [], []
    if path.suffix == ".webp":
        from PIL import Image, ImageSequence

        clock = Fraction(0)
        with Image.open(path) as image:
            for frame in ImageSequence.Iterator(image):
                frame.load()
                times.append(clock)
                indices.append(frame_index(np.asarray(frame.convert("RGB"))))
                clock += Fraction(frame.info["duration"], 1000)
        return times, indices
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            times.append(frame.pts * frame.time_base)
            indices.append(frame_index(frame.to_ndarray(format="rgb24")))
    return [t - times[0] for t in times], indices
