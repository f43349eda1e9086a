"""Batched Gaussian mixtures as plain tensors.

A `GaussianMixture` holds `weights (..., M)` (summing to 1; zero-weight components are allowed and
never drawn), `means (..., M, D)` and full `covariances (..., M, D, D)`. Every leading dimension is
a batch dimension: one mixture per (frame, joint) is the usual shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

# Relative jitter ladder tried when a covariance is numerically not positive definite.
_JITTERS = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
# Components whose means lie within this many (pair) standard deviations describe one mode.
MERGE_WITHIN = 3.0


def robust_cholesky(cov: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factors of `cov (..., D, D)`, adding diagonal jitter only where needed.

    Jitter is relative to the mean diagonal of each matrix (at most 1 %), so results never hold NaN
    for symmetric, nearly positive semi-definite input. Zero matrices get an absolute 1e-12 floor.
    """
    cov = 0.5 * (cov + cov.transpose(-1, -2))
    d = cov.shape[-1]
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    scale = cov.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)[..., None, None]
    chol, info = torch.linalg.cholesky_ex(cov)
    bad = info > 0
    for jitter in _JITTERS[1:]:
        if not bool(bad.any()):
            break
        fixed, info2 = torch.linalg.cholesky_ex(cov + jitter * scale * eye)
        chol = torch.where(bad[..., None, None], fixed, chol)
        bad = bad & (info2 > 0)
    if bool(bad.any()):  # hopeless matrices: fall back to the square root of the clamped diagonal
        diag = torch.diag_embed(cov.diagonal(dim1=-2, dim2=-1).clamp_min(1e-12).sqrt())
        chol = torch.where(bad[..., None, None], diag, chol)
    return chol


@dataclass
class GaussianMixture:
    """Batched mixture: `weights (..., M)`, `means (..., M, D)`, `covariances (..., M, D, D)`."""

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor

    def __post_init__(self) -> None:
        w, mu, cov = self.weights, self.means, self.covariances
        if mu.dim() < 2 or w.shape != mu.shape[:-1] or cov.shape != mu.shape + mu.shape[-1:]:
            raise ValueError(
                "GaussianMixture needs weights (..., M), means (..., M, D), covariances (..., M, D, D); "
                f"got {tuple(w.shape)}, {tuple(mu.shape)}, {tuple(cov.shape)}"
            )

    # -- shape -------------------------------------------------------------------------------
    @property
    def batch_shape(self) -> torch.Size:
        return self.weights.shape[:-1]

    @property
    def num_components(self) -> int:
        return int(self.weights.shape[-1])

    @property
    def dim(self) -> int:
        return int(self.means.shape[-1])

    def __getitem__(self, index: object) -> GaussianMixture:
        """Index the batch dimensions (never the component or feature axes)."""
        return GaussianMixture(self.weights[index], self.means[index], self.covariances[index])

    def reshape(self, *batch_shape: int) -> GaussianMixture:
        m, d = self.num_components, self.dim
        return GaussianMixture(
            self.weights.reshape(*batch_shape, m),
            self.means.reshape(*batch_shape, m, d),
            self.covariances.reshape(*batch_shape, m, d, d),
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> GaussianMixture:
        return GaussianMixture(
            self.weights.to(device=device, dtype=dtype),
            self.means.to(device=device, dtype=dtype),
            self.covariances.to(device=device, dtype=dtype),
        )

    def where(self, mask: torch.Tensor, other: GaussianMixture) -> GaussianMixture:
        """`other`'s mixture where `mask (batch)` is true, this one elsewhere (same M and D)."""
        return GaussianMixture(
            torch.where(mask[..., None], other.weights, self.weights),
            torch.where(mask[..., None, None], other.means, self.means),
            torch.where(mask[..., None, None, None], other.covariances, self.covariances),
        )

    @staticmethod
    def cat(mixtures: list[GaussianMixture], dim: int = 0) -> GaussianMixture:
        """Concatenate along a batch dimension (all must have the same M and D)."""
        return GaussianMixture(
            torch.cat([g.weights for g in mixtures], dim),
            torch.cat([g.means for g in mixtures], dim),
            torch.cat([g.covariances for g in mixtures], dim),
        )

    # -- linear algebra ------------------------------------------------------------------------
    def cholesky(self) -> torch.Tensor:
        """Lower Cholesky factors `(..., M, D, D)` of the covariances (jittered where needed)."""
        return robust_cholesky(self.covariances)

    # -- moments ---------------------------------------------------------------------------------
    def mean(self) -> torch.Tensor:
        """Mixture mean `(..., D)`: `sum_m pi_m mu_m`."""
        return (self.weights.unsqueeze(-1) * self.means).sum(-2)

    def covariance(self) -> torch.Tensor:
        """Mixture covariance `(..., D, D)` by the law of total covariance."""
        w = self.weights[..., None, None]
        diff = self.means - self.mean().unsqueeze(-2)
        between = diff.unsqueeze(-1) * diff.unsqueeze(-2)
        return (w * (self.covariances + between)).sum(-3)

    def variance(self) -> torch.Tensor:
        """Mean per-axis variance `(...)`: `trace(mixture covariance) / D`."""
        return self.covariance().diagonal(dim1=-2, dim2=-1).sum(-1) / self.dim

    def spread(self, floor: float = 1e-12) -> torch.Tensor:
        """The mixture's RMS standard deviation `(...)`: `sqrt(trace(covariance) / D)`, the variance
        clamped below at `floor` so the spread (and its log) stays finite. The one definition of a
        mixture's spread: the 2D evidence spread (`evidence_spread`) and every summary use it."""
        return self.variance().clamp_min(floor).sqrt()

    # -- densities and samples -----------------------------------------------------------------
    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """`log N(x_n | mu_m, Sigma_m)` for `x (..., N, D)` -> `(..., N, M)`."""
        chol = self.cholesky()  # (..., M, D, D)
        diff = x.unsqueeze(-2) - self.means.unsqueeze(-3)  # (..., N, M, D)
        z = torch.linalg.solve_triangular(
            chol.unsqueeze(-4), diff.unsqueeze(-1), upper=False
        ).squeeze(-1)  # (..., N, M, D)
        half_logdet = chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (..., M)
        return -0.5 * (z * z).sum(-1) - half_logdet.unsqueeze(-2) - 0.5 * self.dim * math.log(2 * math.pi)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Mixture log-density of points `x (..., N, D)` -> `(..., N)`; batch dims broadcast."""
        log_w = self.weights.clamp_min(0).log().unsqueeze(-2)  # zero weight -> -inf, dropped
        return torch.logsumexp(self.component_log_prob(x) + log_w, dim=-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` independent draws per mixture: `(..., n, D)`.

        Components are drawn by inverse CDF from one uniform per draw, then `mu + L z`; all random
        numbers come from `generator` (created on the mixture's device if given).
        """
        batch, _m, d = self.batch_shape, self.num_components, self.dim
        dev, dt = self.means.device, self.means.dtype
        u = torch.rand(*batch, n, 1, generator=generator, device=dev, dtype=dt)
        comp = pick_components(self.weights.unsqueeze(-2), u)  # (..., n)
        mu = self.means.gather(-2, comp.unsqueeze(-1).expand(*batch, n, d))
        chol = self.cholesky().gather(-3, comp[..., None, None].expand(*batch, n, d, d))
        z = torch.randn(*batch, n, d, generator=generator, device=dev, dtype=dt)
        return mu + (chol @ z.unsqueeze(-1)).squeeze(-1)


def pick_components(weights: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """The component of each mixture that a uniform draw picks, by inverse CDF: `weights (..., M)`
    and `uniform (..., 1)` in [0, 1) -> `(...,)` long. Zero-weight components are never picked;
    weights need to sum to 1 only up to rounding. The one rule for every mixture draw (H_K draws,
    the forward process, `GaussianMixture.sample`), so given uniforms give the same components."""
    cdf = weights.clamp_min(0).cumsum(-1)
    return (cdf <= uniform * cdf[..., -1:]).sum(-1).clamp(max=weights.shape[-1] - 1)


def product_mixture(a: GaussianMixture, b: GaussianMixture) -> GaussianMixture:
    """Independent product of two mixtures over concatenated features.

    `a (..., Ma, Da)` x `b (..., Mb, Db)` -> `(..., Ma * Mb, Da + Db)`: weights multiply, means
    concatenate, covariances are block diagonal. Component `(i, j)` sits at index `i * Mb + j`.
    """
    ma, mb, da, db = a.num_components, b.num_components, a.dim, b.dim
    batch = torch.Size(np.broadcast_shapes(a.batch_shape, b.batch_shape))  # torch's would import SymPy
    w = (a.weights.unsqueeze(-1) * b.weights.unsqueeze(-2)).expand(*batch, ma, mb).reshape(*batch, ma * mb)
    mu_a = a.means.unsqueeze(-2).expand(*batch, ma, mb, da)
    mu_b = b.means.unsqueeze(-3).expand(*batch, ma, mb, db)
    mu = torch.cat([mu_a, mu_b], -1).reshape(*batch, ma * mb, da + db)
    cov = a.means.new_zeros(*batch, ma, mb, da + db, da + db)
    cov[..., :da, :da] = a.covariances.unsqueeze(-3)
    cov[..., da:, da:] = b.covariances.unsqueeze(-4)
    return GaussianMixture(w, mu, cov.reshape(*batch, ma * mb, da + db, da + db))


def top_components(gmm: GaussianMixture, m: int) -> GaussianMixture:
    """Keep the `m` heaviest components (sorted by weight, renormalised); pad with zero weights."""
    k = gmm.num_components
    order = torch.sort(gmm.weights, dim=-1, descending=True, stable=True).indices[..., : min(m, k)]
    d = gmm.dim
    w = gmm.weights.gather(-1, order)
    mu = gmm.means.gather(-2, order.unsqueeze(-1).expand(*order.shape, d))
    cov = gmm.covariances.gather(-3, order[..., None, None].expand(*order.shape, d, d))
    w = w / w.sum(-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
    if k < m:
        pad = m - k
        w = torch.cat([w, w.new_zeros(*w.shape[:-1], pad)], -1)
        mu = torch.cat([mu, mu[..., :1, :].expand(*mu.shape[:-2], pad, d)], -2)
        cov = torch.cat([cov, cov[..., :1, :, :].expand(*cov.shape[:-3], pad, d, d)], -3)
    return GaussianMixture(w, mu, cov)


def merge_close_components(gmm: GaussianMixture, max_distance: float = MERGE_WITHIN) -> GaussianMixture:
    """Merge components that describe one mode: one Gaussian per mode, with the same moments.

    EM on a heatmap splits a single peak into several components about one heatmap pixel apart;
    downstream code (the keypoint read from the heaviest component, the evidence summary) wants one
    component per mode, as a detector's heatmap shows them. Per mixture, the closest pair of
    components (Mahalanobis distance of their means under the sum of their covariances) is merged
    while that distance is below `max_distance`: weights add, mean and covariance are the pair's
    moments. Merged-away slots keep weight 0, so `M` is unchanged; components come out sorted by
    weight. The mixture's overall mean and covariance are preserved exactly.
    """
    m, d = gmm.num_components, gmm.dim
    if m < 2:
        return gmm
    w, mu, cov = gmm.weights, gmm.means, gmm.covariances
    eye = torch.eye(m, dtype=torch.bool, device=w.device)
    limit = max_distance**2
    for _ in range(m - 1):
        diff = mu.unsqueeze(-2) - mu.unsqueeze(-3)  # (..., M, M, D)
        pair_cov = cov.unsqueeze(-3) + cov.unsqueeze(-4)
        chol = robust_cholesky(pair_cov)
        z = torch.linalg.solve_triangular(chol, diff.unsqueeze(-1), upper=False).squeeze(-1)
        d2 = (z**2).sum(-1)
        active = w > 0
        ok = active.unsqueeze(-1) & active.unsqueeze(-2) & ~eye
        d2 = torch.where(ok, d2, torch.full_like(d2, math.inf))
        best, flat = d2.flatten(-2).min(-1)
        merge = best < limit
        if not bool(merge.any()):
            break
        i, j = (flat // m).unsqueeze(-1), (flat % m).unsqueeze(-1)
        keep = torch.where(w.gather(-1, i) >= w.gather(-1, j), i, j)  # the heavier slot takes the pair
        pair = torch.cat([keep, torch.where(keep == i, j, i)], -1)  # (..., 2): keep, drop
        pw = w.gather(-1, pair)
        total = pw.sum(-1, keepdim=True)
        merged = GaussianMixture(
            pw / total.clamp_min(1e-30),
            mu.gather(-2, pair.unsqueeze(-1).expand(*pair.shape, d)),
            cov.gather(-3, pair[..., None, None].expand(*pair.shape, d, d)),
        )
        sel = merge.unsqueeze(-1)
        one_k = torch.nn.functional.one_hot(pair[..., 0], m).bool() & sel
        one_d = torch.nn.functional.one_hot(pair[..., 1], m).bool() & sel
        w = torch.where(one_k, total, torch.where(one_d, torch.zeros_like(w), w))
        mu = torch.where(one_k.unsqueeze(-1), merged.mean().unsqueeze(-2), mu)
        cov = torch.where(one_k[..., None, None], merged.covariance().unsqueeze(-3), cov)
    return top_components(GaussianMixture(w, mu, cov), m)
