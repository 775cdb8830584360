"""Import-only stand-in for torchvision inside the test host (see ../README.md)."""

from . import transforms  # noqa: F401
