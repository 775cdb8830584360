"""ComfyUI entry point of the motion transfer pack: registers the nodes, nothing else."""

from .nodes import MotionTransferExtension


async def comfy_entrypoint() -> MotionTransferExtension:
    return MotionTransferExtension()
