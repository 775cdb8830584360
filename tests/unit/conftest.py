"""Unit tier: ``motion_core`` on its own, no ComfyUI."""

import pytest

from support.toy_training import train_briefly


@pytest.fixture(scope="session")
def trained_briefly(tmp_path_factory):
    """A toy model folder written by the training script after 2 + 2 steps: its videos are noise, but
    every part of the pipeline runs on it. Trained once per session: the demo's tests and the training
    script's tests only read it."""
    return train_briefly(tmp_path_factory.mktemp("toy") / "model")


@pytest.fixture(scope="module")
def offline_hub(tmp_path_factory):
    """No hub: offline, with an empty cache, as on a user's machine without internet (for the tests of
    users' single files, which must load with the configs the pack ships); for a whole module, so that
    its module-scoped fixtures load offline too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_HOME", str(tmp_path_factory.mktemp("empty-hub-cache")))
        yield
