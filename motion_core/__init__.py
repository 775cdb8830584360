"""One-shot video motion transfer: the library behind the ComfyUI nodes.

Pure PyTorch / diffusers / PyAV; nothing here imports ComfyUI, so the same code runs headless.
"""

__version__ = "0.1.0"
