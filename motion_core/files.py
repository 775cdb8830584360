"""Writing files that nothing else may see half-written, and that never replace an existing file.

Every file the pack writes (adapters, videos, previews) goes through :func:`write_new_file`: the
content is written under a temporary name in the destination folder, then linked to its final
name, which fails if that name exists — also when another process took it meanwhile.
"""

from __future__ import annotations

import glob
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path

from .errors import InputError


def write_new_file(path: str | os.PathLike, write: Callable[[Path], None], input_name: str = "filename") -> Path:
    """Call ``write(temporary_path)``, then give the finished file the name ``path``.

    Raises:
        InputError: naming ``input_name`` if ``path`` exists (before or after writing); nothing is
            left behind, and the existing file is untouched.
    """
    path = Path(path)
    if path.exists():
        raise InputError(input_name, f"{path.name!r} already exists; choose another name (files are never overwritten)")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp{path.suffix}")
    try:
        write(temporary)
        _publish(temporary, path, input_name)
    finally:
        temporary.unlink(missing_ok=True)
    return path


TEMPORARY_EXTRA = len(f"..{uuid.uuid4().hex}.tmp")
"""Bytes the temporary name of :func:`write_new_file` adds to the final name."""


def _check_name_lengths(folder: Path, subfolders: tuple[str, ...], stem: str, suffix: str, input_name: str) -> None:
    """Refuse a subfolder or file name longer than the file system takes (``NAME_MAX``, 255 bytes on
    Linux, macOS and Windows), counting the temporary name the file is first written under."""
    try:
        limit = os.pathconf(folder if folder.is_dir() else folder.parent, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # Windows has no pathconf
        limit = 255
    for name, extra in [*((part, 0) for part in subfolders), (f"{stem}_00001{suffix}", TEMPORARY_EXTRA)]:
        size = len(os.fsencode(name)) + extra
        if size > limit:
            raise InputError(input_name, f"{name[:40]!r}… is too long for a file name ({size} bytes with the "
                                         f"number and temporary part; at most {limit}); shorten it")


def _publish(temporary: Path, path: Path, input_name: str) -> None:
    try:
        os.link(temporary, path)  # atomic, and fails if ``path`` exists
    except FileExistsError:
        raise InputError(input_name, f"{path.name!r} already exists; choose another name") from None
    except OSError:  # a file system without hard links
        if path.exists():
            raise InputError(input_name, f"{path.name!r} already exists; choose another name") from None
        os.replace(temporary, path)


def replace_file(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)``, then swap the finished file in for ``path`` in one step.

    For files a tool keeps up to date and means to replace (a results table, a regenerated
    document): a reader, or a process killed mid-write, sees the old file or the new one, never
    half of one. Files that must never be replaced go through :func:`write_new_file`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_numbered_file(folder: str | os.PathLike, prefix: str, suffix: str, write: Callable[[Path], None],
                        input_name: str = "filename_prefix") -> Path:
    """Write a new file ``<folder>/<prefix>_<00001>.<suffix>`` with the next free number.

    ``prefix`` may contain subfolders (``motions/car``) but may not leave ``folder``. The number
    is one more than the highest already used for this prefix; a name taken concurrently is skipped.
    """
    folder = Path(folder).resolve()
    if "\0" in prefix:  # no file system takes it; os calls would raise a bare ValueError
        raise InputError(input_name, f"{prefix!r} contains a NUL character; use a name without it")
    target = (folder / f"{prefix}_00001{suffix}").resolve()
    if not prefix or folder not in target.parents:
        raise InputError(input_name, f"{prefix!r} is not valid; use a name (optionally with subfolders) that "
                                     "stays inside the output folder")
    stem = target.name[: -len(f"_00001{suffix}")]
    _check_name_lengths(folder, target.relative_to(folder).parent.parts, stem, suffix, input_name)
    pattern = re.compile(rf"{re.escape(stem)}_(\d+){re.escape(suffix)}")
    existing = [int(m.group(1)) for p in target.parent.glob(f"{glob.escape(stem)}_*{suffix}")
                if (m := pattern.fullmatch(p.name))] if target.parent.is_dir() else []
    number = max(existing, default=0) + 1
    for attempt in range(number, number + 100):
        try:
            return write_new_file(target.parent / f"{stem}_{attempt:05d}{suffix}", write, input_name)
        except InputError:
            if not (target.parent / f"{stem}_{attempt:05d}{suffix}").exists():
                raise
    raise InputError(input_name, f"no free file name found for {prefix!r} in 100 tries")

