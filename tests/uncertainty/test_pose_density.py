"""The pose density: training-like poses score as familiar, scrambled ones do not; missing joints
are marginalised; the evidence's own noise is allowed for."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpose3d.evidence.mixture2d import broad_mixture, point_mixture
from diffpose3d.uncertainty.pose_density import PoseDensity, PoseFeatures, fit_pose_density, pose_features

J = 17


def _poses(n: int, seed: int) -> torch.Tensor:
    """(n, J, 2) uv poses: a fixed body shape moved along a few smooth modes, placed and sized at random."""
    rng = np.random.default_rng(0)
    base = rng.normal(scale=0.3, size=(J, 2))
    modes = rng.normal(scale=0.08, size=(3, J, 2))
    r = np.random.default_rng(seed)
    shape = base + np.einsum("nm,mjc->njc", r.normal(size=(n, 3)), modes) + r.normal(scale=0.005, size=(n, J, 2))
    place = r.uniform(-0.5, 0.5, size=(n, 1, 2))
    size = r.uniform(0.3, 1.0, size=(n, 1, 1))
    return torch.as_tensor(place + size * shape, dtype=torch.float32)


def _features(uv: torch.Tensor, std: float = 0.004) -> PoseFeatures:
    return pose_features(uv, point_mixture(uv, std))


@pytest.fixture(scope="module")
def density() -> PoseDensity:
    train = _features(_poses(3000, 1))
    return fit_pose_density("h36m17", train.points, _features(_poses(300, 2)), dims=8, components=3)


def test_training_like_poses_are_denser_than_scrambled_ones(density):
    held = _poses(300, 3)
    scrambled = held[:, torch.randperm(J, generator=torch.Generator().manual_seed(0))]
    typical, odd = density.score(_features(held)), density.score(_features(scrambled))
    assert np.all(np.isfinite(typical)) and np.all(np.isfinite(odd))
    assert np.median(typical) < density.reference[1] < np.median(odd)
    assert np.mean(odd > np.quantile(typical, 0.99)) > 0.95


def test_missing_joints_are_marginalised_and_noise_is_allowed_for(density):
    uv = _poses(200, 4)
    gmm = point_mixture(uv, 0.004)
    missing = torch.zeros(200, J, dtype=torch.bool)
    missing[:, 9] = True
    gmm = gmm.where(missing, broad_mixture((200, J), 0.75, 1))
    wild = uv.clone()
    wild[:, 9] += 5.0  # a joint without evidence may lie anywhere: it does not count
    a, b = density.score(pose_features(uv, gmm)), density.score(pose_features(wild, gmm))
    assert pose_features(uv, gmm).present[:, 9].sum() == 0
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b)
    noisy = uv + 0.03 * torch.randn(uv.shape, generator=torch.Generator().manual_seed(1))
    told = density.score(pose_features(noisy, point_mixture(noisy, 0.03)))
    untold = density.score(pose_features(noisy, point_mixture(noisy, 0.004)))
    assert np.median(told) < np.median(untold)


def test_arrays_round_trip_and_bad_ones_are_refused(density):
    again = PoseDensity.from_arrays(density.to_arrays())
    feats = _features(_poses(20, 5))
    np.testing.assert_allclose(again.score(feats), density.score(feats))
    bad = density.to_arrays()
    bad["means"] = bad["means"][:, :-1]
    with pytest.raises(ValueError, match="inconsistent"):
        PoseDensity.from_arrays(bad)
    del bad["basis"]
    with pytest.raises(ValueError, match="missing"):
        PoseDensity.from_arrays(bad)
