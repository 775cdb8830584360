"""Resolving user-supplied file names inside an allowed folder.

File names arrive from the canvas, from the HTTP API and from the command line; only the canvas
restricts them to a list. Everything that opens a user's file goes through :func:`resolve_inside`,
so that ``../secret`` or ``/etc/passwd`` sent through the API never reaches a decoder.
"""

import os
from pathlib import Path

from .errors import InputError


def resolve_inside(root: str | os.PathLike, name: str, input_name: str, folder_label: str | None = None,
                   want_folder: bool = False) -> Path:
    """Return ``root / name`` after checking that it stays inside ``root`` and exists as a file
    (a folder with ``want_folder``).

    ``folder_label`` names the folder in messages ("the input folder"), so that a server does not
    show its own paths to API clients; by default the path itself is shown.

    The check is lexical (like ComfyUI's own folders): ``..`` components and absolute paths are
    refused; a symbolic link the user placed inside ``root`` is followed as they intended.

    Raises:
        InputError: naming ``input_name`` when the name is empty, absolute, escapes ``root`` or
            does not name an existing file.
    """
    where = folder_label or str(root)
    if not isinstance(name, str) or not name.strip():
        raise InputError(input_name, f"no file given; choose a file from {where}")
    if os.path.isabs(name) or Path(name).drive:
        raise InputError(input_name, f"{name!r} is an absolute path; give a name relative to {where}")
    normalized = os.path.normpath(name)
    if normalized == os.pardir or normalized.startswith(os.pardir + os.sep):
        raise InputError(input_name, f"{name!r} points outside {where}; only files inside it can be used")
    path = Path(root) / normalized
    if want_folder and not path.is_dir():
        hint = "it is a file" if path.is_file() else "no such folder"
        raise InputError(input_name, f"{name!r} not found in {where} ({hint})")
    if not want_folder and not path.is_file():
        hint = "it is a folder" if path.is_dir() else "no such file"
        raise InputError(input_name, f"{name!r} not found in {where} ({hint})")
    return path
