"""A toy world in which motion transfer can be measured on a CPU.

Modules:
    world: procedural clips of one coloured shape on a dark background, moving along a named motion
        ("left", "zoom in", "circle", ...) or a random smooth path, with a caption and the ground-truth
        centres and sizes of every frame.
    tracker: measures a clip (reference or generated): per-frame centre and size, the object's colour
        and shape, the name of its dominant motion, and the motion fidelity between two tracks.

Pure numpy (``world.to_image_tensor`` imports torch only when called); nothing here imports ComfyUI.
"""
