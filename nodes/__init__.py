"""ComfyUI nodes of the pack: thin adapters from the canvas to :mod:`motion_core`.

Node ids, input names and input order are a public interface (saved workflows refer to them):
add inputs at the end, never rename or drop one.
"""

from ._comfy import ComfyExtension, io
from . import adapter_files, adapter_options, edit, evaluation, generation, model, objectives, training, video

NODE_CLASSES: list[type[io.ComfyNode]] = [
    *video.NODES, *model.NODES, *objectives.NODES, *adapter_options.NODES, *training.NODES, *generation.NODES,
    *adapter_files.NODES, *evaluation.NODES, *edit.NODES,
]


class MotionTransferExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODE_CLASSES)
