"""The toy model's own training script (``python -m motion_core.toy.train_model``) run for a couple of
steps: a model folder exactly as the script writes one, in seconds; its videos are noise."""

from pathlib import Path

from motion_core.toy import train_model

BRIEFLY = ["--vae-steps", "2", "--steps", "2"]


def train_briefly(folder: Path) -> Path:
    """Train into ``folder`` (which must not exist yet) with the script's default seed; return it."""
    assert train_model.main(["--out", str(folder), *BRIEFLY]) == 0
    return folder
