"""Temporal smoothing of a person's root trajectory in a video.

A root fitted frame by frame jitters in depth (its scale comes from the pose's size, which each
frame estimates anew). Each frame's root is replaced by the value at that frame of a straight line
fitted to its neighbours in time (local linear regression with Gaussian weights: a steady walk is
kept, to the ends of the clip, without lag), every frame weighted by the inverse of its depth
variance across the hypotheses (an uncertain frame pulls less); frames without a root (NaN) get one
from their neighbours when any lie within the kernel. The kernel's width is `SMOOTHING_SECONDS` of the video's frame rate.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d

SMOOTHING_SECONDS = 0.1  # Gaussian sigma
DEFAULT_FPS = 25.0  # frame sequences without a frame rate (photos, keypoints files)
DEPTH_FLOOR_M = 0.05  # added to every frame's depth spread: no frame weighs without bound
REACH_SIGMAS = 3.0


def sigma_frames(fps: float | None) -> float:
    return SMOOTHING_SECONDS * float(fps or DEFAULT_FPS)


def smooth_track(frames: np.ndarray, values: np.ndarray, depth_std: np.ndarray, sigma: float) -> np.ndarray:
    """`values (T, D)` at integer `frames (T,)` (one person, any order, gaps allowed), smoothed;
    `depth_std (T,)` weighs them. Rows with no finite value and no neighbour in reach stay NaN."""
    frames = np.asarray(frames, np.int64)
    values = np.asarray(values, np.float64)
    if len(frames) < 2 or sigma <= 0:
        return values.copy()
    start, span = int(frames.min()), int(frames.max() - frames.min() + 1)
    dense = np.zeros((span, values.shape[1]))
    weight = np.zeros(span)
    ok = np.isfinite(values).all(1)
    std = np.where(np.isfinite(depth_std), depth_std, 0.0)
    w = np.where(ok, 1.0 / (std**2 + DEPTH_FLOOR_M**2), 0.0)
    np.add.at(dense, frames - start, np.where(ok[:, None], values, 0.0) * w[:, None])
    np.add.at(weight, frames - start, w)
    reach = int(np.ceil(REACH_SIGMAS * sigma))
    d = np.arange(-reach, reach + 1, dtype=np.float64)
    k = np.exp(-0.5 * (d / sigma) ** 2)

    def window(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:  # sum over d of kernel(d) * x[i + d]
        return correlate1d(x, kernel, axis=0, mode="constant")

    s0, s1, s2 = window(weight, k), window(weight, k * d), window(weight, k * d * d)
    y0, y1 = window(dense, k), window(dense, k * d)
    det = s0 * s2 - s1 * s1
    with np.errstate(invalid="ignore", divide="ignore"):
        line = (s2[:, None] * y0 - s1[:, None] * y1) / det[:, None]  # a local line's value at the frame
        mean = y0 / s0[:, None]
    smooth = np.where((det > 1e-9 * np.maximum(s0 * s2, 1e-300))[:, None], line, mean)
    smooth[s0 <= 1e-12 * max(float(s0.max()), 1e-300)] = np.nan
    return smooth[frames - start]
