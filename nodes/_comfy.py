"""The one place where the pack touches ComfyUI's Python API.

Everything ComfyUI-specific the nodes need (the V3 schema, folders, progress, cancellation, the
memory manager) is imported or wrapped here, so that a change of ComfyUI's API is a change of this
file and of ``memory.py``, which only this file imports.
"""

import os
import sys
from collections.abc import Callable

import comfy.model_management
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import ComfyExtension, io, ui

from ..motion_core.errors import InputError
from ..motion_core.paths import resolve_inside
from ..motion_core.video import frame_strip
from . import memory

__all__ = ["ComfyExtension", "io", "ui", "PREFIX", "CATEGORY", "node_id", "custom_type",
           "resolve_input_file", "list_input_files", "Progress", "input_problem", "file_fingerprint", "compute_device",
           "list_diffusers_models",
           "diffusers_model_path", "list_video_models", "video_model_path", "list_motion_modules", "motion_module_path",
           "sd1_tokenizer_folder", "CHECKPOINTS", "list_vae_files", "vae_path", "list_text_encoder_files",
           "text_encoder_path", "MOTION_LORA_FOLDER", "list_motion_loras", "motion_lora_path",
           "motion_lora_save_folder", "ADAPTER_FOLDER", "list_adapters", "adapter_path", "adapter_save_folder",
           "load_video_model", "use_model", "register_beside", "model_file_path"]

PREFIX = "MTX_"
"""Prefix of every node id and custom type of the pack (kept forever: saved graphs use it)."""

CATEGORY = "motion transfer"


def node_id(name: str) -> str:
    return PREFIX + name


def custom_type(name: str) -> type:
    """A custom socket type carrying the pack prefix, e.g. ``MTX_VIDEO_INFO``."""
    return io.Custom(PREFIX + name)


def resolve_input_file(name: str) -> tuple[str, str, str]:
    """Split ComfyUI's annotated name (``clip.mp4 [output]``) into (folder, name inside it, kind).

    ``kind`` is "input", "output" or "temp", for messages that should not show server paths.
    """
    plain, base = folder_paths.annotated_filepath(name)
    if base is None:
        return folder_paths.get_input_directory(), plain, "input"
    kind = "output" if base == folder_paths.get_output_directory() else "temp"
    return base, plain, kind


def list_input_files(extensions: frozenset[str]) -> list[str]:
    """Files directly inside the input folder whose extension is in ``extensions`` (sorted)."""
    folder = folder_paths.get_input_directory()
    if not os.path.isdir(folder):
        return []
    return sorted(
        name for name in os.listdir(folder)
        if os.path.isfile(os.path.join(folder, name)) and os.path.splitext(name)[1].lower() in extensions
    )


class Progress:
    """Node progress bar that also honours ComfyUI's cancel button, and shows previews on the node.

    Pass an instance as a ``progress(done, total)`` callback to a motion_core loop: each call moves
    the bar and raises ComfyUI's interrupt exception if the user cancelled. With the node's
    ``unique_id``, :meth:`text` shows a line of text on the node (e.g. the loss). A sampler's
    ``preview`` callback may be :meth:`latents` (the latent preview ComfyUI's samplers show, by the
    server's ``--preview-method``); :meth:`frames` shows decoded frames. A preview goes out with
    the next move of the bar, as core samplers send theirs.
    """

    def __init__(self, total: int | None = None, node: str | None = None, latent_format: str | None = None):
        self._bar = comfy.utils.ProgressBar(total or 1, node_id=node)
        self._node = node
        self._previewer, self._video_latents = _latent_previewer(latent_format)
        self._preview = None

    def __call__(self, done: int, total: int | None = None) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        preview, self._preview = self._preview, None
        self._bar.update_absolute(done, max(total or 0, done, 1), preview)

    @property
    def shows_latents(self) -> bool:
        """Whether :meth:`latents` draws anything (the server's preview method and the model's latents)."""
        return self._previewer is not None

    def latents(self, x0: torch.Tensor) -> None:
        """Preview the clean-latent estimate ``(b, c, f, h, w)`` of a sampler step: its first frame."""
        if self._previewer is not None:
            first = x0[:1, :, :1] if self._video_latents else x0[:1, :, 0]
            self._preview = self._previewer.decode_latent_to_preview_image("JPEG", first.float())

    def frames(self, frames: torch.Tensor) -> None:
        """Preview IMAGE frames ``(n, H, W, 3)`` in [0, 1] as one strip, side by side."""
        import latent_preview
        from PIL import Image

        strip = frame_strip(frames)
        # The server fits a preview into max_size², enlarging small ones: never past the strip's own size
        largest = min(2 * latent_preview.MAX_PREVIEW_RESOLUTION, max(strip.shape[:2]))
        self._preview = ("JPEG", Image.fromarray(strip), largest)

    def text(self, message: str) -> None:
        """Show ``message`` on the node (in a running ComfyUI server; elsewhere nothing happens)."""
        # ComfyUI's server module is only looked up, never imported: outside a server there is none
        server = getattr(getattr(sys.modules.get("server"), "PromptServer", None), "instance", None)
        if self._node is not None and server is not None:
            server.send_progress_text(message, self._node)


def _latent_previewer(latent_format: str | None):
    """ComfyUI's latent previewer for a family's latent format (see ``VideoBackbone.latent_format``) under
    the server's ``--preview-method`` (None when previews are off or the format is unknown), and
    whether it takes video latents ``(b, c, f, h, w)`` rather than one frame ``(b, c, h, w)``."""
    import comfy.latent_formats
    import latent_preview

    format_class = getattr(comfy.latent_formats, latent_format or "", None)
    if format_class is None:
        return None, False
    latent_space = format_class()
    previewer = latent_preview.get_previewer(comfy.model_management.get_torch_device(), latent_space)
    return previewer, getattr(latent_space, "latent_dimensions", 2) == 3


def input_problem(check: Callable[[], object]) -> bool | str:
    """For ``validate_inputs``: True when ``check()`` passes, else its :class:`InputError` message."""
    try:
        check()
    except InputError as err:
        return str(err)
    return True


def file_fingerprint(locate: Callable[[], list[str]]) -> tuple | float:
    """For ``fingerprint_inputs``: (mtime, size) of each path ``locate()`` returns.

    NaN when a path cannot be found: never equal to itself, so the node runs again and reports why.
    """
    try:
        stats = [os.stat(path) for path in locate()]
    except (InputError, OSError):
        return float("nan")
    return tuple((stat.st_mtime_ns, stat.st_size) for stat in stats)


def compute_device() -> str:
    """The device ComfyUI computes on (honours --cpu, --cuda-device, ...)."""
    return str(comfy.model_management.get_torch_device())


# --- models ---------------------------------------------------------------------------------------

def load_video_model(load: Callable[[], object], files: list[str], device: str, dtype: torch.dtype):
    """``load()`` a video model in ComfyUI's memory manager: room is made for its ``files`` loaded in
    ``dtype`` on ``device`` first, and the model is registered after (nodes/memory.py)."""
    memory.make_room_for_files(files, torch.device(device), dtype)
    return memory.register(load())


def use_model(model, task: str, latent_shape: tuple[int, ...], beside: tuple = ()) -> None:
    """Before ``task`` (encode, decode, invert, sample, train) on latents ``(b, c, f, h, w)``: ComfyUI
    loads ``model`` and the models that work ``beside`` it (evicting others as needed, or bringing
    them back after an eviction)."""
    memory.load(model, task, tuple(latent_shape), tuple(beside))


def register_beside(module, model):
    """Enter ``module``, a freshly loaded model that works beside ``model`` (a pose ControlNet), in
    ComfyUI's memory manager; returns it."""
    return memory.register_auxiliary(module, model)


def list_diffusers_models() -> list[str]:
    """Folders with a model_index.json under ComfyUI's ``diffusers`` model folders (relative names)."""
    names = []
    for root in folder_paths.get_folder_paths("diffusers"):
        for folder, subfolders, files in os.walk(root, followlinks=True):
            if "model_index.json" in files:
                names.append(os.path.relpath(folder, root).replace(os.sep, "/"))
                subfolders.clear()  # a model's parts are not models of their own
    return sorted(set(names))


CHECKPOINTS = "checkpoints/"
"""How Load Video Model names a single-file checkpoint from ``models/checkpoints`` among the diffusers folders."""

DIFFUSION_MODELS = "diffusion_models/"
"""How Load Video Model names a diffusion-model file from ``models/diffusion_models`` (Wan's transformer)."""

SINGLE_FILE_FOLDERS = {CHECKPOINTS: "checkpoints", DIFFUSION_MODELS: "diffusion_models"}

MOTION_MODULE_FOLDER = "animatediff_models"
"""ComfyUI model folder of AnimateDiff motion modules (the name AnimateDiff-Evolved uses too)."""

MOTION_MODULE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")


def list_video_models() -> list[str]:
    """Every model Load Video Model offers: diffusers folders (:func:`list_diffusers_models`, plain names),
    then single files from ``models/checkpoints`` as ``checkpoints/<name>`` and from
    ``models/diffusion_models`` as ``diffusion_models/<name>``."""
    return list_diffusers_models() + [prefix + name for prefix, folder in SINGLE_FILE_FOLDERS.items()
                                      for name in folder_paths.get_filename_list(folder)]


def video_model_path(name: str) -> str:
    """The folder or file a name from :func:`list_video_models` stands for (InputError naming ``model_name``)."""
    for prefix, folder in SINGLE_FILE_FOLDERS.items():
        if name.startswith(prefix):
            path = folder_paths.get_full_path(folder, name[len(prefix):])
            if path is not None:
                return path
            if not any(os.path.isdir(os.path.join(root, name)) for root in folder_paths.get_folder_paths("diffusers")):
                raise InputError("model_name", f"{name[len(prefix):]!r} is not in models/{folder}; copy the file "
                                               "there, then refresh")
    return diffusers_model_path(name)


def list_vae_files() -> list[str]:
    return folder_paths.get_filename_list("vae")


def vae_path(name: str) -> str:
    return model_file_path("vae", name, "vae_name",
                           "copy the model's VAE there (Wan: wan_2.1_vae.safetensors; TI2V-5B: wan2.2_vae.safetensors)")


def list_text_encoder_files() -> list[str]:
    return folder_paths.get_filename_list("text_encoders")


def text_encoder_path(name: str) -> str:
    return model_file_path("text_encoders", name, "text_encoder_name",
                           "copy the model's text encoder there (Wan: umt5_xxl_fp16.safetensors)")


def list_diffusion_model_files() -> list[str]:
    return folder_paths.get_filename_list("diffusion_models")


def diffusion_model_file_path(name: str) -> str:
    """A file of ``models/diffusion_models`` chosen as Wan 2.2 A14B's low-noise expert (``low_noise_model_name``)."""
    return model_file_path("diffusion_models", name, "low_noise_model_name",
                           "copy the low-noise expert there (wan2.2_t2v_low_noise_14B_fp16.safetensors)")


def sd1_tokenizer_folder() -> str:
    """The SD1.5 CLIP tokenizer ComfyUI ships (``comfy/sd1_tokenizer``), for single-file checkpoints."""
    return os.path.join(os.path.dirname(comfy.utils.__file__), "sd1_tokenizer")


def diffusers_model_path(name: str) -> str:
    """The folder of a model listed by :func:`list_diffusers_models` (raises InputError naming ``model_name``)."""
    roots = [root for root in folder_paths.get_folder_paths("diffusers") if os.path.isdir(root)]
    error = InputError("model_name", "no models/diffusers folder exists; create it and put a diffusers text-to-video "
                                "model folder there")
    for root in roots:
        try:
            return str(resolve_inside(root, name, "model_name", "models/diffusers", want_folder=True))
        except InputError as err:
            error = err
    raise error


ADAPTER_FOLDER = "motion_adapters"
"""ComfyUI model folder name of motion adapters (``models/motion_adapters``)."""


def register_model_folder(name: str, suffixes: tuple[str, ...]) -> None:
    """Make ``models/<name>`` a ComfyUI model folder listing files with ``suffixes`` (after any paths
    extra_model_paths.yaml or another pack gave it)."""
    folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))
    folder_paths.folder_names_and_paths[name][1].update(suffixes)


def model_file_path(folder: str, name: str, input_name: str, remedy: str) -> str:
    """The full path of ``name`` in the model folder ``folder`` (InputError naming ``input_name``, then ``remedy``)."""
    path = folder_paths.get_full_path(folder, name)
    if path is None:
        raise InputError(input_name, f"{name!r} is not in models/{folder}; {remedy}, then refresh")
    return path


MOTION_LORA_FOLDER = "animatediff_motion_lora"
"""ComfyUI model folder AnimateDiff-Evolved reads motion LoRAs from."""

register_model_folder(ADAPTER_FOLDER, (".safetensors",))
register_model_folder(MOTION_LORA_FOLDER, (".safetensors",))
register_model_folder(MOTION_MODULE_FOLDER, MOTION_MODULE_SUFFIXES)


def list_adapters() -> list[str]:
    return folder_paths.get_filename_list(ADAPTER_FOLDER)


def adapter_path(name: str) -> str:
    return model_file_path(ADAPTER_FOLDER, name, "adapter_name",
                           "save one with Save Motion Adapter or copy a .safetensors adapter file there")


def list_motion_loras() -> list[str]:
    return folder_paths.get_filename_list(MOTION_LORA_FOLDER)


def motion_lora_path(name: str) -> str:
    return model_file_path(MOTION_LORA_FOLDER, name, "lora_name", "export one with Export Motion LoRA or copy an "
                                                                  "AnimateDiff-Evolved motion LoRA there")


LORA_FOLDER = "loras"
"""ComfyUI's own LoRA folder (Load LoRA, LoraLoaderModelOnly)."""


def lora_save_folder() -> str:
    """Where Export Motion LoRA writes a Wan LoRA: the first ``loras`` folder."""
    return folder_paths.get_folder_paths(LORA_FOLDER)[0]


def motion_lora_save_folder() -> str:
    """Where Export Motion LoRA writes: the first ``animatediff_motion_lora`` folder (ADE lists it)."""
    return folder_paths.get_folder_paths(MOTION_LORA_FOLDER)[0]


def list_motion_modules() -> list[str]:
    return folder_paths.get_filename_list(MOTION_MODULE_FOLDER)


def motion_module_path(name: str) -> str:
    return model_file_path(MOTION_MODULE_FOLDER, name, "motion_module",
                           "copy an AnimateDiff motion module there (mm_sd_v15_v2, v3_sd15_mm, AnimateLCM…)")


def adapter_save_folder() -> str:
    """Where Save Motion Adapter writes: the first ``motion_adapters`` folder."""
    return folder_paths.get_folder_paths(ADAPTER_FOLDER)[0]
