"""ComfyUI entry point of the motion transfer pack: registers the nodes, nothing else.

The node modules (which import ComfyUI) load when ComfyUI calls the entry point, so importing this
package outside ComfyUI (test collection, packaging tools) has no side effects.
"""


async def comfy_entrypoint():
    from .nodes import MotionTransferExtension

    return MotionTransferExtension()
