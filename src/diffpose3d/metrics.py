"""3D pose error and calibration metrics (numpy, vectorised over leading axes).

Poses are arrays `(..., J, 3)`. Every error comes back in the unit of its inputs (the evaluation
layer feeds millimetres); PCK and AUC thresholds are in that unit too, and their defaults (150)
assume millimetres. `per_frame=True` returns one value per pose (the leading axes) instead of the
mean over all of them.

Conventions follow the field's public evaluation code: MPJPE is the mean Euclidean joint error
(protocol #1); P-MPJPE aligns each predicted pose to the truth with a similarity transform
(rotation, uniform scale, translation; a reflection is never allowed: the last singular direction
is flipped when the best orthogonal map has a negative determinant) before measuring (protocol #2);
N-MPJPE aligns the scale only; MPJVE compares velocities (first differences over time).
3DHP PCK counts joints with error strictly below the threshold; AUC averages PCK over 31 thresholds
evenly spaced from 0 to 150 (the MPI-INF-3DHP evaluation script's `0:5:150`; since the 0 threshold
never counts, a perfect prediction scores an AUC of 30/31).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

ArrayLike = np.ndarray

AUC_MAX_THRESHOLD = 150.0
AUC_STEPS = 31
COVERAGE_LEVELS: tuple[float, ...] = (0.5, 0.68, 0.9, 0.95)


def _pair(pred: ArrayLike, target: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as float64 arrays of one shape `(..., J, 3)`."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} differs from target shape {t.shape}")
    if p.ndim < 2 or p.shape[-1] != 3:
        raise ValueError(f"poses must have shape (..., J, 3), got {p.shape}")
    return p, t


def _reduce(per_pose: np.ndarray, per_frame: bool) -> float | np.ndarray:
    return per_pose if per_frame else float(np.mean(per_pose))


def joint_errors(pred: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Euclidean error of every joint, `(..., J)`."""
    p, t = _pair(pred, target)
    return np.linalg.norm(p - t, axis=-1)


def mpjpe(pred: ArrayLike, target: ArrayLike, *, per_frame: bool = False) -> float | np.ndarray:
    """Mean per-joint position error (protocol #1)."""
    return _reduce(joint_errors(pred, target).mean(axis=-1), per_frame)


def procrustes_align(pred: ArrayLike, target: ArrayLike) -> np.ndarray:
    """`pred` mapped onto `target` by the best similarity transform of each pose, `(..., J, 3)`.

    Solves `min ||s * P R + b - T||` per pose with `R` a proper rotation (no reflection).
    """
    p, t = _pair(pred, target)
    mu_p = p.mean(axis=-2, keepdims=True)
    mu_t = t.mean(axis=-2, keepdims=True)
    p0 = p - mu_p
    t0 = t - mu_t
    cross = np.swapaxes(p0, -1, -2) @ t0  # (..., 3, 3)
    u, sv, vt = np.linalg.svd(cross)
    sign = np.sign(np.linalg.det(u @ vt))
    sign = np.where(sign == 0, 1.0, sign)
    u[..., :, -1] *= sign[..., None]
    sv[..., -1] *= sign
    rotation = u @ vt
    norm_p = np.sum(p0**2, axis=(-2, -1))
    scale = np.divide(sv.sum(axis=-1), norm_p, out=np.zeros_like(norm_p), where=norm_p > 0)
    return scale[..., None, None] * (p0 @ rotation) + mu_t


def p_mpjpe(pred: ArrayLike, target: ArrayLike, *, per_frame: bool = False) -> float | np.ndarray:
    """MPJPE after per-pose similarity Procrustes alignment (protocol #2)."""
    return mpjpe(procrustes_align(pred, target), target, per_frame=per_frame)


def n_mpjpe(pred: ArrayLike, target: ArrayLike, *, per_frame: bool = False) -> float | np.ndarray:
    """MPJPE after the least-squares uniform scaling of each predicted pose."""
    p, t = _pair(pred, target)
    norm_p = np.sum(p * p, axis=(-2, -1))
    scale = np.divide(np.sum(p * t, axis=(-2, -1)), norm_p, out=np.ones_like(norm_p), where=norm_p > 0)
    return mpjpe(scale[..., None, None] * p, t, per_frame=per_frame)


def mpjve(
    pred: ArrayLike, target: ArrayLike, *, axis: int = -3, per_frame: bool = False
) -> float | np.ndarray:
    """Mean per-joint velocity error: MPJPE of the first differences along the time `axis`.

    Velocities are per frame step (divide by the frame period for units per second). With
    `per_frame=True` the result has one value per step, i.e. one fewer along `axis`.
    """
    p, t = _pair(pred, target)
    time_axis = axis % p.ndim
    if time_axis >= p.ndim - 2:
        raise ValueError(f"time axis {axis} must precede the joint and coordinate axes")
    if p.shape[time_axis] < 2:
        raise ValueError("MPJVE needs at least two frames")
    return mpjpe(np.diff(p, axis=time_axis), np.diff(t, axis=time_axis), per_frame=per_frame)


def pck(
    pred: ArrayLike, target: ArrayLike, *, threshold: float = 150.0, per_frame: bool = False
) -> float | np.ndarray:
    """Fraction in `[0, 1]` of joints whose error is strictly below `threshold` (3D PCK)."""
    correct = (joint_errors(pred, target) < threshold).mean(axis=-1)
    return _reduce(correct, per_frame)


def auc_thresholds(max_threshold: float = AUC_MAX_THRESHOLD, steps: int = AUC_STEPS) -> np.ndarray:
    """The PCK thresholds the AUC averages over: `steps` values from 0 to `max_threshold`."""
    return np.linspace(0.0, max_threshold, steps)


def auc(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    max_threshold: float = AUC_MAX_THRESHOLD,
    steps: int = AUC_STEPS,
    per_frame: bool = False,
) -> float | np.ndarray:
    """Area under the PCK curve, as a fraction in `[0, 1]`: mean PCK over `auc_thresholds()`."""
    errors = joint_errors(pred, target)
    thresholds = auc_thresholds(max_threshold, steps)
    below = errors[..., None] < thresholds  # (..., J, S)
    return _reduce(below.mean(axis=(-2, -1)), per_frame)


def best_of_n(
    hypotheses: ArrayLike,
    target: ArrayLike,
    *,
    metric: Literal["mpjpe", "p_mpjpe"] = "mpjpe",
    per_frame: bool = False,
) -> float | np.ndarray:
    """Error of the best hypothesis of every frame: `hypotheses (T, N, J, 3)`, `target (T, J, 3)`."""
    h = np.asarray(hypotheses, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if h.ndim != t.ndim + 1:
        raise ValueError(f"hypotheses {h.shape} need one more axis than target {t.shape}")
    functions = {"mpjpe": mpjpe, "p_mpjpe": p_mpjpe}
    if metric not in functions:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(functions)}")
    t_b = np.broadcast_to(np.expand_dims(t, axis=-3), h.shape)
    per_hypothesis = functions[metric](h, t_b, per_frame=True)  # (T, N)
    return _reduce(per_hypothesis.min(axis=-1), per_frame)


def _hypothesis_moments(hypotheses: ArrayLike, truth: ArrayLike) -> tuple[np.ndarray, ...]:
    """Mean `(T, J, 3)`, covariance `(T, J, 3, 3)` over the N axis, and the truth as float64."""
    h = np.asarray(hypotheses, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if h.ndim != 4 or h.shape[-1] != 3 or t.shape != h.shape[:1] + h.shape[2:]:
        raise ValueError(f"need hypotheses (T, N, J, 3) and truth (T, J, 3), got {h.shape} and {t.shape}")
    if h.shape[1] < 2:
        raise ValueError("calibration needs at least two hypotheses per frame")
    return h.mean(axis=1), hypothesis_covariance(h), t


def mahalanobis_sq(hypotheses: ArrayLike, truth: ArrayLike, *, eps: float = 1e-9) -> np.ndarray:
    """Squared Mahalanobis distance `(T, J)` of each true joint from its hypotheses' Gaussian fit.

    The covariance is the unbiased sample covariance of the N hypotheses of that joint, regularised
    by `eps * (trace / 3 + 1)` on the diagonal so that degenerate fits (N <= 3, a fixed root joint)
    stay invertible.
    """
    mean, cov, t = _hypothesis_moments(hypotheses, truth)
    trace = np.trace(cov, axis1=-2, axis2=-1)
    cov = cov + (eps * (trace / 3.0 + 1.0))[..., None, None] * np.eye(3)
    diff = t - mean
    solved = np.linalg.solve(cov, diff[..., None])[..., 0]
    return np.sum(diff * solved, axis=-1)


def prediction_region_d2(level: float, num_hypotheses: int | None = None, dim: int = 3) -> float:
    """Squared Mahalanobis radius of the central prediction region of mass `level` for a new draw,
    when mean and covariance are estimated from `num_hypotheses` draws of the same Gaussian.

    Hotelling: `d^2 N (N - D) / (D (N - 1) (N + 1)) ~ F(D, N - D)`, exact for any N > D; the
    chi-square radius (known moments) when N is None or N <= D. With N = 5 the exact radius is
    about 3x the chi-square one: judging 5 hypotheses by the chi-square ellipsoid calls even perfect
    samples overconfident.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"coverage level must be in (0, 1), got {level}")
    if num_hypotheses is None or num_hypotheses <= dim:
        from scipy import stats  # imported here: scipy.stats costs a second of start-up

        return float(stats.chi2.ppf(level, df=dim))
    n = num_hypotheses
    from scipy import stats

    return float(dim * (n - 1) * (n + 1) / (n * (n - dim)) * stats.f.ppf(level, dim, n - dim))


def coverage_from_mahalanobis(
    squared_distances: ArrayLike, levels: Sequence[float] = COVERAGE_LEVELS, num_hypotheses: int | None = None
) -> dict[float, float]:
    """Fraction of distances inside the prediction region of each level (`prediction_region_d2`)."""
    d2 = np.asarray(squared_distances, dtype=np.float64).ravel()
    if d2.size == 0:
        raise ValueError("no distances to compute coverage from")
    return {float(level): float(np.mean(d2 <= prediction_region_d2(level, num_hypotheses))) for level in levels}


def coverage(
    hypotheses: ArrayLike, truth: ArrayLike, levels: Sequence[float] = COVERAGE_LEVELS
) -> dict[float, float]:
    """Empirical coverage of the hypotheses' per-joint predictive ellipsoids, per nominal level.

    Each joint's N hypotheses are summarised by their sample mean and covariance; the region of mass
    `level` for the truth is the prediction ellipsoid `prediction_region_d2(level, N)`, which accounts
    for estimating both from N draws. The result maps each level to the fraction of (frame, joint)
    truths inside it: hypotheses drawn from the same Gaussian as the truth give values at the levels
    for any N > 3, overconfident ones lower values.
    """
    n = np.asarray(hypotheses).shape[1]
    return coverage_from_mahalanobis(mahalanobis_sq(hypotheses, truth), levels, num_hypotheses=n)


def hypothesis_covariance(hypotheses: ArrayLike) -> np.ndarray:
    """Per-joint sample covariance of the hypotheses: `(..., N, J, 3)` -> `(..., J, 3, 3)` (0 for N = 1)."""
    h = np.asarray(hypotheses)
    dev = h - h.mean(axis=-3, keepdims=True)
    return np.einsum("...nja,...njb->...jab", dev, dev) / max(h.shape[-3] - 1, 1)


def spread_from_covariance(covariance: ArrayLike) -> np.ndarray:
    """The per-joint spread used everywhere: RMS standard deviation `sqrt(trace(Sigma) / 3)`."""
    trace = np.trace(np.asarray(covariance), axis1=-2, axis2=-1) / 3.0
    return np.sqrt(np.clip(trace, 0.0, None))


def hypothesis_spread(hypotheses: ArrayLike) -> np.ndarray:
    """The 3D spread `(T, J)` of hypotheses `(T, N, J, 3)` (see `spread_from_covariance`); the 2D
    spread of the evidence is `GaussianMixture.spread`."""
    h = np.asarray(hypotheses, dtype=np.float64)
    if h.ndim != 4 or h.shape[-1] != 3:
        raise ValueError(f"hypotheses must have shape (T, N, J, 3), got {h.shape}")
    return spread_from_covariance(hypothesis_covariance(h))


def rank_correlation(spread: ArrayLike, error: ArrayLike) -> float:
    """Spearman rank correlation of two equally shaped arrays (flattened); NaN if undefined."""
    s = np.asarray(spread, dtype=np.float64).ravel()
    e = np.asarray(error, dtype=np.float64).ravel()
    if s.shape != e.shape:
        raise ValueError(f"spread {s.shape} and error {e.shape} differ in size")
    if s.size < 2 or np.ptp(s) == 0 or np.ptp(e) == 0:
        return float("nan")
    from scipy import stats

    return float(stats.spearmanr(s, e).statistic)


def spread_error_correlation(hypotheses: ArrayLike, truth: ArrayLike) -> float:
    """Spearman correlation between per-joint spread and the error of the hypotheses' mean.

    Pairs are taken over every (frame, joint); positive values mean the model knows where it errs.
    """
    mean, _, t = _hypothesis_moments(hypotheses, truth)
    return rank_correlation(hypothesis_spread(hypotheses), np.linalg.norm(mean - t, axis=-1))
