"""Output paths, checked before any work starts: one rule for every command that writes.

A path whose folder cannot be created or written, a file where a folder is wanted (or the
reverse), and an existing result without ``overwrite`` are refused with one line naming the
fix. Missing parent folders are fine: the writers create them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from interp.errors import InterpError


class OutputError(InterpError, ValueError):
    """An output path that cannot or may not be written."""


def check_output(path: str | Path, kind: str, *, overwrite: bool = False, option: str = "--out",
                 suffix: str | None = None) -> Path:
    """Check that ``path`` (``kind`` "file" or "dir") can be written; return it, with
    ``suffix`` (e.g. ".png") appended when it has none.

    An existing file, or a folder with files in it, is refused unless ``overwrite``.
    """
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', not {kind!r}")
    path = Path(path).expanduser()
    try:
        return _check(path, kind, overwrite, option, suffix)
    except PermissionError as e:  # a folder on the way that may not be searched
        raise OutputError(f"{option} {path}: {e.strerror} ({e.filename}); choose a writable "
                          "path") from None


def _check(path: Path, kind: str, overwrite: bool, option: str, suffix: str | None) -> Path:
    if suffix is not None and path.suffix.lower() != suffix:
        if path.suffix:
            raise OutputError(f"{option} {path}: give a {suffix} file name (e.g. "
                              f"{path.with_suffix(suffix)})")
        path = path.with_name(path.name + suffix)
    if path.exists():
        if kind == "file" and path.is_dir():
            raise OutputError(f"{option} {path} is a folder; give a file name")
        if kind == "dir" and not path.is_dir():
            raise OutputError(f"{option} {path} is a file; give a folder")
        if not overwrite and (kind == "file" or any(path.iterdir())):
            what = "already exists" if kind == "file" else "already holds files"
            raise OutputError(f"{option} {path} {what}; pass --overwrite to replace "
                              f"{'it' if kind == 'file' else 'them'}, or choose another path")
    folder = path if kind == "dir" else path.parent
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise OutputError(f"{option} {path}: {existing} is a file, not a folder; choose "
                          "another path")
    try:  # the real test: permissions, read-only file systems, ACLs
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as e:
        raise OutputError(f"{option} {path}: cannot write in {existing} ({e.strerror}); "
                          "choose a writable path") from None
    if kind == "file" and path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{option} {path} is read-only; choose another path")
    return path
