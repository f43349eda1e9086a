"""Dataset readers: each returns ``list[PoseSequence]`` (see ``base.PoseSequence`` and docs/DESIGN.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import PoseSequence, load_pickled_npz
from .gmm_files import attach_gmm, read_gmm_file, write_gmm_file
from .h36m import load_h36m
from .humaneva import load_humaneva
from .keypoints import load_keypoints, load_keypoints_json, load_keypoints_npz
from .mpi3dhp import load_3dhp
from .splits import PROTOCOLS, holdout_split, protocol_filters

__all__ = [
    "PROTOCOLS",
    "PoseSequence",
    "attach_gmm",
    "holdout_split",
    "load_3dhp",
    "load_dataset",
    "load_h36m",
    "load_humaneva",
    "load_keypoints",
    "load_keypoints_json",
    "load_keypoints_npz",
    "load_pickled_npz",
    "protocol_filters",
    "read_gmm_file",
    "write_gmm_file",
]


def load_dataset(name: str, data_3d: str | Path | None, data_2d: str | Path | None = None,
                 **filters: Any) -> list[PoseSequence]:
    """Read ``name`` ("h36m", "humaneva", "3dhp" or "custom") with the reader's keyword filters.

    For "3dhp" ``data_3d`` is the train or test file (it holds 2D and 3D); for "custom" the keypoint
    file is ``data_2d`` (or ``data_3d`` when only one path is given) and the result is one sequence.
    """
    if name == "h36m":
        return load_h36m(data_3d, data_2d, **filters)
    if name == "humaneva":
        return load_humaneva(data_3d, data_2d, **filters)
    if name == "3dhp":
        if data_3d is None or data_2d is not None:
            raise ValueError("3dhp takes one file (data_train_3dhp.npz or data_test_3dhp.npz) as data_3d")
        return load_3dhp(data_3d, **filters)
    if name == "custom":
        path = data_2d if data_2d is not None else data_3d
        if path is None:
            raise ValueError("custom needs a keypoint file")
        return [load_keypoints(path, **filters)]
    raise ValueError(f"unknown dataset {name!r}; expected h36m, humaneva, 3dhp or custom")
