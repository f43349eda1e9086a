"""Depth priors and the assembled H_K: shapes, closed-form moments, and real HumanEva depths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffpose3d.diffusion.hk import fit_depth_gmm, hk_from_mixtures, xyz_mixture
from diffpose3d.mixtures.gmm import GaussianMixture


def _uv_mixture(b: int, j: int, m: int, seed: int = 0) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(b, j, m, generator=g) + 0.1
    mu = torch.rand(b, j, m, 2, generator=g) * 2 - 1
    var = torch.rand(b, j, m, 2, generator=g) * 0.01 + 1e-3
    return GaussianMixture(w / w.sum(-1, keepdim=True), mu, torch.diag_embed(var))


def test_context_hk_is_the_exact_product() -> None:
    b, j = 6, 5
    uv = _uv_mixture(b, j, 3)
    xyz = torch.randn(b, j, 3)
    std = torch.rand(j, 3) * 0.1 + 0.01
    hk = hk_from_mixtures(uv, xyz_mixture(xyz, std), num_components=5)
    assert hk.weights.shape == (b, j, 5) and hk.means.shape == (b, j, 5, 5) and hk.covariances.shape == (b, j, 5, 5, 5)
    torch.testing.assert_close(hk.mean()[..., :2], uv.mean())
    torch.testing.assert_close(hk.mean()[..., 2:], xyz)
    cov = hk.covariance()
    torch.testing.assert_close(cov[..., :2, :2], uv.covariance())
    torch.testing.assert_close(cov[..., 2:, 2:], torch.diag_embed(std**2).expand(b, j, 3, 3))
    assert (hk.covariances[..., :2, 2:] == 0).all()  # independent blocks per component
    torch.testing.assert_close(cov[..., :2, 2:], torch.zeros(b, j, 2, 3), atol=1e-6, rtol=0)
    assert (hk.weights[..., 3:] == 0).all()  # padded


def test_dataset_depth_hk_is_refitted_and_keeps_the_moments() -> None:
    b, j = 8, 3
    uv = _uv_mixture(b, j, 3, seed=1)
    xyz = torch.randn(b, j, 3) * 0.2
    std = torch.full((j, 3), 0.05)
    depth = GaussianMixture(torch.tensor([[0.5, 0.5]]).expand(j, 2), torch.tensor([[[-0.3], [0.3]]]).expand(j, 2, 1),
                            torch.full((j, 2, 1, 1), 0.01))
    hk = hk_from_mixtures(uv, xyz_mixture(xyz, std, depth), num_components=5, num_samples=4000)  # 6 > 5: refit
    assert hk.means.shape == (b, j, 5, 5)
    exact_mean = torch.cat([uv.mean(), xyz[..., :2], torch.zeros(b, j, 1)], -1)
    torch.testing.assert_close(hk.mean(), exact_mean, atol=0.03, rtol=0)
    var = hk.covariance().diagonal(dim1=-2, dim2=-1)
    torch.testing.assert_close(var[..., 4], torch.full((b, j), 0.09 + 0.01), rtol=0.1, atol=0)
    s = hk.sample(7, torch.Generator().manual_seed(0))
    assert s.shape == (b, j, 7, 5) and torch.isfinite(s).all()


def test_dataset_depth_prior_gives_z_from_the_training_depths() -> None:
    gt = torch.randn(500, 4, 3) * 0.2
    depth = fit_depth_gmm(gt, 3)
    mix = xyz_mixture(torch.zeros(2, 4, 3), torch.full((4, 3), 0.01), depth)
    assert mix.means.shape == (2, 4, 3, 3)
    torch.testing.assert_close(mix.covariances[..., 0, 0], torch.full((2, 4, 3), 1e-4), rtol=1e-3, atol=3e-5)
    torch.testing.assert_close(mix.mean()[..., 2], depth.mean()[:, 0].expand(2, 4))


def test_depth_prior_is_sensible_on_real_humaneva(humaneva_dir: Path) -> None:
    from diffpose3d.data.humaneva import load_humaneva

    seqs = load_humaneva(humaneva_dir / "data_3d_humaneva15_train.npz", humaneva_dir / "data_2d_humaneva15_gt_train.npz")
    rel = torch.as_tensor(np.concatenate([s.pose_3d_root_relative() for s in seqs]), dtype=torch.float32)
    depth = fit_depth_gmm(rel, 5)
    assert depth.means.shape == (15, 5, 1)
    mean, sd = depth.mean()[:, 0], depth.covariance()[:, 0, 0].sqrt()
    z = rel[..., 2]
    torch.testing.assert_close(mean, z.mean(0), atol=0.01, rtol=0)  # EM keeps the first moment
    torch.testing.assert_close(sd[1:], z.std(0)[1:], rtol=0.05, atol=0)
    assert float(sd[0]) < 0.01  # the root is at depth 0 by construction
    assert (sd[1:] > 0.02).all() and (sd < 0.6).all()  # body-sized depth spread, metres
    # a GMM explains real depths better than one Gaussian per joint
    x = z.T.unsqueeze(-1)[:, ::7]
    gauss = GaussianMixture(torch.ones(15, 1), z.mean(0)[:, None, None], z.var(0)[:, None, None, None])
    assert (depth.log_prob(x).mean(-1)[1:] > gauss.log_prob(x).mean(-1)[1:]).all()
