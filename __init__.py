"""ComfyUI entry point of the motion transfer pack: registers the nodes and the web directory,
nothing else.

The node modules (which import ComfyUI) load when ComfyUI calls the entry point, so importing this
package outside ComfyUI (test collection, packaging tools) has no side effects. The web directory
holds no JavaScript, only the node help pages: ComfyUI serves it at ``/extensions/<pack folder>/``
and its frontend shows ``docs/<node id>.md`` from there as a node's help.
"""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    from .nodes import MotionTransferExtension

    return MotionTransferExtension()
