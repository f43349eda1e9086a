import torch

from diffpose3d.aggregate import aggregate, hypothesis_covariance, joint_spread, weak_perspective_residual


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


def test_covariance_matches_torch_cov_and_spread_is_rms_std():
    torch.manual_seed(1)
    h = torch.randn(2, 7, 4, 3)
    cov = hypothesis_covariance(h)
    ref = torch.cov(h[1, :, 3].T)
    assert torch.allclose(cov[1, 3], ref, atol=1e-6)
    assert torch.allclose(joint_spread(cov), (cov.diagonal(dim1=-2, dim2=-1).mean(-1)).sqrt())
