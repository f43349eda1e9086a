"""GaussianMixture: densities, samples and moments against scipy / closed forms."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import multivariate_normal

from diffpose3d.mixtures.gmm import (
    GaussianMixture,
    merge_close_components,
    product_mixture,
    robust_cholesky,
    top_components,
)


def _mixture(b: int, m: int, d: int, seed: int = 0) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(b, m, generator=g, dtype=torch.float64) + 0.1
    mu = torch.randn(b, m, d, generator=g, dtype=torch.float64) * 3
    a = torch.randn(b, m, d, d, generator=g, dtype=torch.float64) * 0.5
    cov = a @ a.transpose(-1, -2) + 0.1 * torch.eye(d, dtype=torch.float64)
    return GaussianMixture(w / w.sum(-1, keepdim=True), mu, cov)


def test_log_prob_matches_scipy() -> None:
    gmm = _mixture(3, 4, 3)
    x = torch.randn(3, 7, 3, dtype=torch.float64) * 3
    ours = gmm.log_prob(x).numpy()
    for b in range(3):
        dens = sum(
            float(gmm.weights[b, m])
            * multivariate_normal(gmm.means[b, m].numpy(), gmm.covariances[b, m].numpy()).pdf(x[b].numpy())
            for m in range(4)
        )
        np.testing.assert_allclose(ours[b], np.log(dens), rtol=1e-9)


def test_spread_is_rms_std_of_the_mixture_against_sampled_moments() -> None:
    for d in (2, 3):
        gmm = _mixture(2, 3, d, seed=d)
        s = gmm.sample(100_000, generator=torch.Generator().manual_seed(0))
        rms = torch.stack([torch.cov(s[b].T).trace() / d for b in range(2)]).sqrt()
        np.testing.assert_allclose(gmm.spread(), rms, rtol=0.03)
        np.testing.assert_allclose(gmm.spread().square(), gmm.variance(), rtol=1e-12)
    zero = GaussianMixture(torch.ones(1, 1), torch.zeros(1, 1, 2), torch.zeros(1, 1, 2, 2))
    np.testing.assert_allclose([float(zero.spread()), float(zero.spread(floor=1e-10))], [1e-6, 1e-5], rtol=1e-6)


def test_sample_moments_match_mixture_moments() -> None:
    gmm = _mixture(2, 3, 2, seed=1)
    s = gmm.sample(200_000, generator=torch.Generator().manual_seed(0))
    assert s.shape == (2, 200_000, 2)
    np.testing.assert_allclose(s.mean(1), gmm.mean(), atol=0.03)
    emp = torch.stack([torch.cov(s[b].T) for b in range(2)])
    np.testing.assert_allclose(emp, gmm.covariance(), rtol=0.03, atol=0.03)


def test_zero_weight_components_never_drawn_and_log_prob_finite() -> None:
    gmm = _mixture(1, 3, 2)
    w = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    gmm = GaussianMixture(w, gmm.means, gmm.covariances)
    s = gmm.sample(5000, generator=torch.Generator().manual_seed(0))
    single = GaussianMixture(w[:, :1], gmm.means[:, :1], gmm.covariances[:, :1])
    assert torch.isfinite(gmm.log_prob(s)).all()
    torch.testing.assert_close(gmm.log_prob(s), single.log_prob(s))


def test_product_mixture_is_block_diagonal_and_density_factorises() -> None:
    a, b = _mixture(2, 2, 2, seed=3), _mixture(2, 3, 3, seed=4)
    p = product_mixture(a, b)
    assert p.weights.shape == (2, 6) and p.means.shape == (2, 6, 5) and p.covariances.shape == (2, 6, 5, 5)
    x = torch.randn(2, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(p.log_prob(x), a.log_prob(x[..., :2]) + b.log_prob(x[..., 2:]))


def test_top_components_keeps_heaviest_and_pads() -> None:
    gmm = _mixture(2, 3, 2)
    top = top_components(gmm, 5)
    assert top.weights.shape == (2, 5)
    assert (top.weights[:, 3:] == 0).all()
    torch.testing.assert_close(top.weights.sum(-1), torch.ones(2, dtype=torch.float64))
    assert (top.weights[:, :-1] >= top.weights[:, 1:]).all()


def test_robust_cholesky_survives_singular_and_zero_matrices() -> None:
    cov = torch.stack([torch.zeros(2, 2), torch.tensor([[1.0, 1.0], [1.0, 1.0]]), torch.eye(2)])
    chol = robust_cholesky(cov)
    assert torch.isfinite(chol).all()
    torch.testing.assert_close(chol[2], torch.eye(2))


def test_merge_close_components_against_the_moments_of_the_pair() -> None:
    # A and B are one mode (0.1 apart, std 0.1 each); C is far away and stays as it is.
    w = torch.tensor([[0.35, 0.45, 0.20]])
    mu = torch.tensor([[[0.0, 0.0], [5.0, 5.0], [0.1, 0.0]]])
    cov = (torch.eye(2) * 0.01).expand(1, 3, 2, 2).clone()
    gmm = GaussianMixture(w, mu, cov)
    merged = merge_close_components(gmm, 3.0)
    wa, wb = 0.35, 0.20
    mean_u = wb * 0.1 / (wa + wb)
    var_u = 0.01 + (wa * mean_u**2 + wb * (0.1 - mean_u) ** 2) / (wa + wb)
    torch.testing.assert_close(merged.weights[0], torch.tensor([0.55, 0.45, 0.0]))
    torch.testing.assert_close(merged.means[0, 0], torch.tensor([mean_u, 0.0]))
    torch.testing.assert_close(merged.covariances[0, 0], torch.diag(torch.tensor([var_u, 0.01])))
    torch.testing.assert_close(merged.means[0, 1], torch.tensor([5.0, 5.0]))
    # the mixture as a whole keeps its moments; a tight threshold merges nothing
    torch.testing.assert_close(merged.mean(), gmm.mean())
    torch.testing.assert_close(merged.covariance(), gmm.covariance())
    kept = merge_close_components(gmm, 0.1)
    torch.testing.assert_close(kept.weights[0], torch.tensor([0.45, 0.35, 0.20]))


def test_merge_close_components_chains_a_split_peak_into_one() -> None:
    # five components one unit apart along a line, std 0.8: one peak split by EM
    mu = torch.stack([torch.arange(5.0), torch.zeros(5)], -1)[None]
    gmm = GaussianMixture(torch.full((1, 5), 0.2), mu, (torch.eye(2) * 0.64).expand(1, 5, 2, 2).clone())
    merged = merge_close_components(gmm)
    assert int((merged.weights[0] > 0).sum()) == 1
    torch.testing.assert_close(merged.means[0, 0], torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(merged.covariances[0, 0], gmm.covariance()[0])
