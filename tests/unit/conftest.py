"""Unit tier: ``motion_core`` on its own, no ComfyUI."""

import pytest

from support.toy_training import train_briefly


@pytest.fixture(scope="session")
def trained_briefly(tmp_path_factory):
    """A toy model folder written by the training script after 2 + 2 steps: its videos are noise, but
    every part of the pipeline runs on it. Trained once per session: the demo's tests and the training
    script's tests only read it."""
    return train_briefly(tmp_path_factory.mktemp("toy") / "model")
