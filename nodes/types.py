"""The pack's socket types (ids carry the pack prefix; saved workflows refer to them)."""

from ._comfy import custom_type, io

VideoInfo = custom_type("VIDEO_INFO")
"""Facts about a loaded reference clip (source file, frame rate, which frames were taken)."""

VideoModel = custom_type("VIDEO_MODEL")
"""A loaded text-to-video model (a ``motion_core.backbones.VideoBackbone``), shared: never changed."""

Latents = custom_type("LATENTS")
"""Video latents of one model (``motion_core.pipeline.VideoLatents``): clean or noise."""

References = custom_type("REFERENCES")
"""More clips of the motion to train on, each with its own prompt: a tuple of ``(VideoLatents, prompt)``
pairs, from Add Training Clip (chainable); never changed once made."""

Adapter = custom_type("ADAPTER")
"""A trained motion (``motion_core.adapters.MotionAdapter``), or a stack of them with strengths and settings
(a tuple of ``motion_core.adapters.AdapterUse``, from Combine Motion Adapters); never changed once made."""

MotionGuidance = custom_type("MOTION_GUIDANCE")
"""FlowMotion's training-free guidance toward a reference clip, for Generate Video
(``motion_core.motion_guidance.MotionGuidance``: the reference latents and the settings); never changed."""

Objective = custom_type("OBJECTIVE")
"""A motion objective spec: the JSON-able dict of ``ObjectiveSpec.to_dict``."""

AdapterOptions = custom_type("ADAPTER_OPTIONS")
"""How Train Motion Adapter builds its adapter: ``{"kind": ..., "options": {...}}`` (the kind's OPTIONS)."""

PoseControlNet = custom_type("POSE_CONTROLNET")
"""A pose ControlNet for an AnimateDiff (SD1.5) model (a diffusers ``ControlNetModel``), shared: never changed."""

EditAdapter = custom_type("EDIT_ADAPTER")
"""Edit-Your-Motion's trained parts for one source clip (``motion_core.edit.adapter.EditAdapter``); never
changed once made."""

PoseKeypoint = io.Custom("POSE_KEYPOINT")
"""comfyui_controlnet_aux's body poses (DWPose / OpenPose nodes): a list of per-frame dicts. Another
pack's type, so it carries no pack prefix: its sockets connect to theirs."""
