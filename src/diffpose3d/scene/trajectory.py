"""Place a result's people in the scene: a root translation per row and per hypothesis (`scene.root`),
smoothed over each person's frames (`scene.smoothing`)."""

from __future__ import annotations

import numpy as np

from diffpose3d.inference.result import PoseResult
from diffpose3d.scene.intrinsics import Intrinsics
from diffpose3d.scene.root import solve_root
from diffpose3d.scene.smoothing import sigma_frames, smooth_track

ROOT_FRAME = ("camera frame, metres: the root joint's position (x right, y down, z forward, the camera at the "
              "origin); a joint's position in the scene is pose_3d + root")


def add_trajectory(result: PoseResult, camera: Intrinsics, fps: float | None = None, smooth: bool = True) -> PoseResult:
    """Set `result.root (R, 3)` and `result.root_hypotheses (R, N, 3)` in place (and the camera in
    `result.meta["camera"]`); returns `result`.

    Each hypothesis gets its own root (their spread is the root's uncertainty, mostly in depth). A
    person seen in several frames has their root smoothed over time, and their hypotheses' roots
    moved with it (the per-frame spread is kept)."""
    weights = np.where(result.missing, 0.0, np.nan_to_num(result.confidence, nan=0.0))
    kp = result.keypoints_2d
    raw = solve_root(result.pose_3d, kp, weights, camera.focal_px, camera.center)
    hyp = solve_root(result.hypotheses, kp[:, None], weights[:, None], camera.focal_px, camera.center)
    root = raw.copy()
    if smooth:
        depth_std = _nanstd(hyp, axis=1)[:, 2] if hyp.shape[1] > 1 else np.zeros(len(raw))
        for pid in result.people:
            rows = np.flatnonzero(result.person_ids == pid)
            if len(rows) > 1:
                root[rows] = smooth_track(result.frame_indices[rows], raw[rows], depth_std[rows], sigma_frames(fps))
    shift = np.where(np.isfinite(raw), root - raw, 0.0)
    result.root = root.astype(np.float32)
    result.root_hypotheses = (hyp + shift[:, None]).astype(np.float32)
    result.meta["camera"] = camera.as_meta()
    result.meta["root_smoothing"] = {"sigma_frames": round(sigma_frames(fps), 3), "fps": fps} if smooth else None
    return result


def root_std(root_hypotheses: np.ndarray) -> np.ndarray:
    """(..., 3) the per-axis standard deviation of the roots of `root_hypotheses (..., N, 3)` (metres)."""
    return _nanstd(root_hypotheses, axis=-2)


def _nanstd(a: np.ndarray, axis: int) -> np.ndarray:
    """Standard deviation over the finite values (NaN where there are none), without warnings."""
    a = np.asarray(a, np.float64)
    ok = np.isfinite(a)
    n = ok.sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, a, 0.0).sum(axis) / n
        var = np.where(ok, (a - np.expand_dims(mean, axis)) ** 2, 0.0).sum(axis) / n
    return np.sqrt(var)
