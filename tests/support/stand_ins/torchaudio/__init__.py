"""Import-only stand-in for torchaudio inside the test host (see ../README.md).

ComfyUI 0.33 imports torchaudio at start-up (``comfy/ldm/lightricks/vae/audio_vae.py``, the audio
nodes); the registry's torchaudio does not load against the CPU torch the tests use.
"""

from mtx_import_stand_in import install, module_getattr

__version__ = "0.0.0+stand-in"
install(__name__)
__getattr__ = module_getattr(__name__)
