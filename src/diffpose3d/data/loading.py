"""Read a dataset by name, or the sequences a config's `data` section names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffpose3d.config import Config
from diffpose3d.data.base import PoseSequence
from diffpose3d.errors import ConfigError


def load_dataset(name: str, data_3d: str | Path | None, data_2d: str | Path | None = None,
                 **filters: Any) -> list[PoseSequence]:
    """Read ``name`` ("h36m", "humaneva", "3dhp" or "custom") with the reader's keyword filters.

    For "3dhp" ``data_3d`` is the train or test file (it holds 2D and 3D); for "custom" the keypoint
    file is ``data_2d`` (or ``data_3d`` when only one path is given) and the result is one sequence.
    """
    if name == "h36m":
        from diffpose3d.data.h36m import load_h36m

        return load_h36m(data_3d, data_2d, **filters)
    if name == "humaneva":
        from diffpose3d.data.humaneva import load_humaneva

        return load_humaneva(data_3d, data_2d, **filters)
    if name == "3dhp":
        from diffpose3d.data.mpi3dhp import load_3dhp

        if data_3d is None or data_2d is not None:
            raise ValueError("3dhp takes one file (data_train_3dhp.npz or data_test_3dhp.npz) as data_3d")
        return load_3dhp(data_3d, **filters)
    if name == "custom":
        from diffpose3d.data.keypoints import load_keypoints

        path = data_2d if data_2d is not None else data_3d
        if path is None:
            raise ValueError("custom needs a keypoint file")
        return [load_keypoints(path, **filters)]
    raise ValueError(f"unknown dataset {name!r}; expected h36m, humaneva, 3dhp or custom")


def load_sequences(config: Config, *, subjects: list[str] | None, split: str | None) -> list[PoseSequence]:
    """The sequences of `config.data`'s dataset (of `subjects` and, for HumanEva-I, `split`), with
    `evidence.gmm_file`'s mixtures attached when `evidence.source` is gmm_file (before any split or
    stride, so the file's frames line up)."""
    d = config.data
    if not d.data_3d:
        raise ConfigError("data.data_3d is not set (the dataset's 3D file; see configs/)")
    if d.dataset not in ("humaneva", "h36m", "3dhp"):
        raise ConfigError(f"data.dataset '{d.dataset}' is not one of humaneva, h36m, 3dhp")
    filters: dict[str, Any] = {}
    if d.dataset != "3dhp":
        filters = {"subjects": subjects or None, "actions": d.actions or None}
    if d.dataset == "humaneva":
        filters.update(split=split, cameras_file=d.cameras_file or None)
    seqs = load_dataset(d.dataset, d.data_3d, None if d.dataset == "3dhp" else d.data_2d or None, **filters)
    e = config.evidence
    if e.source != "gmm_file":
        return seqs
    if not e.gmm_file:
        raise ConfigError("evidence.source is gmm_file but evidence.gmm_file is not set (an authors'-layout *_gmm.npz)")
    from diffpose3d.data.gmm_files import attach_gmm

    return attach_gmm(seqs, e.gmm_file)
