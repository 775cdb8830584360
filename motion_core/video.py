"""Reference clips: streaming decode (PyAV), frame selection, resize and centre crop.

The options and their order of application are the ones users know from VideoHelperSuite's
loader:

1. ``force_rate`` resamples the stream in time: output frame ``k`` shows the source frame on
   screen at ``k / force_rate`` seconds (the last frame whose timestamp is <= that time);
2. ``skip_first_frames`` drops that many frames of the (resampled) stream;
3. ``select_every_nth`` keeps one frame in n of what is left;
4. ``frame_load_cap`` stops after that many kept frames.

0 switches an option off (1 for ``select_every_nth``). Selection is lazy: frames are converted to
RGB only when kept and decoding stops at the cap, so memory grows with the frames kept, not with
the length of the file.

Frames already in memory: :func:`fit_frames` resizes them to a size a model takes (the same cover
and centre-crop geometry), :func:`write_video` writes them as a new MP4 or GIF.

Animated WebP is decoded with Pillow: the FFmpeg builds shipped with PyAV have no animated WebP
decoder (they fail on the ANIM chunk). Its frames go through the same selection and resize code.
WebP stores a whole number of milliseconds per frame, so a 30 fps clip alternates 33 and 34 ms: its
rate is read by :func:`webp_rate` from all the frames' durations, snapped to a common rate.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from .errors import InputError
from .files import write_new_file
from .progress import Progress

MAX_SIDE = 8192
"""Largest width or height a clip may be resized to (and the nodes' widget maximum)."""

MAX_FORCE_RATE = 240.0


@dataclass(frozen=True)
class FrameSelection:
    """Which frames of a clip to load and at what size. Field names match the node's inputs."""

    frame_load_cap: int = 0
    skip_first_frames: int = 0
    select_every_nth: int = 1
    force_rate: float = 0.0
    custom_width: int = 0
    custom_height: int = 0

    def validate(self) -> FrameSelection:
        """Return self, or raise :class:`InputError` naming the first invalid option."""
        _check_int("frame_load_cap", self.frame_load_cap, 0, None, "0 loads every frame")
        _check_int("skip_first_frames", self.skip_first_frames, 0, None, "0 skips none")
        _check_int("select_every_nth", self.select_every_nth, 1, None, "1 keeps every frame")
        _check_int("custom_width", self.custom_width, 0, MAX_SIDE, "0 keeps the source width")
        _check_int("custom_height", self.custom_height, 0, MAX_SIDE, "0 keeps the source height")
        rate = self.force_rate
        if not isinstance(rate, (int, float)) or not math.isfinite(rate) or not 0 <= rate <= MAX_FORCE_RATE:
            raise InputError(
                "force_rate", f"{rate!r} is not valid; use 0 (keep the source rate) or a rate up to {MAX_FORCE_RATE:g} fps"
            )
        return self


def _check_int(name: str, value: object, low: int, high: int | None, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise InputError(name, f"{value!r} is not valid; use a whole number {bound} ({meaning})")


@dataclass(frozen=True)
class SourceInfo:
    """What the file says about itself, before any selection."""

    file: str
    container: str
    codec: str
    width: int
    height: int
    fps: float
    frame_count: int | None
    """From the container header; ``None`` where the format does not record it."""
    duration: float | None


@dataclass
class LoadedClip:
    """Frames in ComfyUI's IMAGE layout plus where they came from."""

    frames: torch.Tensor
    """``(frames, height, width, 3)`` float32 in [0, 1]."""
    fps: float
    """Rate of the loaded frames: the forced rate (or the source rate) divided by ``select_every_nth``."""
    source_indices: list[int]
    """For each loaded frame, its index among the source's decoded frames."""
    source: SourceInfo
    selection: FrameSelection = field(default_factory=FrameSelection)

    def info(self) -> dict:
        """JSON-serialisable summary, as carried by the node's video-info output."""
        frames, height, width, _ = self.frames.shape
        return {
            "source": asdict(self.source),
            "selection": asdict(self.selection),
            "loaded_frame_count": frames,
            "loaded_width": width,
            "loaded_height": height,
            "loaded_fps": self.fps,
            "loaded_duration": frames / self.fps if self.fps else None,
            "source_indices": list(self.source_indices),
        }


@dataclass(frozen=True)
class _Decoded:
    index: int
    time: Fraction
    """Seconds since the first frame."""
    duration: Fraction
    frame: av.VideoFrame


def load_video(
    path: str | os.PathLike,
    selection: FrameSelection = FrameSelection(),
    *,
    input_name: str = "video",
    progress: Progress | None = None,
) -> LoadedClip:
    """Decode the selected frames of a video file (any container FFmpeg reads, GIF, animated WebP).

    Args:
        path: the file; check it first with :func:`motion_core.paths.resolve_inside` when the name
            came from a user.
        selection: which frames and what size (see the module docstring).
        input_name: the name errors report for the file.
        progress: called after each kept frame; raising from it cancels the load.

    Returns:
        The clip with ``frames`` of shape ``(frames, height, width, 3)``, float32 in [0, 1].

    Raises:
        InputError: the file is missing, not a video, corrupt or truncated, has no video frame,
            or the selection keeps no frame.
    """
    selection.validate()
    path = Path(path)
    if not path.is_file():
        raise InputError(input_name, f"{path.name!r} does not exist")
    if path.stat().st_size == 0:
        raise InputError(input_name, f"{path.name!r} is empty (0 bytes); it may still be uploading or be truncated")
    with _Source(path, input_name) as source:
        info = source.info
        decoded: Iterable[_Decoded] = source.frames()
        if selection.force_rate:
            decoded = _resample(decoded, Fraction(selection.force_rate).limit_denominator(1000))
        kept: Iterable[_Decoded] = itertools.islice(
            decoded, selection.skip_first_frames, None, selection.select_every_nth
        )
        if selection.frame_load_cap:
            kept = itertools.islice(kept, selection.frame_load_cap)
        expected = _expected_count(info, selection)
        arrays, indices = [], []
        resize: _ResizePlan | None = None
        for item in kept:
            if resize is None:
                resize = _ResizePlan(*plan_resize(item.frame.width, item.frame.height,
                                                  selection.custom_width, selection.custom_height))
            arrays.append(resize.apply(item.frame))
            indices.append(item.index)
            if progress is not None:
                progress(len(arrays), expected)
        source.check_complete()
    if not arrays:
        raise InputError(input_name, _nothing_selected_message(path, info, selection))
    rate = (selection.force_rate or info.fps) / selection.select_every_nth
    return LoadedClip(_to_image_tensor(arrays), rate, indices, info, selection)


def _nothing_selected_message(path: Path, info: SourceInfo, selection: FrameSelection) -> str:
    if info.frame_count == 0:
        return f"{path.name!r} contains no video frames"
    return (
        f"the options select no frame of {path.name!r} "
        f"({info.frame_count if info.frame_count else 'unknown number of'} frames at {info.fps:.3g} fps): "
        f"skip_first_frames={selection.skip_first_frames} skips past the end; "
        "lower skip_first_frames or select_every_nth"
    )


def _expected_count(info: SourceInfo, selection: FrameSelection) -> int | None:
    """Best guess of the kept-frame count for progress bars (the header may be missing or wrong)."""
    if not info.frame_count:
        return selection.frame_load_cap or None
    count = info.frame_count
    if selection.force_rate and info.fps:
        count = math.ceil(count * selection.force_rate / info.fps)
    count = max(0, math.ceil((count - selection.skip_first_frames) / selection.select_every_nth))
    return min(count, selection.frame_load_cap) if selection.frame_load_cap else count


def resampled_indices(count: int, fps: float, rate: float) -> list[int]:
    """Which of ``count`` frames shown at ``fps`` are on screen at each time ``k / rate`` while the
    clip lasts: the rule of ``force_rate`` (:func:`_resample`) for frames already in memory, with every
    frame shown for ``1 / fps``."""
    source, target = Fraction(fps).limit_denominator(1000), Fraction(rate).limit_denominator(1000)
    slots = math.ceil(count * target / source)
    return [min(count - 1, math.floor(k * source / target)) for k in range(slots)]


def _resample(frames: Iterable[_Decoded], rate: Fraction) -> Iterator[_Decoded]:
    """Yield the frame on screen at each time ``k / rate`` (k = 0, 1, ...), holding one frame back.

    The last source frame stays on screen for its own duration. Repeated frames share the
    decoded picture and keep their source index.
    """
    slot = 0
    previous: _Decoded | None = None
    for current in frames:
        if previous is not None:
            while Fraction(slot) / rate < current.time:
                yield previous
                slot += 1
        previous = current
    if previous is not None:
        while Fraction(slot) / rate < previous.time + previous.duration:
            yield previous
            slot += 1


@dataclass(frozen=True)
class _ResizePlan:
    """Scale to ``scaled`` (aspect preserved), then crop ``box`` = (left, top, width, height)."""

    scaled: tuple[int, int]
    box: tuple[int, int, int, int]

    def apply(self, frame: av.VideoFrame) -> np.ndarray:
        """``(height, width, 3)`` uint8 RGB of one frame, scaled and cropped."""
        width, height = self.scaled
        if (width, height) != (frame.width, frame.height):
            frame = frame.reformat(width=width, height=height, format="rgb24", interpolation="LANCZOS")
        rgb = frame.to_ndarray(format="rgb24")
        left, top, box_w, box_h = self.box
        return rgb[top : top + box_h, left : left + box_w]


def plan_resize(
    source_width: int, source_height: int, width: int, height: int
) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """Where to scale and crop a ``source_width x source_height`` picture for the requested size.

    ``width`` and ``height`` are the requested output size, 0 meaning "follow the other side and
    keep the aspect ratio" (both 0: keep the source size). With both given, the picture is scaled to
    cover the requested size and centre-cropped, so nothing is stretched.

    Returns:
        ``((scaled_width, scaled_height), (left, top, out_width, out_height))``.
    """
    if width == 0 and height == 0:
        return (source_width, source_height), (0, 0, source_width, source_height)
    if height == 0:
        scaled = (width, max(1, round(source_height * width / source_width)))
        return scaled, (0, 0, *scaled)
    if width == 0:
        scaled = (max(1, round(source_width * height / source_height)), height)
        return scaled, (0, 0, *scaled)
    scale = max(width / source_width, height / source_height)
    scaled = (max(width, round(source_width * scale)), max(height, round(source_height * scale)))
    return scaled, ((scaled[0] - width) // 2, (scaled[1] - height) // 2, width, height)


def _to_image_tensor(arrays: list[np.ndarray]) -> torch.Tensor:
    """Stack uint8 ``(h, w, 3)`` frames into float32 ``(f, h, w, 3)`` in [0, 1], one frame at a time.

    Filling a preallocated tensor keeps the peak at the uint8 frames plus the float result,
    instead of a second full-size float copy.
    """
    out = torch.empty((len(arrays), *arrays[0].shape), dtype=torch.float32)
    for i in range(len(arrays)):
        out[i].copy_(torch.from_numpy(arrays[i])).div_(255.0)
        arrays[i] = None  # release the uint8 copy as soon as it is converted
    return out


# --- sources --------------------------------------------------------------------------------------


class _Source:
    """An open file: its :class:`SourceInfo` and a one-shot iterator of decoded frames.

    Decoder errors surfacing while frames are consumed become :class:`InputError`, and
    :meth:`check_complete` notices a file that ended well before the length its header states.
    """

    def __init__(self, path: Path, input_name: str):
        self.path, self.input_name = path, input_name
        self.exhausted = False
        self.decoded = 0
        self.covered = Fraction(0)
        """Seconds of the stream decoded so far (up to the end of the last frame)."""

    def __enter__(self) -> _Source:
        opener = _open_with_pillow if _is_webp(self.path) else _open_with_pyav
        try:
            self.info, self._frames, self._close = opener(self.path, self.input_name)
        except InputError:
            raise
        except av.EOFError as err:
            raise InputError(
                self.input_name, f"{self.path.name!r} ends before its first video frame (empty or truncated file)"
            ) from err
        except Exception as err:  # the decoder's own words are kept, behind ours
            raise InputError(
                self.input_name,
                f"{self.path.name!r} could not be opened as a video ({_reason(err, self.path)}); "
                "use a video file such as .mp4, .webm, .mkv, .mov, .gif or animated .webp",
            ) from err
        return self

    def frames(self) -> Iterator[_Decoded]:
        try:
            for item in self._frames:
                self.decoded = item.index + 1
                self.covered = item.time + item.duration
                yield item
        except (av.FFmpegError, OSError, EOFError, ValueError) as err:
            raise InputError(
                self.input_name,
                f"{self.path.name!r} could not be decoded after {self.decoded} frames ({_reason(err, self.path)}); "
                "the file is truncated or corrupt",
            ) from err
        self.exhausted = True

    def check_complete(self) -> None:
        """Raise if the whole stream was read but covers clearly less than the header's duration.

        FFmpeg reads a cut-off WebM/MKV to its last complete frame without an error; only the
        duration its header recorded shows that frames are missing. (GIF records no duration: a
        cut-off GIF loads the frames it still has.)
        """
        duration = self.info.duration
        if self.exhausted and self.decoded and duration and float(self.covered) < 0.9 * duration - 0.05:
            raise InputError(
                self.input_name,
                f"{self.path.name!r} is truncated or corrupt: its header says {duration:.2f} s, "
                f"but the frames end at {float(self.covered):.2f} s ({self.decoded} frames decoded)",
            )

    def __exit__(self, *exc) -> None:
        self._close()


def _reason(err: BaseException, path: Path) -> str:
    """The decoder's message without the full path (which the message already names by file name)."""
    return (str(err).replace(f": '{path}'", "").replace(str(path), path.name).strip()) or type(err).__name__


def _is_webp(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(12)
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _open_with_pyav(path: Path, input_name: str):
    container = av.open(str(path), mode="r")
    if not container.streams.video:
        container.close()
        raise InputError(input_name, f"{path.name!r} has no video stream; use a file that contains video")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
    if duration is None and container.duration and len(container.streams) == 1:
        # the container's duration spans all streams: only a video-only file's is the video's
        duration = container.duration / av.time_base
    info = SourceInfo(
        file=path.name,
        container=container.format.name,
        codec=stream.codec_context.name,
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        fps=fps,
        frame_count=stream.frames or None,
        duration=duration,
    )
    default_duration = 1 / Fraction(rate) if rate else Fraction(1, 25)

    def frames() -> Iterator[_Decoded]:
        start = None
        for index, frame in enumerate(container.decode(stream)):
            if frame.pts is not None and frame.time_base is not None:
                time = frame.pts * frame.time_base
            else:
                time = index * default_duration
            start = time if start is None else start
            length = getattr(frame, "duration", None)
            length = length * frame.time_base if length and frame.time_base else default_duration
            yield _Decoded(index, time - start, length, frame)

    return info, frames(), container.close


COMMON_RATES = (8.0, 10.0, 12.0, 15.0, 16.0, 20.0, 24.0, 25.0, 30.0, 48.0, 50.0, 60.0,
                24000 / 1001, 30000 / 1001, 60000 / 1001)
"""Frame rates :func:`webp_rate` snaps to: whole rates first, then the NTSC ones."""

DEFAULT_WEBP_RATE = 25.0
"""The rate of a WebP that records no frame duration (a still image, or durations of 0)."""


def webp_rate(durations_ms: list[int]) -> float:
    """The frame rate of an animated WebP from its frames' durations in whole milliseconds.

    A duration is the true frame period rounded up or down to a millisecond, so the clip's rate is
    a rate of :data:`COMMON_RATES` whose period lies within 1 ms of *every* duration: a whole rate
    where one fits (33/34 ms: 30, not 29.97, which milliseconds cannot tell apart), the one whose
    period is nearest the mean duration where several do (20 ms: 50, not 48). Where none fits (70 ms
    frames, or frames of very different lengths) the rate is 1000 / the mean duration. Durations of 0
    (unset) are ignored; with none left, :data:`DEFAULT_WEBP_RATE`.
    """
    durations = [d for d in durations_ms if d > 0]
    if not durations:
        return DEFAULT_WEBP_RATE
    mean = sum(durations) / len(durations)
    fitting = [rate for rate in COMMON_RATES if all(abs(1000 / rate - d) < 1 for d in durations)]
    if not fitting:
        return 1000 / mean
    return min(fitting, key=lambda rate: (rate != round(rate), abs(1000 / rate - mean)))


def _webp_durations(path: Path, input_name: str) -> list[int]:
    """The durations (ms) of an animated WebP's frames, read from its ANMF chunks.

    Raises:
        InputError: the file is shorter than its RIFF header says, or a chunk runs past the end: it
            was cut short (Pillow would only say it "could not create decoder object").
    """
    size = path.stat().st_size
    durations = []
    with open(path, "rb") as handle:
        declared = int.from_bytes(handle.read(12)[4:8], "little") + 8  # RIFF size + its own 8 bytes
        offset = 12
        while offset + 8 <= min(size, declared):
            handle.seek(offset)
            chunk = handle.read(8)
            length = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"ANMF":
                # ANMF payload: x, y, width - 1, height - 1 (3 bytes each), then the duration (3 bytes)
                durations.append(int.from_bytes(handle.read(15)[12:15], "little"))
            offset += 8 + length + (length & 1)  # chunks are padded to an even length
    end = max(offset, declared)
    if end > size:
        raise InputError(input_name, f"{path.name!r} is truncated: its header says {end} bytes, the file has "
                                     f"{size}; copy or upload the whole file again")
    return durations


def _open_with_pillow(path: Path, input_name: str):
    from PIL import Image  # only WebP needs it

    durations = _webp_durations(path, input_name)
    image = Image.open(path)
    count = getattr(image, "n_frames", 1)
    image.load()  # decode the first frame now: a file Pillow cannot read fails while opening
    fps = webp_rate(durations)
    info = SourceInfo(
        file=path.name,
        container="webp",
        codec="webp",
        width=image.width,
        height=image.height,
        fps=fps,
        frame_count=count,
        duration=sum(durations) / 1000 if durations else None,
    )

    def frames() -> Iterator[_Decoded]:
        time = Fraction(0)
        for index in range(count):
            image.seek(index)
            image.load()
            length = Fraction(image.info.get("duration") or round(1000 / fps), 1000)
            picture = av.VideoFrame.from_ndarray(np.asarray(image.convert("RGB")), format="rgb24")
            yield _Decoded(index, time, length, picture)
            time += length

    return info, frames(), image.close


# --- frames already in memory ---------------------------------------------------------------------

WRITERS = (".mp4", ".gif")
"""The video files the pack writes: H.264 MP4 (plays everywhere) and GIF (previews)."""

H264_OPTIONS = {"crf": "16", "preset": "medium"}


def check_image_frames(frames: object, input_name: str) -> None:
    """Raise :class:`InputError` naming ``input_name`` unless ``frames`` is an IMAGE batch ``(f, h, w, 3)``."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise InputError(input_name, f"expected IMAGE frames (frames, height, width, 3), got {shape}")


def fit_frames(frames: torch.Tensor, multiple: int, width: int = 0, height: int = 0,
               input_name: str = "frames", progress: Progress | None = None) -> torch.Tensor:
    """Resize IMAGE frames ``(f, h, w, 3)`` to a size a model takes: multiples of ``multiple``.

    ``width``/``height`` 0 mean the frames' own size rounded down to the multiple (at least one
    multiple), with the aspect ratio kept by scaling to cover and centre-cropping (as the loader
    does). Frames already of the target size are returned as they are.

    Frames are resized one at a time, ``progress(done, frames)`` after each (raising from it cancels),
    one axis at a time with the crop between the passes (bicubic resizing is separable): scaled to
    cover, a frame would be far larger than the crop kept (8192 x 32 from a square clip would first be
    8192 x 8192), but no pass makes more than the kept width times the scaled height or the source
    height times the scaled width.

    Raises:
        InputError: naming ``width``/``height`` when a requested size is not a multiple.
    """
    check_image_frames(frames, input_name)
    _, source_h, source_w, _ = frames.shape
    for name, value in (("width", width), ("height", height)):
        if value % multiple:
            raise InputError(name, f"{value} is not a multiple of {multiple}, which this model needs; use e.g. "
                                   f"{max(multiple, value // multiple * multiple)} (0 = from the frames)")
    target_w = width or max(multiple, source_w // multiple * multiple)
    target_h = height or max(multiple, source_h // multiple * multiple)
    if (target_w, target_h) == (source_w, source_h):
        return frames
    (scaled_w, scaled_h), (left, top, _, _) = plan_resize(source_w, source_h, target_w, target_h)
    fitted = torch.empty((frames.shape[0], target_h, target_w, 3))
    for index, frame in enumerate(frames):
        picture = frame.permute(2, 0, 1)[None].float()
        if scaled_w != source_w:  # the width, then keep the crop's columns
            picture = _bicubic(picture, picture.shape[2], scaled_w)
        picture = picture[..., left : left + target_w]
        if scaled_h != source_h:  # the height of those columns, then keep the crop's rows
            picture = _bicubic(picture, scaled_h, picture.shape[3])
        fitted[index] = picture[0, :, top : top + target_h].clamp(0, 1).permute(1, 2, 0)
        if progress is not None:
            progress(index + 1, frames.shape[0])
    return fitted


def _bicubic(picture: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(1, 3, h, w)`` -> ``(1, 3, height, width)``, bicubic with antialiasing (the loader's filter)."""
    return torch.nn.functional.interpolate(picture, size=(height, width), mode="bicubic", antialias=True,
                                           align_corners=False)


def to_pixels(frames: torch.Tensor) -> np.ndarray:
    """IMAGE frames ``(..., h, w, 3)`` in [0, 1] -> uint8 pixels of the same shape (numpy, CPU)."""
    return (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def frame_strip(frames: torch.Tensor) -> np.ndarray:
    """IMAGE frames ``(n, h, w, 3)`` in [0, 1] side by side: uint8 pixels ``(h, n·w, 3)`` (a preview)."""
    return np.concatenate(list(to_pixels(frames)), axis=1)


def write_video(frames: torch.Tensor, path: str | os.PathLike, fps: float = 8.0,
                input_name: str = "filename") -> Path:
    """Write IMAGE frames ``(f, h, w, 3)`` in [0, 1] as a new ``.mp4`` (H.264) or ``.gif`` file.

    MP4: odd sizes are padded by repeating the last row/column (H.264 with 4:2:0 chroma needs even
    sizes). GIF: frame delays are whole 1/100 s (12 fps plays at 12.5). The file appears whole or
    not at all and never replaces an existing one.
    """
    path = Path(path)
    if path.suffix.lower() not in WRITERS:
        raise InputError(input_name, f"{path.name!r}: write {' or '.join(WRITERS)} files")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= MAX_FORCE_RATE):
        raise InputError("fps", f"{fps!r} is not valid; use a frame rate above 0 and at most {MAX_FORCE_RATE:g}")
    pixels = to_pixels(frames)
    write = _write_gif if path.suffix.lower() == ".gif" else _write_mp4
    return write_new_file(path, lambda temporary: write(pixels, temporary, fps), input_name)


def _write_mp4(pixels: np.ndarray, path: Path, fps: float) -> None:
    pad_h, pad_w = pixels.shape[1] % 2, pixels.shape[2] % 2  # 4:2:0 chroma needs even sizes
    pixels = np.pad(pixels, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001), options=H264_OPTIONS)
        stream.width, stream.height, stream.pix_fmt = pixels.shape[2], pixels.shape[1], "yuv420p"
        for picture in pixels:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode())


def _write_gif(pixels: np.ndarray, path: Path, fps: float) -> None:
    # Pillow picks an adaptive palette per frame (FFmpeg's GIF encoder would dither to a fixed one)
    from PIL import Image

    images = [Image.fromarray(picture) for picture in pixels]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=max(20, round(1000 / fps)))
