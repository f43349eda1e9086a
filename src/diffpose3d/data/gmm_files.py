"""The DiffPose authors' 2D Gaussian-mixture files (``data_2d_<dataset>_<source>_gmm.npz``).

``positions_2d[subject][action]`` is a list with one array per camera of shape ``(T, J, K, 5)`` holding
``[weight, mean u, mean v, var u, var v]`` per kernel, in pixels (the released files have K = 3 with
weights (1, 0, 0)). ``metadata`` is a dict like the 2D files' one. Files written by ``fit-gmm`` add
``covariance_2d[subject][action]``: per camera ``(T, J, K)``, the x-y covariance the layout drops.

This module is the one codec of that layout: ``decode_gmm`` (rows -> mixture), ``encode_gmm``
(mixture -> rows), ``read_gmm_file`` / ``write_gmm_file``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputFileError
from ..io.atomic import save_npz_atomic
from ..mixtures.gmm import GaussianMixture
from .base import PoseSequence, load_pickled_npz, require_dict

GmmData = dict[str, dict[str, list[np.ndarray]]]
_WEIGHT_TOLERANCE = 1e-3
LAYOUT = "[weight, mean x, mean y, var x, var y] px"


def decode_gmm(rows: np.ndarray) -> GaussianMixture:
    """Rows ``(..., K, 5)`` in the authors' layout (pixels) -> a mixture in pixels: weights
    renormalised, variances floored at 1e-6 px^2, no x-y covariance."""
    g = torch.as_tensor(np.asarray(rows, dtype=np.float32))
    weights = g[..., 0] / g[..., 0].sum(-1, keepdim=True).clamp_min(1e-12)
    var = g[..., 3:5].clamp_min(1e-6)
    return GaussianMixture(weights, g[..., 1:3].clone(), torch.diag_embed(var))


def encode_gmm(gmm: GaussianMixture) -> tuple[np.ndarray, np.ndarray]:
    """A mixture in pixels ``(..., K, 2)`` -> (rows ``(..., K, 5)`` in the authors' layout, the x-y
    covariance ``(..., K)`` that the layout drops), both float32."""
    cov = gmm.covariances
    rows = torch.cat([gmm.weights.unsqueeze(-1), gmm.means, cov[..., 0, 0, None], cov[..., 1, 1, None]], -1)
    return rows.numpy().astype(np.float32), cov[..., 0, 1].numpy().astype(np.float32)


def check_gmm_array(arr: Any, path: str | Path, what: str) -> np.ndarray:
    """Validate one camera's ``(T, J, K, 5)`` mixture array and return it as float32."""
    try:
        a = np.asarray(arr, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        raise InputFileError(path, f"{what}: not a numeric array") from None
    if a.ndim != 4 or a.shape[-1] != 5 or a.shape[2] < 1:
        raise InputFileError(path, f"{what}: expected (T, J, K, 5) [weight, u, v, var u, var v], got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputFileError(path, f"{what}: contains NaN or inf")
    weights = a[..., 0]
    if np.any(weights < 0) or np.any(np.abs(weights.sum(-1) - 1.0) > _WEIGHT_TOLERANCE):
        raise InputFileError(path, f"{what}: kernel weights must be >= 0 and sum to 1 per joint")
    if np.any(a[..., 3:] < 0):
        raise InputFileError(path, f"{what}: negative variance")
    return a


def read_gmm_file(path: str | Path) -> tuple[GmmData, dict]:
    """Return (``positions_2d`` with validated float32 arrays, ``metadata`` or {})."""
    raw = require_dict(load_pickled_npz(path, "positions_2d"), path, "positions_2d")
    meta = load_pickled_npz(path, "metadata", optional=True)
    data: GmmData = {}
    for subject, actions in raw.items():
        data[str(subject)] = {}
        for action, views in require_dict(actions, path, f"subject '{subject}'").items():
            if not isinstance(views, (list, tuple)) or not views:
                raise InputFileError(path, f"'{subject}/{action}': expected a list with one array per camera")
            data[str(subject)][str(action)] = [
                check_gmm_array(v, path, f"'{subject}/{action}' camera {c}") for c, v in enumerate(views)
            ]
    return data, meta if isinstance(meta, dict) else {}


def write_gmm_file(path: str | Path, data: GmmData, metadata: dict | None = None, *,
                   covariance_2d: GmmData | None = None) -> None:
    """Validate and write ``data`` in the authors' layout, atomically; ``covariance_2d`` (per camera
    ``(T, J, K)`` x-y covariances, as ``fit-gmm`` writes) is stored beside it when given."""
    clean = {
        str(s): {str(a): [check_gmm_array(v, path, f"'{s}/{a}' camera {c}") for c, v in enumerate(views)]
                 for a, views in actions.items()}
        for s, actions in data.items()
    }
    extra = {} if covariance_2d is None else {"covariance_2d": np.array(covariance_2d, dtype=object)}
    save_npz_atomic(path, positions_2d=np.array(clean, dtype=object), **extra,
                    metadata=np.array(dict(metadata or {}), dtype=object))


def _file_subject(seq: PoseSequence, data: GmmData) -> str | None:
    for key in (seq.subject, f"{seq.split}/{seq.subject}"):
        if key in data:
            return key
    return None


def attach_gmm(sequences: Iterable[PoseSequence], path: str | Path) -> list[PoseSequence]:
    """Return copies of ``sequences`` with ``gmm_2d`` taken from the file (same frames, same joints)."""
    data, _ = read_gmm_file(path)
    out = []
    for seq in sequences:
        subject = _file_subject(seq, data)
        views = data.get(subject, {}).get(seq.name) if subject is not None else None
        if views is None or seq.camera_index >= len(views):
            raise InputFileError(path, f"no mixture for {seq.subject} '{seq.name}' camera {seq.camera_index}")
        gmm = views[seq.camera_index]
        frames = seq.frame_indices if seq.frame_indices is not None else np.arange(len(seq))
        where = f"{seq.subject} '{seq.name}'"
        if len(frames) and int(frames.max()) >= len(gmm):
            raise InputFileError(path, f"{where}: {len(gmm)} frames, sequence needs {int(frames.max()) + 1}")
        if gmm.shape[1] != seq.num_joints:
            raise InputFileError(path, f"{where}: {gmm.shape[1]} joints, sequence has {seq.num_joints}")
        out.append(replace(seq, gmm_2d=gmm[frames]))
    return out
