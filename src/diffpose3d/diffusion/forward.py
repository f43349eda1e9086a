"""Forward (noising) processes; plain tensor code, no network.

GMM forward process (paper section 3): per joint draw a component `m ~ Categorical(pi)` and
`eps ~ N(0, Sigma_m)`, then

    h_k = mu_m + sqrt(abar_k) (h_0 - mu_m) + sqrt(1 - abar_k) eps

so `h_0` is the ground truth and `h_K` is (up to the schedule floor) a draw from the fitted mixture
H_K. Mixtures are tensors: `weights (..., M)`, `means (..., M, D)`, and the Cholesky factors
`chol (..., M, D, D)` of the covariances (lower triangular, `Sigma = L L^T`).
"""

from __future__ import annotations

import torch

from diffpose3d.diffusion.schedule import Schedule
from diffpose3d.mixtures.gmm import pick_components


def _uniform(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One uniform per mixture, `(..., 1)`, for `mixtures.gmm.pick_components`."""
    return torch.rand(weights.shape[:-1] + (1,), generator=generator, device=weights.device, dtype=weights.dtype)


def gather_component(
    means: torch.Tensor, chol: torch.Tensor, m: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick component `m (...)` of each mixture: `means (..., M, D)`, `chol (..., M, D, D)`
    -> `mu (..., D)`, `L (..., D, D)`."""
    D = means.shape[-1]
    assert chol.shape[-2:] == (D, D), f"chol must be (..., M, {D}, {D}), got {tuple(chol.shape)}"
    idx = m[..., None, None]
    mu = means.gather(-2, idx.expand(m.shape + (1, D))).squeeze(-2)
    L = chol.gather(-3, idx[..., None].expand(m.shape + (1, D, D))).squeeze(-3)
    return mu, L


def correlated_noise(
    L: torch.Tensor, generator: torch.Generator | None = None, normal: torch.Tensor | None = None
) -> torch.Tensor:
    """`eps = L z`, `z ~ N(0, I)` (or the given `normal`): noise with covariance `L L^T`."""
    z = normal if normal is not None else torch.randn(L.shape[:-1], generator=generator, device=L.device, dtype=L.dtype)
    return (L @ z.unsqueeze(-1)).squeeze(-1)


def sample_mixture(
    weights: torch.Tensor,
    means: torch.Tensor,
    chol: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One draw from each mixture. Returns `(h, m, mu_m, L_m)`; `h = mu_m + L_m z`."""
    m = pick_components(weights, _uniform(weights, generator))
    mu, L = gather_component(means, chol, m)
    return mu + correlated_noise(L, generator), m, mu, L


def q_sample(
    h0: torch.Tensor,
    k: torch.Tensor,
    weights: torch.Tensor,
    means: torch.Tensor,
    chol: torch.Tensor,
    schedule: Schedule,
    generator: torch.Generator | None = None,
    *,
    uniform: torch.Tensor | None = None,
    normal: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GMM forward process: `h0 (B, J, D)`, `k (B,)` long, per-joint mixtures `(B, J, M, ...)`.

    Returns `(h_k (B, J, D), m (B, J) long)`; the component indices let a loss or a test reproduce
    the shift `mu_m` that was used. `uniform (B, J, 1)` and `normal (B, J, D)` replace the draws
    from `generator` when given.
    """
    assert h0.shape == means.shape[:-2] + means.shape[-1:], (
        f"h0 {tuple(h0.shape)} must match the mixture means {tuple(means.shape)} without the M axis"
    )
    assert k.shape == h0.shape[:1], f"k must have one step per frame, shape ({h0.shape[0]},), got {tuple(k.shape)}"
    m = pick_components(weights, uniform if uniform is not None else _uniform(weights, generator))
    mu, L = gather_component(means, chol, m)
    eps = correlated_noise(L, generator, normal)
    signal, noise = schedule.signal_noise(k, h0)  # (B, 1, 1)
    # Same as mu + s (h0 - mu) + n eps, but returns h0 bit-exactly at k = 0.
    h_k = signal * h0 + (1.0 - signal) * mu + noise * eps
    return h_k, m
