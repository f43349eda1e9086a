"""What `batch` runs on: the files, folders and lists of paths a user names, and result names.

A folder stands for the photos, videos and keypoints files directly inside it (not its
subfolders); a list (`@paths.txt`, or any `.txt` named) for the paths it holds, one a line (blank
lines and `#` comments skipped, relative paths from the list's own folder). Files a result in
the folder wrote (named in a manifest beside them) are not inputs, so `--out` may be an input
folder. Inputs are absolute paths, each once, in the order named (a folder's sorted by name).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from diffpose3d.errors import InputFileError
from diffpose3d.inference.inputs import KEYPOINT_SUFFIXES
from diffpose3d.io.images import is_image
from diffpose3d.io.limits import read_bytes_bounded
from diffpose3d.io.video import is_video

LIST_SUFFIX = ".txt"
MAX_LIST_BYTES = 64 << 20
SUMMARY_STEM = "batch-summary"  # the summary files' stem in the output folder: no result takes it


@dataclass(frozen=True)
class BatchInput:
    """One input: its absolute path, and `problem` when it cannot be run (a listed path that is
    missing or of a kind `predict` does not read): it gets a failed record without a worker."""

    path: Path
    problem: str = ""


def is_input_file(path: Path) -> bool:
    """A photo, a video or a keypoints/heatmaps file, by its name."""
    return is_image(path) or is_video(path) or path.suffix.lower() in KEYPOINT_SUFFIXES


def expand_inputs(named: Iterable[str]) -> list[BatchInput]:
    """The inputs of the paths a user named (files, folders, lists). A named path that does not
    exist, an empty folder or an unreadable list raises `InputFileError`; a listed path that is
    missing or not an input becomes a `BatchInput` with its problem."""
    found: dict[Path, BatchInput] = {}
    for text in named:
        is_list = text.startswith("@") or text.lower().endswith(LIST_SUFFIX)
        path = Path(text.removeprefix("@"))
        if not path.exists():
            raise InputFileError(path, "no such file or folder")
        if is_list:
            entries = [_listed(entry) for entry in read_list(path)]
        elif path.is_dir():
            entries = [BatchInput(p) for p in folder_inputs(path)]
            if not entries:
                raise InputFileError(path, "folder holds no photos, videos or keypoints files")
        else:
            entries = [_listed(path.resolve())]
        for entry in entries:
            found.setdefault(entry.path, entry)
    return list(found.values())


def _listed(path: Path) -> BatchInput:
    if not path.exists():
        return BatchInput(path, "no such file")
    if path.is_dir():
        return BatchInput(path, "is a folder (name folders on the command line, or list their files)")
    if not is_input_file(path):
        return BatchInput(path, "unsupported input (a photo, a video, or a .json/.npz keypoints file)")
    return BatchInput(path)


def read_list(path: Path) -> list[Path]:
    """The absolute paths a list file holds."""
    try:
        text = read_bytes_bounded(path, MAX_LIST_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise InputFileError(path, "a list of paths must be UTF-8 text") from None
    base = path.resolve().parent
    lines = (line.strip() for line in text.splitlines())
    return [(base / line).resolve() for line in lines if line and not line.startswith("#")]


def folder_inputs(folder: Path) -> list[Path]:
    """The inputs directly inside `folder`, sorted by name, without the files of results."""
    try:
        files = sorted(p for p in folder.resolve().iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError as exc:
        raise InputFileError(folder, f"cannot list ({exc.strerror or exc})") from None
    written = _result_files(folder.resolve())
    return [p for p in files if is_input_file(p) and p.name not in written]


def _result_files(folder: Path) -> set[str]:
    names: set[str] = set()
    for manifest in folder.glob("*.manifest.json"):
        names.add(manifest.name)
        try:
            names.update(json.loads(manifest.read_text(encoding="utf-8")).get("files", {}))
        except (OSError, ValueError, AttributeError):
            continue
    return names | {f"{SUMMARY_STEM}.json"}


def assign_names(inputs: list[Path], owner: Callable[[str], str | None]) -> dict[Path, str]:
    """Each input's result name: its stem, or stem_suffix (then _2, _3, ...) when an earlier input
    took the stem (as `predict` names a folder's photos), or when a result of that name in the
    output folder belongs to another input (`owner(name)`: the input path a result was made from,
    None when there is none), which is never overwritten."""
    used = {SUMMARY_STEM}
    names: dict[Path, str] = {}
    for path in inputs:
        for name in _candidates(path):
            if name in used:
                continue
            made_from = owner(name)
            if made_from is None or made_from == str(path):
                break
        used.add(name)
        names[path] = name
    return names


def _candidates(path: Path):
    stem, suffix = path.stem, path.suffix.lstrip(".")
    yield stem
    name = f"{stem}_{suffix}" if suffix else stem
    yield name
    n = 2
    while True:
        name = f"{name}_{n}"
        yield name
        n += 1
