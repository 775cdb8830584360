"""What the UNet3D family computes on the tiny model, as numbers that a refactoring must not change.

:func:`measure` runs the pipeline's public steps (train every adapter kind with every base loss,
invert, generate with a stack, load a saved adapter) on the tiny random model and summarises each
tensor by a few sums. ``tests/unit/data/unet3d_outputs.json`` holds these numbers as the code
computed them *before* the backbone seam (commit dd76c1c); ``test_seam_unchanged.py`` recomputes
them. Re-record only for an intended change of results::

    python tests/support/seam_outputs.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

RECORDED = Path(__file__).resolve().parents[1] / "unit" / "data" / "unet3d_outputs.json"

OBJECTIVES = {
    "mse": {"base_loss": "mse", "sma_global_weight": 0.0, "sma_local_weight": 0.0},
    "vmc+sma": {"x0_estimate": "scaled"},  # the default when these numbers were recorded
    "vmc+sma_released": {"x0_estimate": "released"},
    "motion_director": {"base_loss": "motion_director", "sma_global_weight": 0.0, "sma_local_weight": 0.0},
}
KINDS = {
    "temporal_attention": {},
    "lora": {"spatial": True, "spatial_skip_probability": 0.0},
    "motion_embeddings": {"blocks": "all"},
}


def summary(tensor: torch.Tensor) -> list[float]:
    """``[sum, sum of |x|, sum of x·(position mod 7 + 1)]`` in float64: changes with any value or order."""
    flat = tensor.detach().double().flatten().cpu()
    weights = (torch.arange(flat.numel()) % 7 + 1).double()
    return [float(flat.sum()), float(flat.abs().sum()), float((flat * weights).sum())]


def measure(folder: Path) -> dict[str, object]:
    from motion_core import pipeline
    from motion_core.adapters import AdapterUse, load_adapter, save_adapter
    from motion_core.backbones import ModelOptions, load_backbone
    from motion_core.objectives import ObjectiveSpec
    from motion_core.testing import moving_square_frames

    backbone = load_backbone(folder, ModelOptions(dtype="fp32", device="cpu"))
    reference, _ = pipeline.encode_reference(backbone, moving_square_frames(8, 32, 32))
    out: dict[str, object] = {"reference": summary(reference.samples)}
    adapters = {}
    for kind, options in KINDS.items():
        for name, spec in OBJECTIVES.items():
            result = pipeline.train_adapter(backbone, reference, "a red square moving right",
                                            ObjectiveSpec(**spec), kind, steps=3, lr=1e-2, seed=1,
                                            adapter_options=options)
            out[f"train/{kind}/{name}/loss"] = [step["total"] for step in result.history]
            out[f"train/{kind}/{name}/tensors"] = {key: summary(value)
                                                   for key, value in sorted(result.adapter.to_tensors().items())}
            adapters[kind] = result.adapter
    inverted = pipeline.invert_reference(backbone, reference, steps=4)
    out["invert"] = summary(inverted.samples)
    inverted_with = pipeline.invert_reference(backbone, reference, steps=4, adapters=[(adapters["lora"], 0.7)])
    out["invert/lora"] = summary(inverted_with.samples)
    for strategy in ("direct", "blend", "freeinit"):
        out[f"noise/{strategy}"] = summary(pipeline.make_noise(inverted, strategy, seed=2).samples)
    noise = pipeline.make_noise(inverted, "blend", seed=2)
    out["generate"] = summary(pipeline.generate(backbone, noise, "a blue circle", steps=4, cfg=7.5).samples)
    stack = [AdapterUse(adapters["temporal_attention"], 0.8),
             AdapterUse(adapters["lora"], 1.0, {"parts": "temporal+spatial"}),
             AdapterUse(adapters["motion_embeddings"], 1.0, {"debias": "object"})]
    out["generate/stack"] = summary(pipeline.generate(backbone, noise, "a blue circle", "blurry", steps=4, cfg=7.5,
                                                      adapters=stack).samples)
    saved = save_adapter(adapters["motion_embeddings"], folder.parent / "embeddings.safetensors")
    loaded = load_adapter(saved)
    out["generate/loaded"] = summary(pipeline.generate(backbone, noise, "a blue circle", steps=3, cfg=1.0,
                                                       adapters=[AdapterUse(loaded, 1.0, {"debias": "none"})]).samples)
    out["decode"] = summary(pipeline.decode(backbone, pipeline.VideoLatents(reference.samples, backbone.fingerprint)))
    return out


def compute() -> dict[str, object]:
    import tempfile

    from motion_core.testing import write_tiny_text_to_video_folder

    with tempfile.TemporaryDirectory() as tmp:
        torch.set_num_threads(1)  # summation order, and so the last digits, do not depend on the cores
        return measure(write_tiny_text_to_video_folder(Path(tmp) / "tiny"))


if __name__ == "__main__":
    values = compute()
    if "--write" in sys.argv:
        RECORDED.parent.mkdir(parents=True, exist_ok=True)
        RECORDED.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
        print(f"wrote {RECORDED}")
    else:
        print(json.dumps(values, indent=1, sort_keys=True)[:3000])
