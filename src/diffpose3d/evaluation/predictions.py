"""Predictions files (docs/PREDICTIONS.md): `positions_3d[subject][action]` -> one `(T, [N,] J, 3)`
array per camera, optional `units`, read and keyed by the sequences they predict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from diffpose3d.data.base import PoseSequence, require_dict
from diffpose3d.errors import InputFileError
from diffpose3d.evaluation.tables import PredictionKey
from diffpose3d.io.unpickle import load_pickled_npz

UNIT_SCALE = {"m": 1.0, "mm": 0.001}

FileKey = tuple[str, str, int]


def _pose_array(value: Any, path: str | Path, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float32)  # float32 keeps a whole test set in memory
    except (TypeError, ValueError):
        raise InputFileError(path, f"{where}: not a numeric array") from None
    if arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise InputFileError(path, f"{where}: expected (T, J, 3) or (T, N, J, 3), got {arr.shape}")
    if arr.ndim == 4 and arr.shape[1] == 1:  # one hypothesis per frame is a point prediction
        arr = arr[:, 0]
    return arr


def _units(path: str | Path) -> str:
    """The optional `units` entry ("m" unless given)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return str(data["units"]) if "units" in data.files else "m"
    except ValueError:
        raise InputFileError(path, "units must be a plain string array ('m' or 'mm')") from None


def predictions_from_file(path: str | Path) -> dict[FileKey, np.ndarray]:
    """Read a predictions npz: `{(subject key, action key, camera): (T, [N,] J, 3) metres}`."""
    raw = require_dict(load_pickled_npz(path, "positions_3d"), path, "positions_3d")
    units = _units(path)
    if units not in UNIT_SCALE:
        raise InputFileError(path, f"units must be 'm' or 'mm', got {units!r}")
    scale = UNIT_SCALE[units]
    out: dict[FileKey, np.ndarray] = {}
    for subject, actions in raw.items():
        require_dict(actions, path, f"positions_3d[{subject!r}]")
        for action, cameras in actions.items():
            where = f"positions_3d[{subject!r}][{action!r}]"
            if not isinstance(cameras, (list, tuple)):
                raise InputFileError(path, f"{where} should be a list with one array per camera")
            for cam, value in enumerate(cameras):
                if value is not None:
                    out[(str(subject), str(action), cam)] = _pose_array(value, path, f"{where}[{cam}]") * scale
    if not out:
        raise InputFileError(path, "positions_3d holds no predictions")
    return out


def match_predictions(
    predictions: Mapping[FileKey, np.ndarray], sequences: Sequence[PoseSequence]
) -> dict[PredictionKey, np.ndarray]:
    """Re-key file predictions by `PoseSequence.key`; a "Split/Subject" file key wins over "Subject"."""
    matched: dict[PredictionKey, np.ndarray] = {}
    for seq in sequences:
        candidates = [(seq.subject, seq.name, seq.camera_index)]
        if seq.split:
            candidates.insert(0, (f"{seq.split}/{seq.subject}", seq.name, seq.camera_index))
        for key in candidates:
            if key in predictions:
                matched[seq.key] = predictions[key]
                break
    return matched
