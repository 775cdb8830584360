"""Helpers shared by the test tiers (clip writers, the ComfyUI host harness)."""
