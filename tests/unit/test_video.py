"""motion_core.video: which frames a reference clip yields, at what size, and how bad files fail."""

from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from motion_core.errors import InputError
from motion_core.paths import resolve_inside
from motion_core.video import FrameSelection, load_video, plan_resize, resampled_indices, webp_rate
from support.clips import CONTAINERS, decode_reference, frame_index, index_colour, write_index_clip

FPS = 8


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A 40-frame index clip in every container the tests write."""
    folder = tmp_path_factory.mktemp("clips")
    return {kind: write_index_clip(folder / f"clip_{kind}", 40, fps=FPS, kind=kind) for kind in CONTAINERS}


def expected_indices(path, selection: FrameSelection) -> list[int]:
    """What the options should select, computed from an independent full decode.

    The frame on screen at time t is the last frame whose timestamp is <= t; with force_rate the
    slots k / rate run while they fall inside the clip (the last frame lasts one source period).
    """
    times, content = decode_reference(path)
    if selection.force_rate:
        rate = Fraction(selection.force_rate)
        period = times[1] - times[0]
        end = times[-1] + period
        stream, k = [], 0
        while Fraction(k) / rate < end:
            t = Fraction(k) / rate
            stream.append(content[max(i for i, ti in enumerate(times) if ti <= t)])
            k += 1
    else:
        stream = content
    selected = stream[selection.skip_first_frames :: selection.select_every_nth]
    return selected[: selection.frame_load_cap] if selection.frame_load_cap else selected


def indices_of(frames: torch.Tensor) -> list[int]:
    return [frame_index(frame.numpy()) for frame in frames]


@pytest.mark.parametrize("kind", sorted(CONTAINERS))
def test_every_container_loads_as_comfy_image_batch(clips, kind):
    clip = load_video(clips[kind])
    assert clip.frames.dtype == torch.float32
    assert clip.frames.shape == (40, 48, 64, 3)
    assert 0.0 <= clip.frames.min() and clip.frames.max() <= 1.0
    assert indices_of(clip.frames) == list(range(40))
    assert clip.source_indices == list(range(40))
    assert clip.fps == pytest.approx(FPS, rel=0.05)  # GIF stores 1/100 s delays: 13/12 cs for 1/8 s


SELECTIONS = [
    FrameSelection(frame_load_cap=5),
    FrameSelection(skip_first_frames=7),
    FrameSelection(select_every_nth=3),
    FrameSelection(frame_load_cap=6, skip_first_frames=4, select_every_nth=5),
    FrameSelection(force_rate=4),
    FrameSelection(force_rate=12, frame_load_cap=10),
    FrameSelection(force_rate=20, skip_first_frames=3, select_every_nth=2, frame_load_cap=9),
    FrameSelection(force_rate=3, skip_first_frames=1, select_every_nth=2),
]


@pytest.mark.parametrize("kind", ["mp4", "mkv-ffv1", "webm", "webp"])
@pytest.mark.parametrize("selection", SELECTIONS, ids=repr)
def test_selection_matches_independent_decode(clips, kind, selection):
    clip = load_video(clips[kind], selection)
    assert indices_of(clip.frames) == expected_indices(clips[kind], selection)
    assert [frame_index(clip.frames[i].numpy()) for i in range(len(clip.source_indices))] == clip.source_indices


@pytest.mark.parametrize("rate", [4, 12, 20])
def test_frames_in_memory_are_resampled_as_the_loader_resamples_the_file(clips, rate):
    """``resampled_indices`` (Encode Reference's resampling of IMAGE frames at a known rate) picks the
    frames ``force_rate`` picks from the file, for a constant-rate clip."""
    whole = load_video(clips["mkv-ffv1"])
    forced = load_video(clips["mkv-ffv1"], FrameSelection(force_rate=rate))
    assert resampled_indices(whole.frames.shape[0], whole.fps, rate) == forced.source_indices


def test_gif_selection_follows_its_centisecond_timestamps(clips):
    """GIF delays are whole centiseconds (13, 12, 13, ...): force_rate follows the real timestamps."""
    selection = FrameSelection(force_rate=16, skip_first_frames=1, select_every_nth=3)
    times, _ = decode_reference(clips["gif"])
    assert times[1] == Fraction(13, 100)
    clip = load_video(clips["gif"], selection)
    # slot k shows the last frame with timestamp <= k/16 (period of the last frame: 12 cs)
    stream, k = [], 0
    while Fraction(k, 16) < times[-1] + Fraction(12, 100):
        stream.append(max(i for i, t in enumerate(times) if t <= Fraction(k, 16)))
        k += 1
    assert indices_of(clip.frames) == stream[1::3]


def test_loaded_fps_is_forced_rate_over_every_nth(clips):
    assert load_video(clips["mp4"], FrameSelection(select_every_nth=2)).fps == pytest.approx(FPS / 2)
    assert load_video(clips["mp4"], FrameSelection(force_rate=12, select_every_nth=3)).fps == pytest.approx(4)


def test_info_reports_source_and_selection(clips):
    clip = load_video(clips["mp4"], FrameSelection(frame_load_cap=3, select_every_nth=2))
    info = clip.info()
    assert info["source"]["width"] == 64 and info["source"]["height"] == 48
    assert info["source"]["frame_count"] == 40 and info["source"]["codec"] == "h264"
    assert info["loaded_frame_count"] == 3 and info["source_indices"] == [0, 2, 4]
    assert info["selection"]["select_every_nth"] == 2


def test_progress_reports_each_kept_frame_and_can_cancel(clips):
    calls = []
    load_video(clips["mp4"], FrameSelection(frame_load_cap=4), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]

    class Cancelled(Exception):
        pass

    def cancel(done, total):
        raise Cancelled

    with pytest.raises(Cancelled):
        load_video(clips["mp4"], progress=cancel)


# --- size -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, request_size, scaled, box",
    [
        ((64, 48), (0, 0), (64, 48), (0, 0, 64, 48)),
        ((64, 48), (32, 0), (32, 24), (0, 0, 32, 24)),
        ((64, 48), (0, 24), (32, 24), (0, 0, 32, 24)),
        ((64, 48), (32, 32), (43, 32), (5, 0, 32, 32)),  # wide source: scale to height, crop sides
        ((48, 64), (32, 32), (32, 43), (0, 5, 32, 32)),  # tall source: scale to width, crop top/bottom
        ((64, 48), (128, 48), (128, 96), (0, 24, 128, 48)),
    ],
)
def test_plan_resize_covers_then_centre_crops(source, request_size, scaled, box):
    assert plan_resize(*source, *request_size) == (scaled, box)


def test_resize_and_crop_keep_the_centre_of_the_picture(tmp_path):
    """A lossless clip whose red channel is the source column and green the source row."""
    width, height = 80, 40

    def ramp(_index):
        x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
        y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
        return np.stack([x, y, np.zeros_like(x)], -1).round().astype(np.uint8)

    path = write_index_clip(tmp_path / "ramp", 2, size=(width, height), kind="mkv-ffv1", picture=ramp)
    clip = load_video(path, FrameSelection(custom_width=20, custom_height=20))
    assert clip.frames.shape == (2, 20, 20, 3)
    frame = clip.frames[0].numpy() * 255
    # scaled to 40x20, crop columns 10..30: the middle half of the source's columns, all its rows
    assert frame[:, 0, 0].mean() == pytest.approx(255 * 0.25, abs=8)
    assert frame[:, -1, 0].mean() == pytest.approx(255 * 0.75, abs=8)
    assert frame[0, :, 1].mean() < 16 and frame[-1, :, 1].mean() > 239
    assert np.all(np.diff(frame[10, :, 0]) > 0)  # left-to-right order kept


def test_one_side_keeps_aspect_ratio(clips):
    assert load_video(clips["webm"], FrameSelection(frame_load_cap=1, custom_width=32)).frames.shape == (1, 24, 32, 3)
    assert load_video(clips["webm"], FrameSelection(frame_load_cap=1, custom_height=96)).frames.shape == (1, 96, 128, 3)


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "selection, name",
    [
        (FrameSelection(custom_width=100_000), "custom_width"),
        (FrameSelection(custom_height=-8), "custom_height"),
        (FrameSelection(frame_load_cap=-1), "frame_load_cap"),
        (FrameSelection(select_every_nth=0), "select_every_nth"),
        (FrameSelection(skip_first_frames=-2), "skip_first_frames"),
        (FrameSelection(force_rate=float("nan")), "force_rate"),
        (FrameSelection(force_rate=10_000.0), "force_rate"),
    ],
)
def test_invalid_options_are_named(clips, selection, name):
    with pytest.raises(InputError, match=rf"^{name}: .*(valid|use)") as caught:
        load_video(clips["mp4"], selection)
    assert caught.value.input_name == name


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="video: 'nope.mp4' does not exist"):
        load_video(tmp_path / "nope.mp4")


def test_file_that_is_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are my notes, not a video\n" * 20)
    with pytest.raises(InputError, match=r"'notes.mp4' could not be opened as a video .*use a video file"):
        load_video(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.webm"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"video: .empty.webm. is empty \(0 bytes\)"):
        load_video(path)


def test_zero_frame_video(tmp_path):
    path = tmp_path / "zero.webm"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx-vp9", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    with pytest.raises(InputError, match=r"'zero.webm' (ends before its first video frame|contains no video frames)"):
        load_video(path)


def test_audio_only_file(tmp_path):
    path = tmp_path / "voice.mka"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(InputError, match="'voice.mka' has no video stream"):
        load_video(path)


@pytest.mark.parametrize("kind", ["mp4", "webm", "mkv-ffv1"])
def test_truncated_video(tmp_path, kind):
    path = write_index_clip(tmp_path / "long", 80, size=(160, 120), kind=kind)
    data = path.read_bytes()
    cut = path.with_name("cut" + path.suffix)
    cut.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(InputError, match=r"'cut\.\w+' (is truncated or corrupt|could not be opened)"):
        load_video(cut)


def write_webp(path, durations_ms: list[int]):
    """An animated WebP written by Pillow with these frame durations; frame i spells index i."""
    from PIL import Image

    frames = [Image.new("RGB", (64, 48), index_colour(i)) for i in range(len(durations_ms))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=list(durations_ms), loop=0,
                   lossless=True)
    return path


def test_webp_rate_comes_from_every_frame_duration(tmp_path):
    """Real 30 fps WebP clips alternate 33 and 34 ms (whole milliseconds): 30 fps, not 1000/33."""
    clip = load_video(write_webp(tmp_path / "thirty.webp", [33, 34] * 6))
    assert clip.fps == 30.0 and clip.info()["source"]["fps"] == 30.0
    assert clip.source.duration == pytest.approx(0.402)
    assert indices_of(clip.frames) == list(range(12))


@pytest.mark.parametrize("durations, rate", [
    ([33, 34], 30.0), ([33, 33, 34], 30.0), ([34], 30.0),  # 29.97 fits too: milliseconds cannot tell
    ([40], 25.0), ([41, 42], 24.0), ([16, 17], 60.0),
    ([20], 50.0), ([20, 21], 48.0),  # where several fit: the period nearest the mean
    ([70], 1000 / 70), ([100, 200], 1000 / 150),  # none fits: the mean duration
    ([0, 0], 25.0), ([], 25.0),  # no duration recorded: the default
])
def test_webp_rate_snaps_to_a_common_rate_within_a_millisecond(durations, rate):
    assert webp_rate(durations) == pytest.approx(rate)


@pytest.mark.parametrize("kept", [0.99, 0.5, 0.1])
def test_a_webp_cut_short_is_reported_as_truncated(tmp_path, kept):
    data = write_webp(tmp_path / "whole.webp", [100] * 12).read_bytes()
    cut = tmp_path / "cut.webp"
    cut.write_bytes(data[: int(len(data) * kept)])
    with pytest.raises(InputError, match=rf"^video: 'cut.webp' is truncated: its header says {len(data)} bytes, "
                                         rf"the file has {int(len(data) * kept)}"):
        load_video(cut)


def test_options_that_select_no_frame(clips):
    with pytest.raises(InputError, match=r"select no frame .*skip_first_frames=40"):
        load_video(clips["mp4"], FrameSelection(skip_first_frames=40))


@pytest.mark.parametrize("name", ["../secret.mp4", "a/../../secret.mp4", "/etc/passwd", ""])
def test_names_that_leave_the_input_folder_are_refused(tmp_path, name):
    (tmp_path / "secret.mp4").write_bytes(b"x")
    inside = tmp_path / "input"
    inside.mkdir()
    with pytest.raises(InputError, match="^video: "):
        resolve_inside(inside, name, input_name="video")


def test_names_inside_the_input_folder_resolve(tmp_path, clips):
    (tmp_path / "sub").mkdir()
    target = tmp_path / "sub" / "clip.mp4"
    target.write_bytes(clips["mp4"].read_bytes())
    assert resolve_inside(tmp_path, "sub/clip.mp4", "video") == target
    assert resolve_inside(tmp_path, "sub/./clip.mp4", "video") == target
    with pytest.raises(InputError, match="not found"):
        resolve_inside(tmp_path, "sub/other.mp4", "video")


# --- frames in memory: fitting to a model, writing files ---------------------------------------------

def test_fit_frames_rounds_down_to_the_multiple_by_cover_and_centre_crop():
    from motion_core.video import fit_frames

    columns = torch.linspace(0, 1, 21).reshape(1, 1, 21, 1).expand(3, 19, 21, 3).contiguous()
    fitted = fit_frames(columns, 4)
    assert fitted.shape == (3, 16, 20, 3)
    assert torch.allclose(fitted[0, 0, :, 0].mean(), torch.tensor(0.5), atol=0.02), "centred, not shifted"
    assert (fitted[0, :, 1:, 0] >= fitted[0, :, :-1, 0] - 1e-3).all(), "not flipped or scrambled"
    assert fit_frames(fitted, 4) is fitted, "frames that fit are passed through"
    assert fit_frames(columns, 4, width=8, height=8).shape == (3, 8, 8, 3)


def test_fit_frames_resizes_frame_by_frame_as_the_whole_clip_at_once_and_can_be_cancelled():
    """One frame at a time (found by the fuzz tier: Encode Reference at width 8192 scaled the whole
    clip to 8192 x 8192 before cropping 32 rows, 7 GB and 80 s that a cancel could not stop)."""
    from motion_core.video import fit_frames

    frames = torch.rand(4, 20, 28, 3)
    whole = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2), size=(48, 67), mode="bicubic",
                                            antialias=True, align_corners=False)  # cover 64 x 48
    expected = whole[:, :, :, 1:65].clamp(0, 1).permute(0, 2, 3, 1)
    reports = []
    assert torch.equal(fit_frames(frames, 8, 64, 48, progress=lambda done, total: reports.append((done, total))),
                       expected)
    assert reports == [(1, 4), (2, 4), (3, 4), (4, 4)]

    def cancel(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_frames(frames, 8, 64, 48, progress=cancel)


@pytest.mark.parametrize(("source", "target"), [((20, 28), (48, 64)), ((56, 40), (32, 32)), ((32, 32), (200, 8))])
def test_fit_frames_resizes_one_axis_at_a_time_exactly_as_both_at_once(source, target):
    """The crop is taken between the two passes, so a tall thin crop of a small clip never makes the
    whole scaled frame (the fuzz tier: height 8192 from 32 x 32 made 8192 x 8192 per frame, and a
    cancel waited for it), and the pixels are those of resizing the whole frame, then cropping."""
    from motion_core.video import fit_frames

    (h, w), (target_h, target_w) = source, target
    frames = torch.rand(2, h, w, 3)
    (scaled_w, scaled_h), (left, top, _, _) = plan_resize(w, h, target_w, target_h)
    whole = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2), size=(scaled_h, scaled_w), mode="bicubic",
                                            antialias=True, align_corners=False)
    expected = whole[:, :, top:top + target_h, left:left + target_w].clamp(0, 1).permute(0, 2, 3, 1)
    assert torch.equal(fit_frames(frames, 8, target_w, target_h), expected)


def test_fit_frames_names_a_size_that_is_no_multiple():
    from motion_core.video import fit_frames

    with pytest.raises(InputError, match=r"^height: 30 is not a multiple of 8, .* use e.g. 24"):
        fit_frames(torch.rand(2, 32, 32, 3), 8, height=30)


def test_written_videos_decode_to_the_frames_and_never_replace_a_file(tmp_path):
    from motion_core.testing import moving_square_frames
    from motion_core.video import write_video

    frames = moving_square_frames(8, 32, 24)
    # GIF stores frame delays in 1/100 s: 12 fps is written as 8/100 s per frame (12.5 fps)
    for suffix, tolerance, fps in ((".mp4", 0.03, 12), (".gif", 0.05, 12.5)):
        path = write_video(frames, tmp_path / f"clip{suffix}", fps=12)
        clip = load_video(path)
        assert clip.frames.shape == frames.shape and clip.fps == pytest.approx(fps)
        assert (clip.frames - frames).abs().mean() < tolerance
        before = path.read_bytes()
        with pytest.raises(InputError, match="already exists"):
            write_video(frames, path)
        assert path.read_bytes() == before


def test_odd_sizes_are_padded_for_h264_and_other_formats_refused(tmp_path):
    from motion_core.video import write_video

    path = write_video(torch.rand(2, 7, 9, 3), tmp_path / "odd.mp4")
    assert load_video(path).frames.shape == (2, 8, 10, 3)
    with pytest.raises(InputError, match=r"^filename: 'a.avi': write .mp4 or .gif files"):
        write_video(torch.rand(2, 8, 8, 3), tmp_path / "a.avi")
