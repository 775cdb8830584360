"""The UNet3D family computes what it computed before the backbone seam: every adapter kind trained
with every base loss, inversion (with and without an adapter), the noise strategies, generation with
a stack of all three kinds, a saved and reloaded adapter, and decoding — on the tiny model, against
numbers recorded from the code at commit dd76c1c (``tests/support/seam_outputs.py``)."""

import json
import math

import pytest

from support.seam_outputs import RECORDED, compute

RELATIVE = 1e-4
"""Allowed drift relative to the magnitude of a summary: float32 rounding, not a change of method.

Every formula is as it was, but the SMA terms' estimate ``x_t - sqrt(1-abar)·eps_hat`` is now formed
by the sampling object before the loss instead of inside it, so autograd adds the VMC and SMA
gradients of the prediction in another order (checked: the SMA inputs and their gradients are
bit-identical alone; the first step's loss is identical, the second differs in the 7th digit).
Three AdamW steps at lr 1e-2 turn that into up to 2.6e-5 of a LoRA tensor's magnitude; all else
agrees to 1e-5. A change of method moves these sums by far more.
"""


@pytest.fixture(scope="module")
def now():
    return compute()


def close(recorded, computed, scale):
    return abs(recorded - computed) <= RELATIVE * max(scale, 1.0)


def flatten(value, prefix=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}/{key}")
    else:
        yield prefix, value


def test_every_recorded_output_is_unchanged(now):
    recorded = json.loads(RECORDED.read_text())
    assert sorted(now) == sorted(recorded)
    differing = []
    for name, values in flatten(recorded):
        computed = dict(flatten(now))[name]
        assert len(computed) == len(values), name
        scale = max(abs(v) for v in values)
        if not all(close(r, c, scale) for r, c in zip(values, computed)):
            differing.append(f"{name}: recorded {values}, now {computed}")
    assert not differing, "\n".join(differing[:10])


def test_the_recording_covers_every_kind_objective_and_step(now):
    trained = {name.split("/")[1] for name in now if name.startswith("train/")}
    assert trained == {"temporal_attention", "lora", "motion_embeddings"}
    assert {"invert", "invert/lora", "generate", "generate/stack", "generate/loaded", "decode"} <= set(now)
    assert all(math.isfinite(loss) for name, losses in now.items() if name.endswith("/loss") for loss in losses)
