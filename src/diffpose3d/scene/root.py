"""The camera-frame translation of a root-relative 3D pose that best explains its 2D keypoints.

Given joints `X_j` relative to the root (metres, camera axes) and their pixels `p_j` seen through a
pinhole camera (focal `f`, centre `c`), the root `t` satisfies, for every joint with normalised image
coordinates `(x_j, y_j) = (p_j - c) / f`:

    X_j + t_x = x_j (Z_j + t_z),    Y_j + t_y = y_j (Z_j + t_z)

which is linear in `t`: a weighted least-squares problem with a 3x3 normal matrix (the full
perspective translation; weights are the joints' confidences, missing joints weigh 0). Its solution
minimises the algebraic error; a few Gauss-Newton steps then minimise the reprojection error itself.
Everything is batched over leading dimensions (frames, hypotheses).
"""

from __future__ import annotations

import numpy as np

MIN_JOINTS = 4  # fewer joints with 2D evidence than this: no root (NaN)
REFINE_STEPS = 3


def normalised_points(keypoints_px: np.ndarray, focal_px: float, center: tuple[float, float]) -> np.ndarray:
    """Pixels (..., 2) -> normalised image coordinates (p - c) / f."""
    return (np.asarray(keypoints_px, np.float64) - np.asarray(center, np.float64)) / float(focal_px)


def _linear(pose: np.ndarray, xy: np.ndarray, w: np.ndarray) -> np.ndarray:
    X, Y, Z = pose[..., 0], pose[..., 1], pose[..., 2]
    x, y = xy[..., 0], xy[..., 1]
    a = np.zeros(pose.shape[:-2] + (3, 3))
    a[..., 0, 0] = a[..., 1, 1] = w.sum(-1)
    a[..., 0, 2] = a[..., 2, 0] = -(w * x).sum(-1)
    a[..., 1, 2] = a[..., 2, 1] = -(w * y).sum(-1)
    a[..., 2, 2] = (w * (x * x + y * y)).sum(-1)
    bx, by = x * Z - X, y * Z - Y
    b = np.stack([(w * bx).sum(-1), (w * by).sum(-1), -(w * (x * bx + y * by)).sum(-1)], -1)
    return _solve(a, b)


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ok = np.isfinite(a).all((-1, -2)) & np.isfinite(b).all(-1)
    a = np.where(ok[..., None, None], a, np.eye(3))
    ok &= np.linalg.cond(a) < 1e12
    a, b = np.where(ok[..., None, None], a, np.eye(3)), np.where(ok[..., None], b, 0.0)
    return np.where(ok[..., None], np.linalg.solve(a, b[..., None])[..., 0], np.nan)


def _refine(pose: np.ndarray, xy: np.ndarray, w: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Gauss-Newton steps on the weighted reprojection error (kept only where every joint stays
    in front of the camera)."""
    for _ in range(REFINE_STEPS):
        P = pose + t[..., None, :]
        z = P[..., 2]
        front = ((z > 1e-6) | (w <= 0)).all(-1) & np.isfinite(t).all(-1)
        z = np.where((w > 0) & (z > 1e-6), z, 1.0)
        r = np.concatenate([P[..., 0] / z - xy[..., 0], P[..., 1] / z - xy[..., 1]], -1)  # (..., 2J)
        jac = np.zeros(r.shape + (3,))
        J = pose.shape[-2]
        jac[..., :J, 0] = 1.0 / z
        jac[..., :J, 2] = -P[..., 0] / z**2
        jac[..., J:, 1] = 1.0 / z
        jac[..., J:, 2] = -P[..., 1] / z**2
        ww = np.concatenate([w, w], -1)
        a = np.einsum("...ki,...k,...kj->...ij", jac, ww, jac)
        g = np.einsum("...ki,...k,...k->...i", jac, ww, np.nan_to_num(r))
        step = _solve(a, -g)
        t = np.where((front & np.isfinite(step).all(-1))[..., None], t + step, t)
    return t


def solve_root(pose: np.ndarray, keypoints_px: np.ndarray, weights: np.ndarray, focal_px: float,
               center: tuple[float, float]) -> np.ndarray:
    """The root translation (..., 3) in metres of root-relative poses `pose (..., J, 3)` whose joints
    are seen at `keypoints_px (..., J, 2)` with `weights (..., J)` (0: not seen). `pose` may carry
    extra leading axes over the 2D (hypotheses: `(R, N, J, 3)` with 2D `(R, 1, J, 2)`). NaN where
    fewer than `MIN_JOINTS` joints are seen, or the fit puts a seen joint behind the camera."""
    pose = np.asarray(pose, np.float64)
    xy = np.broadcast_to(normalised_points(keypoints_px, focal_px, center), pose.shape[:-1] + (2,))
    w = np.broadcast_to(np.asarray(weights, np.float64), pose.shape[:-1])
    finite = np.isfinite(pose).all(-1) & np.isfinite(xy).all(-1)
    w = np.where(finite & np.isfinite(w), np.clip(w, 0.0, None), 0.0)
    pose, xy = np.where(finite[..., None], pose, 0.0), np.where(finite[..., None], xy, 0.0)
    t = _refine(pose, xy, w, _linear(pose, xy, w))
    enough = (w > 0).sum(-1) >= MIN_JOINTS
    in_front = ((pose[..., 2] + t[..., None, 2] > 0) | (w <= 0)).all(-1)  # else no camera saw it
    return np.where((enough & in_front)[..., None] & np.isfinite(t).all(-1, keepdims=True), t, np.nan)
