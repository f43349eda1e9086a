"""Batched EM against scikit-learn's GaussianMixture on the same data, plus degenerate input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from diffpose3d.mixtures.em import fit_gmm
from diffpose3d.mixtures.gmm import GaussianMixture

sklearn_mixture = pytest.importorskip("sklearn.mixture")


def _clustered(b: int, n: int, d: int, m: int, seed: int) -> np.ndarray:
    """`b` data sets `(b, n, d)` of `m` Gaussian blobs each (scikit-learn's `make_blobs`)."""
    from sklearn.datasets import make_blobs

    sets = [make_blobs(n_samples=n, n_features=d, centers=m, cluster_std=np.random.default_rng(seed + i).uniform(0.3, 1.5, m),
                       center_box=(-8.0, 8.0), random_state=seed * 1000 + i)[0] for i in range(b)]
    return np.stack(sets).astype(np.float32)


def _sklearn_scores(x: np.ndarray, cov: str) -> np.ndarray:
    with threadpool_limits(1):
        return np.array([
            sklearn_mixture.GaussianMixture(5, covariance_type=cov, random_state=i).fit(xi).score(xi)
            for i, xi in enumerate(x)
        ])


@pytest.mark.parametrize(("d", "cov", "fits"), [(2, "full", 1000), (5, "full", 1000), (2, "diag", 100), (5, "diag", 100)])
def test_mean_log_likelihood_matches_sklearn(d: int, cov: str, fits: int) -> None:
    x = _clustered(fits, 200, d, 5, seed=d)
    gmm, ll = fit_gmm(torch.from_numpy(x), num_components=5, covariance=cov, seed=1)
    ref = _sklearn_scores(x, cov)
    assert torch.isfinite(ll).all()
    assert abs(ll.mean().item() - ref.mean()) / abs(ref.mean()) < 0.01
    assert np.median(np.abs(ll.numpy() - ref) / np.abs(ref)) < 0.01
    # The reported score is the fitted mixture's own mean log-density.
    own = gmm[:20].to(dtype=torch.float64).log_prob(torch.from_numpy(x[:20]).double()).mean(-1)
    torch.testing.assert_close(ll[:20].double(), own, rtol=1e-4, atol=1e-4)


def test_outputs_are_valid_mixtures_with_sorted_weights() -> None:
    x = torch.from_numpy(_clustered(50, 100, 2, 3, seed=0))
    gmm, _ = fit_gmm(x, num_components=4, covariance="diag")
    torch.testing.assert_close(gmm.weights.sum(-1), torch.ones(50))
    assert (gmm.weights[:, :-1] >= gmm.weights[:, 1:]).all()
    off = gmm.covariances - torch.diag_embed(gmm.covariances.diagonal(dim1=-2, dim2=-1))
    assert (off == 0).all()


def test_weighted_samples_equal_repeated_samples() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(1, 40, 2)).astype(np.float32)
    counts = rng.integers(1, 4, 40)
    repeated = torch.from_numpy(np.repeat(base, counts, axis=1))
    _, ll_w = fit_gmm(torch.from_numpy(base), torch.from_numpy(counts[None].astype(np.float32)), 1)
    _, ll_r = fit_gmm(repeated, None, 1)
    torch.testing.assert_close(ll_w, ll_r, rtol=1e-4, atol=1e-4)


def test_fit_is_independent_of_batch_neighbours_and_chunking() -> None:
    x = torch.from_numpy(_clustered(64, 100, 2, 3, seed=5))
    a, ll_a = fit_gmm(x, num_components=3, seed=0, chunk_size=64)
    b, ll_b = fit_gmm(x, num_components=3, seed=0, chunk_size=64)
    torch.testing.assert_close(a.means, b.means)
    torch.testing.assert_close(ll_a, ll_b)
    # a converged fit is frozen, so changing a neighbour's data leaves a fit unchanged when its
    # random draws are the same: fits with a single component have no random init at all
    one, _ = fit_gmm(x, num_components=1)
    other = x.clone()
    other[1:] *= 3
    two, _ = fit_gmm(other, num_components=1)
    torch.testing.assert_close(one.means[0], two.means[0])


def test_results_do_not_depend_on_the_thread_count_and_threads_are_restored() -> None:
    x = torch.from_numpy(_clustered(96, 80, 2, 4, seed=7))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a, ll_a = fit_gmm(x, num_components=4, seed=3, chunk_size=32)  # three chunks, one thread
        torch.set_num_threads(2)
        b, ll_b = fit_gmm(x, num_components=4, seed=3, chunk_size=32)  # the chunks on two threads
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(a.means, b.means, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ll_a, ll_b, rtol=1e-5, atol=1e-6)


def test_covariances_stay_positive_definite_when_moments_cancel() -> None:
    """A found case: float32 cancellation in E[zz'] - mu mu' pushed a component's correlation past 1,
    so its 2-D covariance had a negative eigenvalue (-1.8e-7)."""
    for seed in (43, 189):
        torch.manual_seed(seed)
        x = torch.randn(2, 30, 2)
        gmm, _ = fit_gmm(x, torch.zeros(2, 30), num_components=5, covariance="full")
        assert torch.linalg.eigvalsh(gmm.covariances).min() > 0


def test_degenerate_inputs_give_finite_results() -> None:
    torch.manual_seed(0)
    same = torch.ones(2, 30, 2)  # all samples identical
    few = torch.randn(1, 3, 2).expand(2, 3, 2).contiguous()  # fewer samples than components
    zero_w = torch.zeros(2, 30)  # all-zero weights -> uniform
    for x, w in ((same, None), (few, None), (torch.randn(2, 30, 2), zero_w)):
        for cov in ("full", "diag"):
            gmm, ll = fit_gmm(x, w, num_components=5, covariance=cov)
            assert torch.isfinite(gmm.weights).all() and torch.isfinite(gmm.means).all()
            assert torch.isfinite(gmm.covariances).all() and torch.isfinite(ll).all()
            assert torch.linalg.eigvalsh(gmm.covariances).min() > 0


def test_float32_with_large_offsets_matches_float64() -> None:
    x = torch.from_numpy(_clustered(20, 150, 2, 2, seed=9)).double() * 0.5 + 3000.0  # pixel-like
    _, ll64 = fit_gmm(x, num_components=2, seed=0)
    _, ll32 = fit_gmm(x.float(), num_components=2, seed=0)
    torch.testing.assert_close(ll32.double(), ll64, rtol=1e-3, atol=1e-3)


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        fit_gmm(torch.full((1, 5, 2), float("nan")))
    with pytest.raises(ValueError):
        fit_gmm(torch.randn(1, 5, 2), torch.full((1, 5), -1.0))


def test_mixture_wrapper_roundtrip() -> None:
    x = torch.from_numpy(_clustered(4, 300, 2, 2, seed=2))
    gmm, _ = fit_gmm(x, num_components=2)
    assert isinstance(gmm, GaussianMixture) and gmm.weights.shape == (4, 2)
