"""Errors raised for bad user input.

Every message names the offending input and says what would be valid, so that the same text reads
well on ComfyUI's error dialog, in an API client's ``execution_error`` and on a terminal.
"""

from __future__ import annotations


class MotionTransferError(Exception):
    """Base class of every error this library raises on purpose."""


class InputError(MotionTransferError, ValueError):
    """An input (file, option, tensor) that cannot be used as given.

    Attributes:
        input_name: the user-facing name of the input (a node input or a CLI option).
        detail: the message without the input's name.
    """

    def __init__(self, input_name: str, message: str):
        super().__init__(f"{input_name}: {message}")
        self.input_name, self.detail = input_name, message

    def renamed(self, names: dict[str, str], other: str | None = None) -> InputError:
        """The same error naming the input as a front end calls it (``names[input_name]``, else
        ``other``, else unchanged), e.g. a library input name as a command-line flag."""
        return InputError(names.get(self.input_name, other or self.input_name), self.detail)
