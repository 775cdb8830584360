"""Helpers shared by the test tiers (clip writers, the ComfyUI host harness, the example workflows on
the toy model, a briefly trained toy model); the host harness and workflows also serve benchmarks/."""
