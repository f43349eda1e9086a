"""The out-of-domain model: the score -> factor map widens where the error outgrows the spread,
keeps typical frames calibrated, and its file round-trips (bad ones are refused)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpose3d.inference.lifting import FramePredictions, widened
from diffpose3d.uncertainty.fit import CalibrationFrames, fit_from_frames
from diffpose3d.uncertainty.ood import MIN_FACTOR, OutOfDomain
from diffpose3d.uncertainty.pose_density import REFERENCE_LEVELS, PoseDensity


def _density() -> PoseDensity:
    d, k = 4, 2
    return PoseDensity("h36m17", np.zeros(34), np.eye(34)[:, :d], 0.01, np.full(k, 0.5), np.zeros((k, d)),
                       np.stack([np.eye(d)] * k), np.zeros(len(REFERENCE_LEVELS)))


def _set(name: str, n: int, shift: float, seed: int) -> CalibrationFrames:
    """Frames whose density signal grows with `shift` and whose errors outgrow the spread with it."""
    rng = np.random.default_rng(seed)
    density = rng.normal(size=n) + shift
    noise = rng.normal(size=n)
    growth = np.exp(0.5 * np.clip(density, 0, None))
    ratio = np.abs(rng.normal(size=(n, 16))) / 1.645 * growth[:, None]  # ~90 % <= 1 in-domain
    return CalibrationFrames(name, density, noise, rng.normal(size=n), ratio)


def test_factor_grows_with_the_score_and_lifts_shifted_coverage():
    sets = [_set("in-domain", 3000, 0.0, 0), _set("shift", 1500, 2.5, 1)]
    ood, record = fit_from_frames(_density(), sets, bins=12)
    assert np.all(np.diff(ood.factors) >= 0) and ood.factors.min() >= MIN_FACTOR
    assert ood.weights[0] > ood.weights[1]  # the density signal tracks the error here, disagreement is noise
    shifted = record["sets"]["shift"]
    assert shifted["coverage_90_after"] > shifted["coverage_90_before"] + 0.1
    assert 0.85 <= record["sets"]["in-domain"]["coverage_90_after"] <= 0.95
    assert ood.warn_at > 0


def test_a_calibration_sized_for_new_subjects_is_only_ever_widened():
    from diffpose3d.uncertainty.fit import widening_floor

    assert widening_floor({"level": 0.9}) == MIN_FACTOR and widening_floor({"new_subjects": {}}) == 1.0
    # in-domain errors half the spread's ball: a free map would narrow the typical frame to 0.7
    home = _set("in-domain", 3000, 0.0, 0)
    home.ratio *= 0.5
    sets = [home, _set("shift", 1500, 2.5, 1)]
    free, _ = fit_from_frames(_density(), sets, bins=12)
    floored, record = fit_from_frames(_density(), sets, bins=12, floor=1.0)
    assert free.factors.min() < 1.0 and floored.factors.min() == 1.0 and record["floor"] == 1.0
    assert record["sets"]["shift"]["coverage_90_after"] > record["sets"]["shift"]["coverage_90_before"]


def test_file_round_trip_and_refusal(tmp_path):
    ood, _ = fit_from_frames(_density(), [_set("in-domain", 800, 0.0, 2), _set("shift", 400, 2.0, 3)], bins=6)
    path = ood.save(tmp_path)
    again = OutOfDomain.load(path)
    np.testing.assert_allclose(again.factors, ood.factors)
    np.testing.assert_allclose(again.density.covariances, ood.density.covariances)
    arrays = ood.to_arrays()
    arrays["factors"] = arrays["factors"] * np.nan
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="non-finite"):
        OutOfDomain.load(tmp_path / "bad.npz")
    ood.miss_tolerance["h36m16"] = np.linspace(0.0, 0.1, 17)
    np.testing.assert_allclose(OutOfDomain.load(ood.save(tmp_path)).miss_tolerance["h36m16"], np.linspace(0.0, 0.1, 17))
    arrays = ood.to_arrays()
    arrays["miss_tolerance_h36m16"] = -arrays["miss_tolerance_h36m16"]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="miss_tolerance_h36m16"):
        OutOfDomain.load(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="readable"):
        OutOfDomain.load(tmp_path / "junk.npz")


def test_widened_scales_the_spread_around_the_mean():
    rng = np.random.default_rng(0)
    hyps = rng.normal(size=(3, 5, 17, 3))
    from diffpose3d.metrics import hypothesis_covariance, spread_from_covariance

    cov = hypothesis_covariance(hyps)
    pred = FramePredictions(hyps.mean(1), hyps, cov, spread_from_covariance(cov), hyps.mean(1))
    out = widened(pred, np.array([1.0, 2.0, 0.5]))
    np.testing.assert_allclose(out.hypotheses.mean(1), hyps.mean(1), atol=1e-12)
    np.testing.assert_allclose(out.spread, pred.spread * np.array([1.0, 2.0, 0.5])[:, None])
    np.testing.assert_allclose(spread_from_covariance(hypothesis_covariance(out.hypotheses)), out.spread)


def test_widened_with_the_skeleton_keeps_bones_and_reports_the_spread_it_made():
    from diffpose3d.evaluation.calibration import keep_bones
    from diffpose3d.metrics import hypothesis_covariance, spread_from_covariance
    from diffpose3d.skeleton import get_skeleton

    parents = get_skeleton("h36m17").parents
    hyps = np.random.default_rng(1).normal(scale=0.1, size=(3, 8, 17, 3))
    cov = hypothesis_covariance(hyps)
    pred = FramePredictions(hyps.mean(1), hyps, cov, spread_from_covariance(cov), hyps.mean(1))
    factor = np.array([1.0, 2.0, 3.0])
    out = widened(pred, factor, parents)
    linear = widened(pred, factor).hypotheses
    expected = keep_bones(torch.from_numpy(linear), torch.from_numpy(hyps), parents).numpy()
    np.testing.assert_allclose(out.hypotheses, expected)
    np.testing.assert_allclose(out.spread, spread_from_covariance(hypothesis_covariance(out.hypotheses)))
    np.testing.assert_allclose(out.pose, pred.pose)
    np.testing.assert_allclose(out.hypotheses[0], hyps[0], atol=1e-12)  # a factor of 1 moves nothing
