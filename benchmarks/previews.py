"""What previews cost: training with a decoded preview every N steps, and sampling with a latent
preview per step, each against the same work without previews in the same run.

Training: the toy model's clip, VMC + SMA (the default objective), ``--steps`` steps per row, each
row the same seed and clip; a preview is ``TrainingPreview``'s default (8 guided sampler steps from
fresh noise, decode, 4 frames) turned into the JPEG the node sends. Sampling: ``generate`` with
ComfyUI's own Latent2RGB previewer of the family's latent format (the host ComfyUI the tests use)
and the JPEG encoding the server does, against no preview. Times are the process's CPU time (one
thread: what the work itself costs, little disturbed by other jobs on a shared machine); rows are
timed in turn, round after round (``--repeats``), and each row's fastest round is kept.

Usage: python benchmarks/previews.py [--model models/toy-t2v] [--steps 100] [--every 25 50 100]
       [--repeats 2] [--threads 1] [--write]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks._report import publish, table
from benchmarks.toy_transfer import cases, load_toy_model


def comfy_latent_previewer(latent_format: str):
    """ComfyUI's Latent2RGB previewer for ``latent_format``, from the host the tests run (as the nodes
    get it with ``--preview-method latent2rgb``)."""
    from support.comfy_host import STAND_INS, host_source

    sys.path.insert(0, str(host_source()))
    sys.path.append(str(STAND_INS))  # import-only torchvision/torchaudio, as the node tests use
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    comfy.cli_args.args.preview_method = comfy.cli_args.LatentPreviewMethod.Latent2RGB
    import comfy.latent_formats
    import latent_preview
    import torch

    return latent_preview.get_previewer(torch.device("cpu"), getattr(comfy.latent_formats, latent_format)())


def jpeg(image) -> bytes:
    """The encoding the server applies to a preview before sending it."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def fastest(runs: dict, repeats: int) -> dict:
    """The least CPU time of each of ``runs`` (name -> callable) over ``repeats`` rounds of all of them."""
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.process_time()
            run()
            times[name].append(time.process_time() - started)
    return {name: min(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/toy-t2v")
    parser.add_argument("--steps", type=int, default=100, help="training steps per row")
    parser.add_argument("--every", type=int, nargs="+", default=[25, 50, 100], help="preview intervals to time")
    parser.add_argument("--sampling-steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)

    import torch
    from PIL import Image

    from motion_core.pipeline import (
        TrainingPreview,
        VideoLatents,
        generate,
        make_noise,
        train_adapter,
    )
    from motion_core.video import frame_strip

    torch.set_num_threads(args.threads)
    backbone = load_toy_model(args.model)
    case = next(cases(backbone, 1))
    previews = []

    def show(frames, step):
        previews.append(jpeg(Image.fromarray(frame_strip(frames))))

    def train(every: int):
        preview = TrainingPreview(every, show) if every else None
        train_adapter(backbone, case.reference, case.clip.caption, steps=args.steps, seed=0, preview=preview)

    training = fastest({every: lambda every=every: train(every) for every in [0, *args.every]}, args.repeats)
    baseline = training[0]
    rows = [["training, no previews", f"{baseline / args.steps:.3f} s/step", "1.00"]]
    rows += [[f"training, a preview every {every} steps", f"{training[every] / args.steps:.3f} s/step",
              f"{training[every] / baseline:.3f}"] for every in args.every]

    previewer = comfy_latent_previewer(backbone.latent_format)
    noise = make_noise(VideoLatents(case.reference.samples, backbone.fingerprint, noise=True), "random", 0)

    def sample(with_preview: bool):
        def preview(x0):
            jpeg(previewer.decode_latent_to_preview_image("JPEG", x0[:1, :, 0].float())[1])

        generate(backbone, noise, case.target, steps=args.sampling_steps, cfg=7.5,
                 preview=preview if with_preview else None)

    sampling = fastest({flag: lambda flag=flag: sample(flag) for flag in (False, True)}, args.repeats)
    plain, previewed = sampling[False], sampling[True]
    rows += [["sampling, no latent previews", f"{plain / args.sampling_steps:.3f} s/step", "1.00"],
             ["sampling, a latent preview per step (Latent2RGB)", f"{previewed / args.sampling_steps:.3f} s/step",
              f"{previewed / plain:.3f}"]]

    body = (f"Model `{args.model}` (8 frames × 32×32); training: {args.steps} steps of VMC + SMA per row, a preview = "
            "8 guided sampler steps from fresh noise + decode + 4 frames as one JPEG (`TrainingPreview`'s "
            f"defaults); sampling: {args.sampling_steps} DDIM steps at cfg 7.5, a latent preview = ComfyUI's "
            "Latent2RGB of the first frame + JPEG. CPU time of the process, fastest of "
            f"{args.repeats} rounds per row, {args.threads} thread(s); ratio = time / the row without previews.\n\n"
            + table(["run", "time", "ratio"], rows) + "\n")
    publish(body, args.write, "previews", "Previews: what they cost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
