"""The calibration protocol and the conformal scaling against values computed independently."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from diffpose3d.evaluation import calibration as cal


def _draws(frames: int, samples: int, joints: int, sample_scale: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=(frames, 1, joints, 3))
    truth = centre[:, 0] + rng.normal(size=(frames, joints, 3))
    hyps = centre + sample_scale * rng.normal(size=(frames, samples, joints, 3))
    return hyps, truth


def _expected_curve(scale: float) -> np.ndarray:
    """Truth ~ N(c, I), samples ~ N(c, scale^2 I), the median ~ c: the truth's distance is chi(3),
    a sample's scale * chi(3), so the frequency at level q is F(scale * F^-1(q)), F = chi(3)'s CDF."""
    q = cal.QUANTILE_LEVELS
    return stats.chi.cdf(scale * stats.chi.ppf(q, df=3), df=3)


@pytest.mark.parametrize("scale", [1.0, 0.6, 1.6])
def test_the_curve_and_ece_follow_the_closed_form(scale: float) -> None:
    hyps, truth = _draws(1500, 200, 4, scale)
    curve = cal.calibration_curve(hyps, truth)
    expected = _expected_curve(scale)
    np.testing.assert_allclose(curve[1:-1], expected[1:-1], atol=0.04)
    ece, expected_ece = cal.expected_calibration_error(curve), cal.expected_calibration_error(expected)
    assert abs(ece - expected_ece) < 0.02
    if scale == 1.0:
        assert ece < 0.02  # calibrated
    else:
        assert ece > 0.08  # over- and under-dispersed are both caught
    # over-confident samples (too narrow) hold the truth less often than q says, wide ones more often
    if scale < 1.0:
        assert (curve[5:16] < cal.QUANTILE_LEVELS[5:16]).all()
    elif scale > 1.0:
        assert (curve[5:16] > cal.QUANTILE_LEVELS[5:16]).all()


def test_a_subset_of_joints_and_the_median_over_joints() -> None:
    hyps, truth = _draws(800, 100, 3, 1.0, seed=1)
    hyps[:, :, 2] = truth[:, None, 2] + 0.3 * (hyps[:, :, 2] - hyps[:, :1, 2].mean(1, keepdims=True))
    per_joint = cal.quantile_frequencies(hyps, truth)
    np.testing.assert_allclose(cal.calibration_curve(hyps, truth), np.median(per_joint, axis=1))
    np.testing.assert_allclose(cal.calibration_curve(hyps, truth, joints=np.array([2])), per_joint[:, 2])


def test_split_conformal_scaling_covers_new_exchangeable_frames() -> None:
    rng = np.random.default_rng(2)
    true_sd = np.array([0.02, 0.05, 0.1])  # per joint, metres per axis
    model_sd = true_sd / 2.0  # the model's spread is half the truth's: over-confident

    def frames(n: int):
        mean = rng.normal(size=(n, 3, 3))
        truth = mean + true_sd[None, :, None] * rng.normal(size=(n, 3, 3))
        return mean, np.broadcast_to(model_sd, (n, 3)), truth

    scores = cal.nonconformity(*frames(4000))
    scale = cal.conformal_scale(scores, 0.9)
    np.testing.assert_allclose(scale, 2.0, rtol=0.06)  # the factor the spread was off by
    mean, spread, truth = frames(20000)
    assert cal.ball_coverage(mean, spread, truth) < 0.5
    covered = cal.ball_coverage(mean, spread * scale, truth)
    assert 0.88 < covered < 0.92
    with pytest.raises(ValueError):
        cal.conformal_scale(np.zeros((0, 3)))


def test_the_gaussian_ball_holds_its_level() -> None:
    z = np.random.default_rng(3).normal(size=(200_000, 3))
    assert abs(np.mean(np.linalg.norm(z, axis=-1) <= cal.gaussian_ball_radius(0.9)) - 0.9) < 0.005


def test_reliability_diagram_is_a_png(tmp_path) -> None:
    hyps, truth = _draws(50, 20, 2, 1.0)
    path = cal.reliability_diagram(tmp_path / "r.png", {"model": cal.calibration_curve(hyps, truth)}, "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _heavy_tailed(frames: int, samples: int, joints: int, seed: int):
    """Hypotheses ~ N(c, I); truth = c + a Student-t (3 dof) radius along a random direction: errors
    far heavier-tailed than the hypotheses (many joints almost exact, a few far off)."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=(frames, 1, joints, 3))
    hyps = centre + rng.normal(size=(frames, samples, joints, 3))
    direction = rng.normal(size=(frames, joints, 3))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    radius = np.abs(stats.t.rvs(3, size=(frames, joints, 1), random_state=rng))
    return hyps, centre[:, 0] + radius * direction


def test_the_radial_map_calibrates_every_level_of_heavy_tailed_errors() -> None:
    fit_h, fit_t = _heavy_tailed(1500, 200, 3, seed=3)
    test_h, test_t = _heavy_tailed(1500, 200, 3, seed=4)
    before = cal.expected_calibration_error(cal.calibration_curve(test_h, test_t))
    source, target = cal.fit_radial_map(fit_h, fit_t)
    assert source[0] == target[0] == 0.0 and np.all(np.diff(source) > 0) and np.all(np.diff(target) >= 0)
    # the truth's radius in units of the hypotheses' RMS radius (sqrt(3) for N(c, I)) is a scaled |t_3|:
    # from the median up (where the sample mean's own error no longer counts) the map's knots follow
    # its closed-form quantiles at the knots' levels
    levels = np.linspace(0.0, cal.RADIAL_TOP_LEVEL, cal.RADIAL_KNOTS)
    upper = (levels >= 0.5) & (levels < 0.98)
    np.testing.assert_allclose(target[upper], stats.t.ppf(0.5 + levels[upper] / 2, 3) / np.sqrt(3), rtol=0.08)
    mapped = cal.reshape_hypotheses(torch.as_tensor(test_h), torch.as_tensor(np.stack([source, target]))).numpy()
    after = cal.expected_calibration_error(cal.calibration_curve(mapped, test_t))
    assert before > 0.15 and after < 0.035  # the RMS kept: what is left is the t tail's RMS vs the sample's
    np.testing.assert_allclose(mapped.mean(1), test_h.mean(1), atol=1e-12)  # the pose (the mean) is kept


def test_the_radial_map_keeps_the_spread_and_only_its_shape_counts() -> None:
    states = torch.randn(6, 5, 4, 5, dtype=torch.float64)
    np.testing.assert_allclose(cal.reshape_hypotheses(states, cal.identity_radial_map().double()), states, atol=1e-12)
    # a map that doubles every radius (beyond its last knot too) is a pure scale: nothing changes
    line = torch.linspace(0.0, 0.5, 9, dtype=torch.float64)
    np.testing.assert_allclose(cal.reshape_hypotheses(states, torch.stack([line, 2 * line])), states, atol=1e-12)
    # a map that shrinks small radii and stretches large ones reshapes, but keeps mean and RMS radius
    knots = torch.tensor([[0.0, 0.5, 1.0, 2.0], [0.0, 0.2, 0.8, 3.0]], dtype=torch.float64)
    shaped = cal.reshape_hypotheses(states, knots)
    before = cal.hypothesis_radii(states - states.mean(1, keepdim=True))
    after = cal.hypothesis_radii(shaped - shaped.mean(1, keepdim=True))
    np.testing.assert_allclose(shaped.mean(1), states.mean(1), atol=1e-12)
    np.testing.assert_allclose(after[1], before[1], atol=1e-12)
    assert not torch.allclose(after[0], before[0])


def test_the_spread_scale_is_the_ratio_of_error_to_spread() -> None:
    rng = np.random.default_rng(5)
    truth = rng.normal(size=(4000, 5, 3))
    pose = truth + 0.03 * rng.normal(size=truth.shape)  # 3 cm per axis
    covariance = np.broadcast_to((0.01**2) * np.eye(3), (4000, 5, 3, 3))  # the hypotheses say 1 cm
    assert cal.spread_scale(pose, covariance, truth) == pytest.approx(3.0, rel=0.02)
    assert cal.spread_scale(pose, covariance * 1e6, truth) == 0.5  # clamped


def _bodies(frames: int, samples: int, spread: float, seed: int = 4) -> np.ndarray:
    """Root-relative h36m17 hypotheses `(F, N, 17, 3)`: per frame a random pose, per hypothesis its
    joints moved by `spread` metres per axis (so each hypothesis has bones of its own lengths)."""
    from diffpose3d.skeleton import get_skeleton

    rng = np.random.default_rng(seed)
    parents = get_skeleton("h36m17").parents
    pose = np.zeros((frames, 1, 17, 3))
    for j, p in enumerate(parents[1:], start=1):
        pose[:, :, j] = pose[:, :, p] + rng.normal(scale=0.15, size=(frames, 1, 3))
    hyps = pose + spread * rng.normal(size=(frames, samples, 17, 3))
    return hyps - hyps[:, :, :1]


def _bone_lengths(h: np.ndarray) -> np.ndarray:
    from diffpose3d.skeleton import get_skeleton

    parents = list(get_skeleton("h36m17").parents)
    return np.linalg.norm(h[..., 1:, :] - h[..., parents[1:], :], axis=-1)


def test_keep_bones_sets_each_hypothesis_bones_back_and_keeps_the_mean() -> None:
    from diffpose3d.skeleton import get_skeleton

    parents = get_skeleton("h36m17").parents
    h = torch.as_tensor(_bodies(40, 30, 0.02))
    centre = h.mean(1, keepdim=True)
    scale = torch.linspace(1.0, 3.0, 17, dtype=h.dtype)[:, None]
    scaled = centre + scale * (h - centre)
    kept = cal.keep_bones(scaled, h, parents)
    torch.testing.assert_close(kept.mean(1), scaled.mean(1))  # the pose is exactly the scaled one's
    before = np.abs(_bone_lengths(scaled.numpy()) - _bone_lengths(h.numpy()))
    after = np.abs(_bone_lengths(kept.numpy()) - _bone_lengths(h.numpy()))
    # the only change left is the per-joint shift back to the mean: small against the stretching
    assert after.mean() < 0.4 * before.mean() and np.percentile(after, 99) < 0.3 * np.percentile(before, 99)
    spread = lambda x: x.sub(x.mean(1, keepdim=True)).square().sum(-1).mean(1).sqrt()
    # joints scaled 2x or more stay clearly wider than unscaled: the spread is moved into directions, not lost
    assert (spread(kept)[:, 8:] > 1.3 * spread(h)[:, 8:]).float().mean() > 0.95
    torch.testing.assert_close(cal.keep_bones(h, h, parents), h)  # nothing scaled: nothing moves
    # the first D - 3 channels (g's u, v) are passed through
    five = torch.cat([torch.ones_like(scaled[..., :2]), scaled], dim=-1)
    torch.testing.assert_close(cal.keep_bones(five, torch.cat([five[..., :2], h], -1), parents)[..., :2], five[..., :2])
    with pytest.raises(ValueError, match="parents first"):
        cal.keep_bones(scaled, h, [-1, 2, 0] + list(parents[3:]))


def test_the_scale_fitted_through_keep_bones_covers_its_level_and_reproduces_its_scores() -> None:
    from diffpose3d.skeleton import get_skeleton

    parents = get_skeleton("h36m17").parents
    raw = _bodies(3000, 5, 0.01, seed=5)
    rng = np.random.default_rng(6)
    truth = raw.mean(1) + 0.03 * rng.normal(size=(3000, 17, 3))  # the errors 3x the spread
    truth[:, 0] = 0.0
    joints = np.arange(17)
    scale, scores = cal.conformal_scale_keeping_bones(raw, 1.5, truth, joints, parents)
    covered = (scores[:, 1:] <= cal.gaussian_ball_radius()).mean(0)
    np.testing.assert_allclose(covered, 0.9, atol=0.01)  # every joint at its level on the fitted frames
    assert scale[0] == 1.0 and (scale[1:] > 1.0).all()  # wider than the linear answer 3 / 1.5 = 2 needs
    h = torch.as_tensor(raw)
    centre = h.mean(1, keepdim=True)
    kept = cal.keep_bones(centre + torch.as_tensor(1.5 * scale)[:, None] * (h - centre), h, parents).numpy()
    from diffpose3d.metrics import hypothesis_spread

    np.testing.assert_allclose(cal.nonconformity(raw.mean(1), hypothesis_spread(kept), truth), scores)
