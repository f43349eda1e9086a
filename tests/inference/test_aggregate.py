import numpy as np
import torch

from diffpose3d.inference.aggregate import aggregate, weak_perspective_residual
from diffpose3d.metrics import hypothesis_covariance, hypothesis_spread, spread_from_covariance


def test_mean_and_median():
    h = torch.tensor([[[[0.0, 0, 0]], [[1.0, 1, 1]], [[5.0, 5, 5]]]])  # (1, 3, 1, 3)
    assert torch.allclose(aggregate(h, "mean"), torch.full((1, 1, 3), 2.0))
    assert torch.allclose(aggregate(h, "median"), torch.full((1, 1, 3), 1.0))


def test_reprojection_picks_per_joint_the_hypothesis_that_reprojects_best():
    torch.manual_seed(0)
    truth = torch.randn(1, 6, 3)
    uv = 0.5 * truth[..., :2] + torch.tensor([0.1, -0.2])  # a weak-perspective view of the truth
    bad = truth.clone()
    bad[:, 2, :2] += 0.7  # hypothesis 1 is wrong at joint 2 only
    other = truth.clone()
    other[:, 4, :2] -= 0.7  # hypothesis 0 is wrong at joint 4 only
    hyps = torch.stack([other, bad], dim=1)  # (1, 2, 6, 3)
    out = aggregate(hyps, "reprojection", uv)
    assert torch.allclose(out[0, 2], other[0, 2]) and torch.allclose(out[0, 4], bad[0, 4])
    assert weak_perspective_residual(truth, uv).max() < 1e-5


def test_covariance_matches_numpy_cov_and_spread_is_rms_std():
    h = np.random.default_rng(1).normal(size=(2, 7, 4, 3))
    cov = hypothesis_covariance(h)
    assert np.allclose(cov[1, 3], np.cov(h[1, :, 3].T))
    spread = spread_from_covariance(cov)
    assert np.allclose(spread, np.sqrt(cov.diagonal(axis1=-2, axis2=-1).mean(-1)))
    assert np.allclose(hypothesis_spread(h), spread)
    assert np.allclose(hypothesis_covariance(h[:, :1]), 0.0)
