"""Import-only stand-in for torchvision.transforms inside the test host (see ../../README.md)."""
