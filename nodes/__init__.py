"""ComfyUI nodes of the pack: thin adapters from the canvas to :mod:`motion_core`.

Node ids, input names and input order are a public interface (saved workflows refer to them):
add inputs at the end, never rename or drop one.
"""

from ._comfy import ComfyExtension, io
from . import objectives, video

NODE_CLASSES: list[type[io.ComfyNode]] = [*video.NODES, *objectives.NODES]


class MotionTransferExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODE_CLASSES)
