"""How typical a 2D pose is of a model's training inputs: a Gaussian mixture on a PCA of the poses.

A pose's features are its keypoints in the person's own frame (`evidence.person_frame`: centred on
the present joints and divided by their RMS size), so where the person stands and how large it is
in the image do not count, only the pose and the view. The density is a mixture fitted by our own
EM (`mixtures.em.fit_gmm`) on the leading `d` principal components; the discarded directions get
one isotropic residual variance, so every component is a full Gaussian over all 2J coordinates:

    mean_k = m + B a_k,   cov_k = B C_k B^T + r (I - B B^T)    (B: the (2J, d) principal directions)

Joints without evidence (a broad 2D mixture: out of the image, or a layout that lacks them) are
marginalised out: their rows and columns are dropped. The score is the negative log-likelihood per
present coordinate; `reference` holds its quantiles on held-out training-like poses, so a pose's
score reads against what the model saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diffpose3d.evidence.person_frame import PRESENT_STD, person_frame
from diffpose3d.mixtures.gmm import GaussianMixture

REFERENCE_LEVELS = (0.5, 0.9, 0.99)


@dataclass
class PoseFeatures:
    """Person-frame keypoints `points (F, 2J)`, the present joints `(F, J)` (evidence tighter than
    `PRESENT_STD`) and each joint's 2D evidence variance in the person frame `noise (F, J)`."""

    points: np.ndarray
    present: np.ndarray
    noise: np.ndarray

    def __len__(self) -> int:
        return len(self.points)

    def subset(self, rows: np.ndarray) -> PoseFeatures:
        return PoseFeatures(self.points[rows], self.present[rows], self.noise[rows])


def pose_features(keypoints_uv: torch.Tensor, uv_gmm: GaussianMixture) -> PoseFeatures:
    """The features of `(F, J, 2)` keypoints and their `(F, J, M, 2)` mixtures."""
    evidence_spread = uv_gmm.spread()
    frame = person_frame(keypoints_uv, evidence_spread)
    points = frame.points(keypoints_uv)
    noise = (evidence_spread / frame.size[:, :, 0]).square()
    return PoseFeatures(points.reshape(len(points), -1).double().numpy(), (evidence_spread < PRESENT_STD).numpy(),
                        noise.double().numpy())


@dataclass
class PoseDensity:
    """The fitted density (module docstring) of one joint layout."""

    layout: str
    mean: np.ndarray  # (D,) D = 2J
    basis: np.ndarray  # (D, d) orthonormal principal directions
    residual_var: float
    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    covariances: np.ndarray  # (K, d, d)
    reference: np.ndarray  # score quantiles at REFERENCE_LEVELS on held-out training-like poses

    def full_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Per component its mean `(K, D)` and covariance `(K, D, D)` over all coordinates."""
        b = self.basis
        residual = self.residual_var * (np.eye(len(b)) - b @ b.T)
        return self.mean + self.means @ b.T, np.einsum("di,kij,ej->kde", b, self.covariances, b) + residual

    def score(self, features: PoseFeatures, chunk: int = 256) -> np.ndarray:
        """Negative log-likelihood per present coordinate `(F,)` of the observed poses: the density
        convolved with each joint's own 2D evidence noise, over the present joints (at least two;
        otherwise NaN)."""
        mu, cov = self.full_moments()
        out = np.full(len(features), np.nan)
        patterns, which = np.unique(features.present, axis=0, return_inverse=True)
        which = which.reshape(-1)
        for p, pattern in enumerate(patterns):
            if pattern.sum() < 2:
                continue
            dims = np.repeat(pattern, 2)
            d = int(dims.sum())
            c = cov[:, dims][:, :, dims]  # (K, d, d)
            m = mu[:, dims]
            log_w = np.log(self.weights)
            rows_all = np.nonzero(which == p)[0]
            for start in range(0, len(rows_all), chunk):
                rows = rows_all[start:start + chunk]
                noise = np.repeat(features.noise[rows][:, pattern], 2, axis=1)  # (n, d)
                total = c[None] + noise[:, None, :, None] * np.eye(d)  # (n, K, d, d)
                chol = np.linalg.cholesky(total)
                diff = features.points[rows][:, dims][:, None] - m[None]  # (n, K, d)
                z = np.linalg.solve(chol, diff[..., None])[..., 0]
                logdet = 2 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
                log_comp = -0.5 * ((z**2).sum(-1) + logdet + d * np.log(2 * np.pi)) + log_w  # (n, K)
                peak = log_comp.max(1)
                out[rows] = -(peak + np.log(np.exp(log_comp - peak[:, None]).sum(1))) / d
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"layout": np.array(self.layout), "mean": self.mean, "basis": self.basis,
                "residual_var": np.array(self.residual_var), "weights": self.weights, "means": self.means,
                "covariances": self.covariances, "reference": self.reference}

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray], where: str | Path = "pose density") -> PoseDensity:
        """Check shapes and finiteness; raise ValueError naming the problem."""
        try:
            density = cls(str(data["layout"]), *(np.asarray(data[k], np.float64) for k in ("mean", "basis")),
                          float(data["residual_var"]),
                          *(np.asarray(data[k], np.float64) for k in ("weights", "means", "covariances", "reference")))
        except KeyError as exc:
            raise ValueError(f"{where}: missing array {exc}") from None
        D, d = density.basis.shape if density.basis.ndim == 2 else (0, 0)
        k = len(density.weights)
        ok = (density.mean.shape == (D,) and D > 0 and density.means.shape == (k, d)
              and density.covariances.shape == (k, d, d) and density.reference.shape == (len(REFERENCE_LEVELS),)
              and density.residual_var > 0)
        arrays = (density.mean, density.basis, density.weights, density.means, density.covariances, density.reference)
        if not ok or not all(np.all(np.isfinite(a)) for a in arrays):
            raise ValueError(f"{where}: inconsistent or non-finite density arrays")
        return density


def fit_pose_density(
    layout: str, features: np.ndarray, held_out: PoseFeatures, *, dims: int = 26, components: int = 24, seed: int = 0,
) -> PoseDensity:
    """Fit on the exact 2D of training-like poses `(N, 2J)` (all joints present): the evidence's own
    noise is added when a pose is scored. `held_out` poses as the model sees them set the reference
    quantiles of the score."""
    mean = features.mean(0)
    centred = features - mean
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)
    dims = min(dims, features.shape[1] - 1)
    basis = vt[:dims].T
    var = sing**2 / (len(features) - 1)
    residual_var = max(float(var[dims:].mean()), 1e-8)
    coords = torch.as_tensor(centred @ basis, dtype=torch.float32)[None]
    gmm, _ = fit_gmm_in_pca(coords, components, seed)
    density = PoseDensity(layout, mean, basis, residual_var, gmm.weights[0].double().numpy(),
                          gmm.means[0].double().numpy(), gmm.covariances[0].double().numpy(),
                          np.zeros(len(REFERENCE_LEVELS)))
    scores = density.score(held_out)
    density.reference = np.quantile(scores[np.isfinite(scores)], REFERENCE_LEVELS)
    return density


def fit_gmm_in_pca(coords: torch.Tensor, components: int, seed: int) -> tuple[GaussianMixture, torch.Tensor]:
    from diffpose3d.mixtures.em import fit_gmm

    return fit_gmm(coords, None, components, covariance="full", max_iter=200, tol=1e-4, reg_covar=1e-4, seed=seed)
