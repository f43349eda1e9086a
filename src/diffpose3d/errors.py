"""Errors that reach the user as one line (the CLI prints them without a traceback)."""

from __future__ import annotations

from pathlib import Path


def one_line(text: str) -> str:
    """`text` with line breaks (from embedded exception messages or array reprs) folded into spaces."""
    return " ".join(str(text).split())


class DiffPoseError(Exception):
    """Base class of every error the CLI reports as a single line with a non-zero exit code."""


class _FileError(DiffPoseError):
    """`path: problem` on one line."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = one_line(problem)
        super().__init__(f"{self.path}: {self.problem}")


class InputFileError(_FileError):
    """A file the user named is missing, unreadable or malformed."""


class OutputFileError(_FileError):
    """A file or folder the user asked to write cannot be written."""


class ConfigError(DiffPoseError):
    """A configuration value is missing or invalid."""
