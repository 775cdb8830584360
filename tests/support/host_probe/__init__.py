"""A test-only custom-node folder the harness puts beside the pack in its ComfyUI: it shows the host
tests ComfyUI's memory manager from outside. Never shipped, never part of the pack.

It records every ``comfy.model_management.load_models_gpu`` call (the node running, the patched
models' classes, ``memory_required``, ``force_full_load``) and answers ``GET /mtx_probe/memory``
with them and ComfyUI's loaded-model list; ``POST /mtx_probe/forget`` clears the record.
"""

import comfy.model_management
from aiohttp import web
from server import PromptServer

NODE_CLASS_MAPPINGS = {}  # a custom-node folder without nodes, which ComfyUI loads without complaint

REQUESTS: list[dict] = []
_load_models_gpu = comfy.model_management.load_models_gpu


def _recording_load_models_gpu(models, memory_required=0, *args, **kwargs):
    REQUESTS.append({"node": PromptServer.instance.last_node_id,
                     "models": [type(getattr(patcher, "model", None)).__name__ for patcher in models],
                     "memory_required": memory_required, "force_full_load": kwargs.get("force_full_load", False)})
    return _load_models_gpu(models, memory_required, *args, **kwargs)


comfy.model_management.load_models_gpu = _recording_load_models_gpu


@PromptServer.instance.routes.get("/mtx_probe/memory")
async def memory(request):
    loaded = [{"model": type(entry.model.model).__name__, "device": str(entry.device),
               "size": entry.model.model_size(), "loaded": entry.model.loaded_size()}
              for entry in comfy.model_management.current_loaded_models if entry.model is not None]
    return web.json_response({"loaded": loaded, "requests": REQUESTS})


@PromptServer.instance.routes.post("/mtx_probe/forget")
async def forget(request):
    REQUESTS.clear()
    return web.json_response({})
