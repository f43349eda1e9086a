"""Which inputs already have their result in the output folder, so a rerun does only the rest.

An input's result counts as done when its manifest vouches for every file (`io.results.
complete_result`: sizes and SHA-256, no commit pending), the result was made from this input
(the npz's `meta.source.path`), by the same model with the same inference settings (N, steps,
seed, ...), and it has the render and the page when they are asked for. Anything less is made
again (and replaces what is there).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diffpose3d.batch.records import BatchRecord
from diffpose3d.inference.outputs import json_safe
from diffpose3d.io.results import complete_result, manifest_path

# what np.load raises on a file that is not a readable npz
UNREADABLE = (OSError, KeyError, ValueError, EOFError, TypeError, AttributeError, zipfile.BadZipFile)


@dataclass(frozen=True)
class Expected:
    """What a result must have been made with to be kept."""

    model: str
    inference: dict = field(default_factory=dict)
    render: bool = False
    html: bool = False


def normalised(obj) -> object:
    """`obj` as it reads back from JSON (tuples -> lists, NaN -> None), for comparisons."""
    return json.loads(json.dumps(json_safe(obj)))


class OutputIndex:
    """The results already in an output folder, read on demand (each npz's `meta` once)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._meta: dict[str, dict | None] = {}

    def meta(self, name: str) -> dict | None:
        """Result `name`'s meta (None: no readable npz of that name)."""
        if name not in self._meta:
            self._meta[name] = _npz_meta(self.folder / f"{name}.npz")
        return self._meta[name]

    def owner(self, name: str) -> str | None:
        """The input path result `name` was made from, or None (no such result)."""
        meta = self.meta(name)
        source = (meta or {}).get("source")
        return str(source.get("path")) if isinstance(source, dict) and source.get("path") is not None else None

    def done(self, path: Path, name: str, expected: Expected) -> BatchRecord | None:
        """A `skipped` record when input `path`'s complete result `name` is there, made as
        `expected`; else None."""
        if not manifest_path(self.folder, name).is_file() or self.owner(name) != str(path):
            return None
        meta = self.meta(name) or {}
        if meta.get("model") != expected.model or normalised(meta.get("inference")) != normalised(expected.inference):
            return None
        manifest = complete_result(self.folder, name)
        if manifest is None:
            return None
        files = set(manifest["files"])
        if expected.render and not {f"{name}_render.png", f"{name}_render.mp4"} & files:
            return None
        if expected.html and f"{name}.html" not in files:
            return None
        people = _npz_people(self.folder / f"{name}.npz")
        return BatchRecord(str(path), "skipped", frames=int(meta.get("num_input_frames", 0) or 0), people=people,
                           result=name)


def _npz_meta(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
    except UNREADABLE:
        return None
    return meta if isinstance(meta, dict) else None


def _npz_people(path: Path) -> int:
    try:
        with np.load(path, allow_pickle=False) as f:
            return len(np.unique(f["person_ids"])) if "person_ids" in f else 1
    except UNREADABLE:
        return 0
