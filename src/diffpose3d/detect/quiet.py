"""Keep a native library's log lines (MediaPipe, TFLite, absl: written by C++ straight to file
descriptor 2, from worker threads) off the terminal, unless the user asked for them (`--verbose`).

Environment variables do not reach absl's C++ logging once it is compiled in, so the process's
stderr descriptor is pointed at /dev/null while a native call runs, and restored after it (Python
exceptions raised inside still reach the user: they are printed after the restore).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_verbose = False


def set_verbose(verbose: bool) -> None:
    """Show (True) or hide (False, the default) native log lines from now on."""
    global _verbose
    _verbose = bool(verbose)


def is_verbose() -> bool:
    return _verbose


@contextmanager
def native_logs_silenced() -> Iterator[None]:
    """Within the block, whatever native code writes to stderr is discarded (not when verbose)."""
    if _verbose:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2 (an embedded interpreter): nothing to hide
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
