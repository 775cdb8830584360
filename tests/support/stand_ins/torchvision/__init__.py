"""Import-only stand-in for torchvision inside the test host (see ../README.md).

ComfyUI's core imports torchvision at module import time (Stable Cascade, Cosmos, ACE, ...), and
transformers / diffusers import names from it whenever a package of that name can be found.
"""

from mtx_import_stand_in import install, module_getattr

__version__ = "0.0.0+stand-in"
install(__name__)
__getattr__ = module_getattr(__name__)
