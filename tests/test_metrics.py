"""Metrics against transforms with known answers and independent implementations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

from diffpose3d import metrics


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _poses(rng: np.random.Generator, frames: int = 8, joints: int = 17) -> np.ndarray:
    return rng.normal(scale=300.0, size=(frames, joints, 3))


def test_mpjpe_of_constant_offset_is_its_length(rng):
    target = _poses(rng)
    offset = np.array([30.0, -40.0, 120.0])
    assert metrics.mpjpe(target + offset, target) == pytest.approx(130.0)
    per_frame = metrics.mpjpe(target + offset, target, per_frame=True)
    assert per_frame.shape == (8,)
    np.testing.assert_allclose(per_frame, 130.0)


def test_p_mpjpe_of_similarity_transform_is_zero(rng):
    target = _poses(rng)
    rotations = Rotation.random(8, random_state=1).as_matrix()
    scales = rng.uniform(0.5, 2.0, size=(8, 1, 1))
    shifts = rng.normal(size=(8, 1, 3)) * 1000
    pred = scales * np.einsum("tjk,tlk->tjl", target, rotations) + shifts
    assert metrics.mpjpe(pred, target) > 100
    assert metrics.p_mpjpe(pred, target) == pytest.approx(0.0, abs=1e-8)


def test_p_mpjpe_never_uses_a_reflection(rng):
    target = _poses(rng, frames=4)
    mirrored = target * np.array([-1.0, 1.0, 1.0])
    assert metrics.p_mpjpe(mirrored, target) > 1.0


def _brute_force_p_mpjpe(pred: np.ndarray, target: np.ndarray) -> float:
    """Least-squares similarity fit of one pose by numerical minimisation, then its MPJPE."""

    def error(params: np.ndarray) -> float:
        rot = Rotation.from_rotvec(params[:3]).as_matrix()
        aligned = np.exp(params[3]) * pred @ rot.T + params[4:]
        return float(np.mean(np.linalg.norm(aligned - target, axis=-1) ** 2))

    best = np.inf
    start_rng = np.random.default_rng(5)
    for _ in range(6):
        start = np.concatenate([start_rng.normal(size=3), [0.0], target.mean(0) - pred.mean(0)])
        result = minimize(error, start, method="BFGS", options={"gtol": 1e-10, "maxiter": 2000})
        if result.fun < best:
            best, params = result.fun, result.x
    rot = Rotation.from_rotvec(params[:3]).as_matrix()
    aligned = np.exp(params[3]) * pred @ rot.T + params[4:]
    return float(np.mean(np.linalg.norm(aligned - target, axis=-1)))


def test_p_mpjpe_matches_numerical_optimum(rng):
    target = _poses(rng, frames=3, joints=10) / 1000.0
    pred = target + rng.normal(scale=0.05, size=target.shape)
    pred = pred @ Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix().T * 1.3
    ours = metrics.p_mpjpe(pred, target, per_frame=True)
    for f in range(3):
        assert ours[f] == pytest.approx(_brute_force_p_mpjpe(pred[f], target[f]), rel=1e-4)


def test_n_mpjpe_of_scaled_pose_is_zero(rng):
    target = _poses(rng)
    assert metrics.n_mpjpe(target * 0.7, target) == pytest.approx(0.0, abs=1e-9)
    assert metrics.mpjpe(target * 0.7, target) > 10


def test_mpjve_ignores_constant_offset(rng):
    target = _poses(rng, frames=20)
    assert metrics.mpjve(target + np.array([5.0, 6.0, 7.0]), target) == pytest.approx(0.0, abs=1e-9)
    drift = target + np.arange(20)[:, None, None] * np.array([3.0, 4.0, 0.0])
    assert metrics.mpjve(drift, target) == pytest.approx(5.0)
    assert metrics.mpjve(drift, target, per_frame=True).shape == (19,)


def test_pck_and_auc_hand_computed():
    target = np.zeros((1, 4, 3))
    pred = np.zeros((1, 4, 3))
    pred[0, :, 0] = [0.0, 50.0, 100.0, 200.0]
    assert metrics.pck(pred, target) == pytest.approx(0.75)
    assert metrics.pck(pred, target, threshold=100.0) == pytest.approx(0.5)  # strictly below
    # thresholds 0, 5, ..., 150: joint 0 counts from 5 (30 of 31), joint 1 from 55 (20),
    # joint 2 from 105 (10), joint 3 never.
    assert metrics.auc(pred, target) == pytest.approx((30 + 20 + 10) / (4 * 31))
    np.testing.assert_allclose(metrics.auc_thresholds()[:3], [0.0, 5.0, 10.0])


def test_best_of_n_picks_the_minimum(rng):
    target = _poses(rng, frames=5)
    offsets = np.array([50.0, 10.0, 30.0])
    hyps = target[:, None] + offsets[None, :, None, None] * np.array([1.0, 0.0, 0.0])
    assert metrics.best_of_n(hyps, target) == pytest.approx(10.0)
    np.testing.assert_allclose(metrics.best_of_n(hyps, target, per_frame=True), 10.0)
    assert metrics.best_of_n(hyps, target, metric="p_mpjpe") == pytest.approx(0.0, abs=1e-8)


def test_coverage_of_exact_gaussian_is_nominal(rng):
    frames, n, joints = 400, 200, 8
    mean = rng.normal(size=(frames, 1, joints, 3))
    a = rng.normal(size=(joints, 3, 3)) * 0.1
    cov_chol = a + 0.05 * np.eye(3)
    noise = rng.normal(size=(frames, n + 1, joints, 3))
    samples = mean + np.einsum("jab,tnjb->tnja", cov_chol, noise)
    hyps, truth = samples[:, :n], samples[:, n]
    result = metrics.coverage(hyps, truth)
    for level, value in result.items():
        assert value == pytest.approx(level, abs=0.02)


@pytest.mark.parametrize("n", [5, 10])
def test_coverage_of_few_exact_gaussian_draws_is_nominal(rng, n):
    # the truth and the N hypotheses are draws of one Gaussian: the prediction region must hold the
    # truth at the nominal rate even though mean and covariance come from only N draws
    frames, joints = 4000, 5
    a = rng.normal(size=(joints, 3, 3)) * 0.1 + 0.05 * np.eye(3)
    centre = rng.normal(size=(frames, 1, joints, 3))  # drawn before the noise: keeps the seeded stream
    samples = centre + np.einsum("jab,tnjb->tnja", a, rng.normal(size=(frames, n + 1, joints, 3)))
    result = metrics.coverage(samples[:, :n], samples[:, n])
    for level, value in result.items():
        assert value == pytest.approx(level, abs=0.015)
    # the chi-square ellipsoid (known moments) would call these perfect samples overconfident
    d2 = metrics.mahalanobis_sq(samples[:, :n], samples[:, n])
    assert metrics.coverage_from_mahalanobis(d2, (0.9,))[0.9] < 0.85


def test_prediction_region_radius_limits():
    from scipy import stats

    assert metrics.prediction_region_d2(0.9) == pytest.approx(stats.chi2.ppf(0.9, 3))
    assert metrics.prediction_region_d2(0.9, 3) == pytest.approx(stats.chi2.ppf(0.9, 3))  # N <= D: no F
    assert metrics.prediction_region_d2(0.9, 100_000) == pytest.approx(stats.chi2.ppf(0.9, 3), rel=1e-3)
    assert metrics.prediction_region_d2(0.9, 5) > 3 * stats.chi2.ppf(0.9, 3)


def test_overconfident_hypotheses_under_cover(rng):
    truth = rng.normal(size=(200, 5, 3))
    hyps = truth[:, None] + rng.normal(size=(200, 30, 5, 3)) * 0.2 + rng.normal(size=(200, 1, 5, 3))
    assert metrics.coverage(hyps, truth, levels=(0.9,))[0.9] < 0.5


def test_spread_error_correlation_sign(rng):
    truth = rng.normal(size=(100, 6, 3))
    sigma = rng.uniform(0.01, 1.0, size=(100, 1, 6, 1))
    centre = truth[:, None] + sigma * rng.normal(size=(100, 1, 6, 3))
    hyps = centre + sigma * rng.normal(size=(100, 10, 6, 3))
    assert metrics.spread_error_correlation(hyps, truth) > 0.3
    assert metrics.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(metrics.rank_correlation([1, 1, 1], [1, 2, 3]))


def test_shape_mismatch_raises(rng):
    with pytest.raises(ValueError):
        metrics.mpjpe(np.zeros((3, 17, 3)), np.zeros((3, 16, 3)))
