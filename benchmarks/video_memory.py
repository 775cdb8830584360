"""Peak memory of loading reference clips: it must grow with the frames kept, not the file length.

Each measurement runs in a fresh Python process that imports the loader, records its resident set
size (the baseline), loads one clip and reports its peak resident set size (ru_maxrss). The cost of
a load is peak minus baseline. A short and a long clip (same size and codec) are loaded with the
same small frame cap; the long clip is also loaded with select_every_nth spread over its whole
length (the decoder reads every frame of the file, the loader keeps 16), and with a larger cap to
show the cost growing with kept frames.

Usage: python benchmarks/video_memory.py [--long-seconds 120] [--size 512]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from benchmarks._report import table, write_section  # noqa: E402

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
from motion_core.video import FrameSelection, load_video

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

baseline = rss_kib()
start = time.perf_counter()
clip = load_video({path!r}, FrameSelection(**{options!r}))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(baseline=baseline, peak=peak, frames=clip.frames.shape[0],
                      tensor_mib=clip.frames.numel() * 4 / 2**20, seconds=seconds)))
"""


def measure(path: Path, options: dict) -> dict:
    code = CHILD.format(root=str(Path(__file__).resolve().parents[1]), path=str(path), options=options)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    from support.clips import write_index_clip

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-seconds", type=int, default=120, help="length of the long clip at 24 fps")
    parser.add_argument("--size", type=int, default=512, help="clip width and height in pixels")
    args = parser.parse_args()
    fps, size = 24, (args.size, args.size)

    with tempfile.TemporaryDirectory() as folder:
        rng_noise = __import__("numpy").random.default_rng(0)
        texture = rng_noise.integers(0, 256, (args.size, args.size, 3), dtype="uint8")

        def picture(index):  # textured frames so the codec has real work (and real file sizes)
            return __import__("numpy").roll(texture, index * 3, axis=1)

        short = write_index_clip(Path(folder) / "short", 2 * fps, fps=fps, size=size, picture=picture)
        long_frames = args.long_seconds * fps
        long = write_index_clip(Path(folder) / "long", long_frames, fps=fps, size=size, picture=picture)
        cases = [
            ("short", short, 2 * fps, dict(frame_load_cap=16)),
            ("long", long, long_frames, dict(frame_load_cap=16)),
            ("long", long, long_frames, dict(select_every_nth=long_frames // 16)),
            ("long", long, long_frames, dict(frame_load_cap=64)),
        ]
        rows, results = [], []
        for label, path, frames, options in cases:
            result = measure(path, options)
            results.append(result)
            cost = (result["peak"] - result["baseline"]) / 1024
            rows.append([f"{label} ({frames} frames, {path.stat().st_size / 2**20:.1f} MiB)",
                         ", ".join(f"{k}={v}" for k, v in options.items()), result["frames"],
                         f"{result['tensor_mib']:.1f}", f"{cost:.1f}", f"{result['seconds']:.2f}"])
    base = (results[0]["peak"] - results[0]["baseline"])
    ratio = (results[1]["peak"] - results[1]["baseline"]) / base
    spread = (results[2]["peak"] - results[2]["baseline"]) / base
    body = (
        f"Clips: H.264 {args.size}x{args.size} at {fps} fps, textured frames; one fresh process per row.\n\n"
        + table(["clip", "options", "frames kept", "IMAGE tensor MiB", "peak RSS - baseline MiB", "seconds"], rows)
        + f"\n\nLong clip / short clip, same cap of 16 frames: **{ratio:.2f}x** the memory "
        f"(every-nth across the whole long file: {spread:.2f}x). Memory follows the frames kept "
        "(the 64-frame row), not the length of the file.\n"
    )
    write_section("video_memory", "Reference-video loading: peak memory", body)
    print(body)


if __name__ == "__main__":
    main()
