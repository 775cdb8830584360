"""The progress callback every long loop of the library accepts."""

from collections.abc import Callable

Progress = Callable[[int, "int | None"], None]
"""``progress(done, total)`` after each unit of work (total None when unknown). Whatever it raises
(ComfyUI's interrupt, Ctrl-C in the command line) cancels the loop and propagates."""
