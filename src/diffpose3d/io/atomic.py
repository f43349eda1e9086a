"""Atomic file writes: write a temporary file in the target folder, then ``os.replace`` it.

A reader never sees a half-written file, and a failed write leaves the previous file untouched.
Every write goes through `check_output_file` first (and again just before the rename): an
output path that exists and is not a regular file (a folder, a link, a device such as
/dev/null, a FIFO or a socket) is refused in one line, never replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from diffpose3d.errors import OutputFileError


def file_kind(mode: int) -> str:
    """What a `st_mode` is, in words ("a regular file", "a folder", "a symbolic link", ...)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_output_file(path: str | Path) -> Path:
    """`path` if nothing is there or a regular file (not a link to one) is; else `OutputFileError`.

    The one rule every file the tool writes or replaces obeys: what would be replaced is a
    regular file in the output target, so a write can never destroy a device node, a folder or
    what a link points to."""
    p = Path(path)
    try:
        mode = os.lstat(p).st_mode
    except FileNotFoundError:
        return p
    except OSError as exc:
        raise OutputFileError(p, f"cannot write ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise OutputFileError(p, f"exists and is {file_kind(mode)}: refusing to replace it (choose another path)")
    return p


def current_umask() -> int:
    """The process's umask (read without changing it for good)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; it replaces ``path`` only if the block succeeds."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_write needs a write mode ('w' or 'wb'), got {mode!r}")
    target = check_output_file(path)
    if not target.name:
        raise OutputFileError(target, "names a folder, not a file")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputFileError(target, f"cannot write ({exc.strerror or exc})") from None
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the usual permissions
        check_output_file(target)  # again: something may have appeared there while we wrote
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_npz_atomic(path: str | Path, /, **arrays: Any) -> None:
    """``np.savez_compressed`` to exactly ``path`` (no ``.npz`` suffix appended), atomically."""
    with atomic_write(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def save_json_atomic(path: str | Path, obj: Any, indent: int = 2) -> None:
    with atomic_write(path, "w") as handle:
        json.dump(obj, handle, indent=indent)
        handle.write("\n")


def save_text_atomic(path: str | Path, text: str) -> None:
    with atomic_write(path, "w") as handle:
        handle.write(text)
