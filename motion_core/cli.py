"""``python -m motion_core transfer`` and ``python -m motion_core edit``: the node graphs' pipelines as
commands, with progress bars.

    python -m motion_core transfer --model models/diffusers/zeroscope_v2_576w --video car.mp4 \\
        --prompt "a car is turning" --target "a tank turning in the desert" --out results/

Loads the model folder and the clip, trains a motion adapter (or loads one with ``--adapter``),
inverts the clip, and writes one MP4 per target prompt and seed into ``--out`` (numbered names:
nothing is overwritten), plus the adapter file unless ``--no-save-adapter``.

    python -m motion_core edit --model sd15.safetensors --motion-module mm_sd_v15_v2.safetensors \
        --tokenizer ComfyUI/comfy/sd1_tokenizer --controlnet control_v11p_sd15_openpose.pth \
        --video dancer.mp4 --pose dancer.pose.json --reference-pose walker.pose.json \
        --prompt "a woman in a red dress" --out results/

Edit-Your-Motion: the subject of ``--video`` performs the motion of the ``--reference-pose`` clip (both
poses as ``POSE_KEYPOINT`` JSON, e.g. comfyui_controlnet_aux's Save Pose Keypoints, one entry per
loaded frame), aligned onto the subject; writes one numbered MP4 into ``--out``.

Exit codes: 0 done, 2 bad input (the message names the option), 130 cancelled (Ctrl-C; no partial
file is left).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

OBJECTIVE_PRESETS = {
    "vmc+sma": {},
    "vmc": {"sma_global_weight": 0.0, "sma_local_weight": 0.0},
    "motion_director": {"base_loss": "motion_director", "sma_global_weight": 0.0, "sma_local_weight": 0.0},
    "motion_director+sma": {"base_loss": "motion_director"},
    "mse": {"base_loss": "mse", "sma_global_weight": 0.0, "sma_local_weight": 0.0},
}
"""``--objective`` names: changes to :class:`ObjectiveSpec`'s defaults (VMC + SMA)."""


ADAPTER_FLAGS = {
    "lora": {"lora_rank": "rank", "lora_alpha": "alpha", "lora_dropout": "dropout", "spatial_lora": "spatial",
             "spatial_skip": "spatial_skip_probability"},
    "motion_embeddings": {"embedding_blocks": "blocks", "frame_slots": "frame_slots", "value_weight": "value_weight",
                          "value_stride": "value_stride"},
}
"""Command-line flags of each parameterisation, by the adapter option they set."""


def build_parser() -> argparse.ArgumentParser:
    from .adapters import ADAPTER_KINDS
    from .adapters.embeddings import BLOCK_SETS, DEBIAS_MODES
    from .noise import STRATEGIES
    from .sampling import LOSS_WEIGHTINGS
    from .train import PRECISIONS

    parser = argparse.ArgumentParser(prog="python -m motion_core", description="One-shot video motion transfer.")
    commands = parser.add_subparsers(dest="command", required=True)
    transfer = commands.add_parser("transfer", help="learn a clip's motion and generate videos with it",
                                   description=__doc__.split("\n\n")[2], formatter_class=argparse.RawTextHelpFormatter)
    what = transfer.add_argument_group("what")
    add_model_arguments(what)
    what.add_argument("--video", action="append", required=True,
                      help="the reference clip (mp4, webm, mkv, mov, gif, webp); repeat for more clips of the same "
                           "motion, trained on together (one clip per step; the first is inverted)")
    what.add_argument("--prompt", action="append",
                      help="training prompt: describe the motion, not the look (default 'a video'); one for every "
                           "--video, or one per --video in their order")
    what.add_argument("--target", action="append", required=True,
                      help="a prompt for a new video (repeat for several)")
    what.add_argument("--out", required=True, help="folder for the videos and the adapter")
    what.add_argument("--adapter", help="use this adapter file instead of training one")

    clip = transfer.add_argument_group("reference clip")
    clip.add_argument("--frames", type=int, default=16, help="frames to load (default 16)")
    clip.add_argument("--skip", type=int, default=0, help="frames to skip at the start")
    clip.add_argument("--every", type=int, default=1, help="keep every n-th frame")
    clip.add_argument("--width", type=int, default=0, help="width to work at (0: the clip's, fitted to the model)")
    clip.add_argument("--height", type=int, default=0, help="height to work at (0: as for the width)")

    training = transfer.add_argument_group("training")
    training.add_argument("--objective", default="vmc+sma",
                          help=f"one of {', '.join(OBJECTIVE_PRESETS)}, or a JSON file of an objective spec")
    training.add_argument("--parameterisation", choices=sorted(ADAPTER_KINDS), default="temporal_attention",
                          help="what is trained: temporal_attention (VMC), lora (MotionDirector), "
                               "motion_embeddings (Motion Inversion)")
    training.add_argument("--steps", type=int, default=400, help="training steps (VMC: 400)")
    training.add_argument("--lr", type=float, default=None,
                          help="learning rate (default: the method's: VMC 1e-4, LoRA 5e-4, embeddings 2e-2)")
    training.add_argument("--seed", type=int, default=0, help="training seed")
    training.add_argument("--precision", choices=PRECISIONS, default="auto")
    training.add_argument("--gradient-checkpointing", action="store_true", help="less memory, ~1/3 more time")
    training.add_argument("--timestep-range", type=float, nargs=2, default=(0.0, 1.0), metavar=("LOW", "HIGH"),
                          help="train on timesteps in this part of the noise range (0 clean, 1 pure noise; "
                               "default the whole range, as the methods)")
    training.add_argument("--timestep-shift", type=float, default=1.0,
                          help="push the drawn timesteps toward high noise (1 = uniform, 3 = much more)")
    training.add_argument("--loss-weighting", choices=LOSS_WEIGHTINGS, default="none",
                          help="weight each step's loss by its noise level: min_snr (Min-SNR-gamma), x0 or v "
                               "(the error measured on x0 or v: more weight at high noise); default none, "
                               "as the methods")
    training.add_argument("--min-snr-gamma", type=float, default=5.0, help="gamma of min_snr (default 5)")
    training.add_argument("--no-save-adapter", action="store_true", help="do not write the trained adapter")

    lora = transfer.add_argument_group("LoRA (--parameterisation lora)")
    lora.add_argument("--lora-rank", type=int, help="rank (default 32)")
    lora.add_argument("--lora-alpha", type=float, help="alpha; the update is scaled by alpha/rank (default 32)")
    lora.add_argument("--lora-dropout", type=float, help="dropout while training (default 0.1)")
    lora.add_argument("--spatial-lora", action="store_const", const=True,
                      help="also train MotionDirector's spatial LoRA (dual path); generation uses the temporal one")
    lora.add_argument("--spatial-skip", type=float, help="chance of skipping the spatial step (default 0.2)")
    embeddings = transfer.add_argument_group("motion embeddings (--parameterisation motion_embeddings)")
    embeddings.add_argument("--embedding-blocks", choices=BLOCK_SETS, help="widest (default) or all down/up blocks")
    embeddings.add_argument("--frame-slots", type=int, help="frame slots (default 32)")
    embeddings.add_argument("--value-weight", type=float, help="weight of the value embedding (default 1)")
    embeddings.add_argument("--value-stride", type=int, help="value embedding grid this many times coarser than the "
                                                             "attention's (default 0: auto, 4 on Wan, 1 elsewhere)")

    generation = transfer.add_argument_group("generation")
    generation.add_argument("--inversion-steps", type=int, default=50)
    generation.add_argument("--noise", choices=sorted(STRATEGIES), default="direct", help="initial noise strategy")
    generation.add_argument("--ratio", type=float, default=None,
                            help="share of inverted noise (blends; default 0.5) or stop frequency (freeinit; 0.25)")
    generation.add_argument("--sampling-steps", type=int, default=50)
    generation.add_argument("--cfg", type=float, default=9.0, help="guidance scale")
    generation.add_argument("--negative-prompt", default="")
    generation.add_argument("--strength", type=float, default=1.0, help="adapter strength")
    generation.add_argument("--seeds", type=int, nargs="+", default=[0], help="noise seeds: one video per seed")
    generation.add_argument("--debias", choices=DEBIAS_MODES, default=DEBIAS_MODES[0],
                            help="motion embeddings: object/hybrid use E_v's frame differences, camera drops it, "
                                 "none keeps it as trained; auto (default): object in temporal attention, none "
                                 "in a DiT's (Wan's) joint attention")

    add_memory_arguments(transfer)
    add_edit_command(commands)
    return parser


def add_model_arguments(group) -> None:
    """``--model`` and the flags of its extra files (:data:`PART_FLAGS`)."""
    group.add_argument("--model", required=True,
                      help="a ModelScope/ZeroScope diffusers folder, an AnimateDiff diffusers folder, a Stable "
                           "Diffusion 1.5 checkpoint (one file or diffusers folder) with --motion-module, a Wan "
                           "diffusers folder, or a Wan transformer file (ComfyUI's models/diffusion_models) with "
                           "--vae and --text-encoder")
    group.add_argument("--motion-module", help="AnimateDiff motion module (file or diffusers MotionAdapter folder) for "
                                              "an SD1.5 --model")
    group.add_argument("--tokenizer", help="SD1.5 CLIP tokenizer folder (vocab.json, merges.txt; ComfyUI's "
                                          "comfy/sd1_tokenizer) for a single-file --model")
    group.add_argument("--vae", help="Wan VAE file (ComfyUI's models/vae: wan_2.1_vae.safetensors; for Wan 2.2 "
                                    "TI2V-5B wan2.2_vae.safetensors) for a Wan transformer file --model")
    group.add_argument("--text-encoder", help="UMT5-XXL text encoder file with its tokenizer (ComfyUI's "
                                             "models/text_encoders: umt5_xxl_fp16.safetensors) for a Wan --model file")
    group.add_argument("--low-noise-model", help="Wan 2.2 A14B's low-noise expert file (ComfyUI's "
                                                "models/diffusion_models: wan2.2_t2v_low_noise_14B_fp16.safetensors) "
                                                "with --model the high-noise expert: the two load as one model")


def add_memory_arguments(parser: argparse.ArgumentParser) -> None:
    """How the model is loaded and run (:class:`~motion_core.backbones.base.ModelOptions`)."""
    from .backbones.base import ATTENTION, DTYPES, OFFLOAD

    memory = parser.add_argument_group("model")
    memory.add_argument("--dtype", choices=["auto", *DTYPES], default="auto")
    memory.add_argument("--device", default="auto")
    memory.add_argument("--offload", choices=OFFLOAD, default="none")
    memory.add_argument("--attention", choices=ATTENTION, default="sdpa")
    memory.add_argument("--vae-decode-chunk", type=int, default=8)


EDIT_LR = 5e-4
"""``edit``'s default learning rate (Train Motion Edit's)."""


def add_edit_command(commands) -> None:
    from .edit import SIZE_MEASURES
    from .train import PRECISIONS

    edit = commands.add_parser("edit", help="give a clip another clip's motion, keeping its look (Edit-Your-Motion)",
                               description="\n\n".join(__doc__.split("\n\n")[3:5]),
                               formatter_class=argparse.RawTextHelpFormatter)
    what = edit.add_argument_group("what")
    add_model_arguments(what)
    what.add_argument("--controlnet", required=True,
                      help="an OpenPose ControlNet file for the model (models/controlnet: control_v11p_sd15_openpose "
                           ".pth or .safetensors)")
    what.add_argument("--video", required=True, help="the clip to edit (its subject keeps its look)")
    what.add_argument("--pose", required=True, help="the clip's poses: POSE_KEYPOINT JSON, one entry per loaded frame")
    what.add_argument("--reference-pose", required=True,
                      help="the poses of the motion to perform (another clip's), POSE_KEYPOINT JSON")
    what.add_argument("--prompt", default="a video", help="what the clip shows (default 'a video')")
    what.add_argument("--out", required=True, help="folder for the edited video")
    clip = edit.add_argument_group("clip")
    clip.add_argument("--frames", type=int, default=16, help="frames to load (default 16)")
    clip.add_argument("--skip", type=int, default=0, help="frames to skip at the start")
    clip.add_argument("--every", type=int, default=1, help="keep every n-th frame")
    clip.add_argument("--width", type=int, default=0, help="width to work at (0: the clip's, fitted to the model)")
    clip.add_argument("--height", type=int, default=0, help="height to work at (0: as for the width)")
    clip.add_argument("--anchor-frame", type=int, default=0, help="frame where both skeletons are measured")
    clip.add_argument("--size-measure", choices=SIZE_MEASURES, default=SIZE_MEASURES[0],
                      help="how the skeletons' sizes are compared (torso: neck to hips)")
    training = edit.add_argument_group("training")
    training.add_argument("--subject-steps", type=int, default=300, help="stage 1 steps (the paper: 300)")
    training.add_argument("--full-steps", type=int, default=300, help="stage 2 steps (the paper: 300)")
    training.add_argument("--lr", type=float, default=EDIT_LR, help=f"learning rate (default {EDIT_LR:g})")
    training.add_argument("--seed", type=int, default=0, help="training seed")
    training.add_argument("--precision", choices=PRECISIONS, default="auto")
    training.add_argument("--gradient-checkpointing", action="store_true", help="less memory, ~1/3 more time")
    generation = edit.add_argument_group("generation")
    generation.add_argument("--sampling-steps", type=int, default=50, help="DDIM steps of inversion and sampling")
    generation.add_argument("--cfg", type=float, default=7.5, help="guidance scale")
    generation.add_argument("--negative-prompt", default="")
    add_memory_arguments(edit)


def objective_spec(value: str):
    """An :class:`ObjectiveSpec` from a preset name or a JSON file (raises InputError naming --objective)."""
    from .objectives import ObjectiveSpec

    if value in OBJECTIVE_PRESETS:
        return ObjectiveSpec(**OBJECTIVE_PRESETS[value]).validate()
    path = Path(value)
    if not path.is_file():
        raise InputError("--objective", f"{value!r} is neither a preset ({', '.join(OBJECTIVE_PRESETS)}) nor a file")
    try:
        return ObjectiveSpec.from_dict(json.loads(path.read_text())).validate()
    except json.JSONDecodeError as err:
        raise InputError("--objective", f"{path.name!r} is not valid JSON ({err})") from None


def adapter_options(args: argparse.Namespace) -> dict:
    """The chosen parameterisation's options from its flags (InputError for another kind's flags)."""
    options = {}
    for kind, flags in ADAPTER_FLAGS.items():
        for flag, option in flags.items():
            value = getattr(args, flag)
            if value is None:
                continue
            if kind != args.parameterisation:
                raise InputError(f"--{flag.replace('_', '-')}", f"is an option of --parameterisation {kind}, not of "
                                                                f"{args.parameterisation}")
            options[option] = value
    return options


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe short form of a prompt: ``"A red car, turning!"`` -> ``"a_red_car_turning"``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:limit].rstrip("_") or "video"


class Bar:
    """A tqdm bar as a ``progress(done, total)`` callback; ``note`` shows text after it (the loss).

    A context manager: the bar is closed when the block ends, also when it is cancelled.
    """

    def __init__(self, description: str, total: int | None = None):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=description, unit="step", dynamic_ncols=True, leave=True)

    def __call__(self, done: int, total: int | None = None) -> None:
        if total is not None and self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def note(self, text: str) -> None:
        self._bar.set_postfix_str(text, refresh=False)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *_) -> None:
        self._bar.close()


def timestep_distribution(args: argparse.Namespace):
    """The training timesteps ``--timestep-range`` and ``--timestep-shift`` ask for, checked (the error names the flag)."""
    from .sampling import TimestepDistribution

    timesteps = TimestepDistribution(*args.timestep_range, args.timestep_shift)
    return _checked(timesteps, {"timestep_shift": "--timestep-shift"}, "--timestep-range")


def loss_weighting(args: argparse.Namespace):
    """The loss weighting ``--loss-weighting`` and ``--min-snr-gamma`` ask for, checked (the error names the flag)."""
    from .sampling import LossWeighting

    return _checked(LossWeighting(args.loss_weighting, args.min_snr_gamma), {"min_snr_gamma": "--min-snr-gamma"},
                    "--loss-weighting")


PART_FLAGS = {"motion_module": "--motion-module", "tokenizer": "--tokenizer", "vae": "--vae",
              "text_encoder": "--text-encoder", "low_noise_model": "--low-noise-model"}
"""The flags of a model's extra files (:data:`motion_core.backbones.base.Parts`)."""


def _checked(options, flags: dict[str, str], other: str | None):
    """``options.validate()``, an :class:`InputError` renamed to the flag of its input (``other`` when unlisted)."""
    try:
        return options.validate()
    except InputError as err:
        raise err.renamed(flags, other) from None


class Bars:
    """A :data:`motion_core.pipeline.Stage` of tqdm bars; ``note`` shows text on the open one (the loss)."""

    def __init__(self):
        self.current: Bar | None = None

    @contextlib.contextmanager
    def __call__(self, name: str, total: int):
        with Bar(name, total) as bar:
            self.current = bar
            try:
                yield bar
            finally:
                self.current = None

    def note(self, text: str) -> None:
        if self.current is not None:
            self.current.note(text)



@dataclass
class TransferResult:
    videos: list[Path]
    adapter_file: Path | None
    loss: list[float]


def training_prompts(videos: list[str], prompts: list[str] | None) -> list[str]:
    """One training prompt per ``--video``: the one given for all, or one each (default "a video")."""
    prompts = prompts or ["a video"]
    if len(prompts) == 1:
        return prompts * len(videos)
    if len(prompts) != len(videos):
        raise InputError("--prompt", f"{len(prompts)} prompts for {len(videos)} videos; give one --prompt for all of "
                                     "them or one per --video, in the same order")
    return prompts


def transfer(args: argparse.Namespace) -> TransferResult:
    """Run the pipeline (:func:`motion_core.pipeline.transfer`) for parsed ``transfer`` arguments (see
    :func:`build_parser`), writing numbered files into ``--out``."""
    from .adapters import adapter_writer, load_adapter
    from .files import write_numbered_file
    from .pipeline import TransferSettings
    from .pipeline import transfer as run_transfer
    from .train import TrainOptions
    from .video import FrameSelection, load_video, write_video

    spec = objective_spec(args.objective)
    options_given = adapter_options(args)  # flags of another kind: refused before anything is loaded
    if args.adapter and options_given:
        raise InputError("--adapter", "an adapter file is used as it was trained; drop the training options")
    timesteps, weighting = timestep_distribution(args), loss_weighting(args)  # refused before anything is loaded
    prompts = training_prompts(args.video, args.prompt)
    out = Path(args.out)
    backbone = load_model(args)
    # A model trained at one frame rate (Wan: 16 fps) gets the clips at that rate; --frames counts those frames
    selection = FrameSelection(args.frames, args.skip, args.every, force_rate=backbone.frame_rate or 0.0)
    clip, *more = [load_video(video, selection, input_name="--video") for video in args.video]
    for video, loaded in zip(args.video, [clip, *more]):
        if backbone.frame_rate and abs(loaded.source.fps - backbone.frame_rate) > 1e-3 * backbone.frame_rate:
            print(f"note: {Path(video).name} resampled from {loaded.source.fps:g} to {backbone.frame_rate:g} fps, "
                  "the model's rate", file=sys.stderr)
    adapter = load_adapter(args.adapter, backbone.fingerprint, input_name="--adapter") if args.adapter else None
    settings = TransferSettings(
        width=args.width, height=args.height, objective=spec, kind=args.parameterisation,
        adapter_options=options_given, steps=args.steps, lr=args.lr, seed=args.seed,
        train_options=TrainOptions(precision=args.precision, gradient_checkpointing=args.gradient_checkpointing,
                                   timesteps=timesteps, loss_weighting=weighting),
        inversion_steps=args.inversion_steps, noise=args.noise, ratio=args.ratio, noise_seeds=tuple(args.seeds),
        sampling_steps=args.sampling_steps, cfg=args.cfg, negative_prompt=args.negative_prompt,
        strength=args.strength, debias=args.debias)
    written, bars = TransferResult([], None, []), Bars()

    def save_adapter(trained) -> None:
        if not args.no_save_adapter:
            written.adapter_file = write_numbered_file(out, "adapter", ".safetensors", adapter_writer(trained), "--out")

    def save_video(target: str, seed: int, frames) -> None:
        written.videos.append(write_numbered_file(out, f"{slug(target)}_seed{seed}", ".mp4",
                                                  lambda path: write_video(frames, path, clip.fps), "--out"))

    try:
        result = run_transfer(backbone, clip.frames, prompts[0], args.target, settings, adapter=adapter,
                              on_train_step=lambda step, steps, terms: bars.note(f"loss {terms['total']:.4f}"),
                              on_adapter=save_adapter, on_video=save_video, stage=bars, input_name="--video",
                              more_clips=[(other.frames, text) for other, text in zip(more, prompts[1:])])
    except InputError as err:
        raise err.renamed({"more_references": "--video", "prompt": "--prompt"}) from None
    written.loss = [terms["total"] for terms in result.history]
    return written


def edit(args: argparse.Namespace) -> Path:
    """Edit-Your-Motion for parsed ``edit`` arguments: train on the clip, edit it under the aligned
    reference poses, write a numbered MP4 into ``--out``; returns its path."""
    from .edit import align_pose_keypoint, read_pose_file
    from .edit.controlnet import load_controlnet
    from .edit.pipeline import EditTraining, edit_video, pose_images, train_edit
    from .files import write_numbered_file
    from .pipeline import decode, encode_reference
    from .train import TrainOptions
    from .video import FrameSelection, load_video, write_video

    settings = _checked(EditTraining(args.subject_steps, args.full_steps, args.lr, args.seed,
                                     TrainOptions(precision=args.precision,
                                                  gradient_checkpointing=args.gradient_checkpointing)),
                        {"subject_steps": "--subject-steps", "full_steps": "--full-steps", "precision": "--precision"},
                        None)
    poses = {flag: read_pose_file(getattr(args, name), flag) for name, flag in (("pose", "--pose"),
                                                                                ("reference_pose", "--reference-pose"))}
    backbone = load_model(args)
    if backbone.family != "animatediff":
        raise InputError("--model", f"Edit-Your-Motion runs on AnimateDiff (SD1.5) models; this is a "
                                    f"{backbone.family} model")
    controlnet = load_controlnet(args.controlnet, backbone.dtype, input_name="--controlnet",
                                 unet_config=dict(backbone.denoiser_module.config))
    clip = load_video(args.video, FrameSelection(args.frames, args.skip, args.every), input_name="--video")
    bars = Bars()
    try:
        with bars("encoding", 2 * clip.frames.shape[0]) as bar:
            latents, _ = encode_reference(backbone, clip.frames, args.width, args.height, "--video", progress=bar)
        aligned = align_pose_keypoint(poses["--pose"], poses["--reference-pose"], args.anchor_frame,
                                      size=args.size_measure)
        source_images = pose_images(poses["--pose"], backbone, latents, "--pose")
        target_images = pose_images(aligned.pose_keypoint, backbone, latents, "--reference-pose")
        with bars("training", settings.subject_steps + settings.full_steps) as bar:
            def step(done: int, total: int, terms: dict[str, float]) -> None:
                bar(done, total)
                bar.note(f"loss {terms['total']:.4f}")

            adapter = train_edit(backbone, controlnet, latents, source_images, args.prompt, None, settings,
                                 callback=step).adapter
        with bars("inverting", args.sampling_steps) as inverting, bars("sampling", args.sampling_steps) as sampling:
            edited = edit_video(backbone, adapter, controlnet, latents, source_images, target_images, args.prompt,
                                args.negative_prompt, args.sampling_steps, args.cfg, inverting, sampling)
        frames = decode(backbone, edited)
    except InputError as err:
        raise err.renamed(EDIT_FLAGS) from None
    return write_numbered_file(Path(args.out), f"edit_{slug(args.prompt)}", ".mp4",
                               lambda path: write_video(frames, path, clip.fps), "--out")


EDIT_FLAGS = {"source_pose": "--pose", "reference_pose": "--reference-pose", "anchor_frame": "--anchor-frame",
              "size_measure": "--size-measure", "steps": "--sampling-steps", "cfg": "--cfg", "source": "--video",
              "frames": "--video", "width": "--width", "height": "--height", "controlnet": "--controlnet",
              "lr": "--lr", "prompt": "--prompt"}
"""The ``edit`` flags of the library's input names."""


def load_model(args: argparse.Namespace):
    """The ``--model`` (with its extra files and the memory flags) as a backbone; errors name the flags."""
    from .backbones import load_backbone
    from .backbones.base import ModelOptions

    options = ModelOptions(dtype=args.dtype, device=args.device, offload=args.offload,
                           vae_decode_chunk=args.vae_decode_chunk, attention=args.attention)
    parts = {name: Path(getattr(args, name)) for name in PART_FLAGS if getattr(args, name)}
    try:
        return load_backbone(args.model, options, input_name="--model", parts=parts)
    except InputError as err:
        raise err.renamed(PART_FLAGS) from None


def run_command(work: Callable[[], list[str]]) -> int:
    """Run a command's ``work`` and print the lines it returns; the exit code: 0 done, 2 bad input
    (the message names the option), 130 cancelled."""
    try:
        lines = work()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cancelled: nothing half-written was left behind", file=sys.stderr)
        return 130
    for line in lines:
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def work() -> list[str]:
        if args.command == "edit":
            return [f"wrote {edit(args)}"]
        result = transfer(args)
        return [f"wrote {path}" for path in [*result.videos, *([result.adapter_file] if result.adapter_file else [])]]

    return run_command(work)
