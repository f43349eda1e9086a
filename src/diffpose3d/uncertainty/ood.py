"""The `out_of_domain` score of a frame and how far it widens the reported spread.

Signals, per frame:

- `density`: the 2D pose's negative log-likelihood under the bundle's pose density
  (`uncertainty.pose_density`), less what held-out training-like frames of the same evidence noise
  score (exact 2D scores lower than a noisy detection without being more familiar);
- `disagreement`: how far the context encoder's own 3D guess lies from g's mean pose, in units of
  the hypotheses' spread (mean over the non-root joints, log);

each standardised on held-out in-domain frames (0 = their median, 1 = their 90th percentile above
it). The `out_of_domain` score is their weighted sum (weights: each signal's rank correlation with
the error / spread ratio on the calibration frames, negative ones dropped), and the factor that
scales the hypotheses around their mean is a monotone, piecewise-linear function of it, fitted so
the 90 % ball covers 90 % of the joints at every score on held-out in-domain frames and synthetic
shifts (`uncertainty.samples`), never on another dataset. `warn_at` is the score of the 1 % most
unusual held-out in-domain frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from diffpose3d.mixtures.gmm import GaussianMixture
from diffpose3d.uncertainty.pose_density import PoseDensity, pose_features

SIGNALS = ("density", "disagreement")
FILE = "out_of_domain.npz"
TOLERANCE = "miss_tolerance_"  # + a 2D layout's name: its array in the file
MIN_FACTOR = 0.7  # a typical frame's spread may shrink this far (conditional calibration), no further


def log_noise(noise: np.ndarray, present: np.ndarray) -> np.ndarray:
    """A frame's evidence noise `(F,)`: log of the median present joint's person-frame variance."""
    masked = np.where(present, noise, np.nan)
    return np.log(np.nanmedian(masked, axis=1).clip(1e-8))


def disagreement(pose: np.ndarray, lifter: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """`(F,)` log mean distance lifter - g's pose over the non-root joints, over their mean spread."""
    dist = np.linalg.norm(lifter[:, 1:] - pose[:, 1:], axis=-1).mean(1)
    return np.log(dist.clip(1e-6) / spread[:, 1:].mean(1).clip(1e-6))


@dataclass
class OutOfDomain:
    """A bundle's out-of-domain model (module docstring); arrays as stored in `out_of_domain.npz`."""

    density: PoseDensity
    noise_knots: np.ndarray  # log noise -> in-domain median density score
    noise_scores: np.ndarray
    centre: np.ndarray  # (S,) per signal
    scale: np.ndarray  # (S,)
    weights: np.ndarray  # (S,)
    score_knots: np.ndarray  # combined score -> factor
    factors: np.ndarray
    warn_at: float
    # per 2D layout (e.g. 'h36m16', a detector's), the per-joint reprojection miss (m) that held-out
    # frames of that 2D source show: `uncertainty.reprojection.excess_miss` widens only beyond it
    miss_tolerance: dict[str, np.ndarray] = field(default_factory=dict)

    def raw_signals(self, keypoints_uv: torch.Tensor, uv_gmm: GaussianMixture, pose: np.ndarray, lifter: np.ndarray,
                    spread: np.ndarray) -> np.ndarray:
        """`(F, S)` unstandardised signals; NaN density where fewer than two joints have evidence."""
        feats = pose_features(keypoints_uv.cpu().float(), uv_gmm.to("cpu"))
        dens = self.density.score(feats)
        expected = np.interp(log_noise(feats.noise, feats.present), self.noise_knots, self.noise_scores)
        return np.stack([dens - expected, disagreement(pose, lifter, spread)], 1)

    def standardise(self, raw: np.ndarray) -> np.ndarray:
        return np.nan_to_num((raw - self.centre) / self.scale, nan=0.0)

    def score(self, z: np.ndarray) -> np.ndarray:
        """The `out_of_domain` score `(F,)` of standardised signals `(F, S)`."""
        return z @ self.weights

    def factor(self, score: np.ndarray) -> np.ndarray:
        """`(F,)` factor on the spread (the hypotheses scaled around their mean)."""
        return np.interp(score, self.score_knots, self.factors)

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {f"density_{k}": v for k, v in self.density.to_arrays().items()}
        out.update(noise_knots=self.noise_knots, noise_scores=self.noise_scores, centre=self.centre, scale=self.scale,
                   weights=self.weights, score_knots=self.score_knots, factors=self.factors,
                   warn_at=np.array(self.warn_at), signals=np.array(SIGNALS))
        out.update({f"{TOLERANCE}{layout}": t for layout, t in self.miss_tolerance.items()})
        return out

    def save(self, folder: str | Path) -> Path:
        from diffpose3d.io.atomic import save_npz_atomic

        path = Path(folder) / FILE
        save_npz_atomic(path, **self.to_arrays())
        return path

    @classmethod
    def load(cls, path: str | Path) -> OutOfDomain:
        """Read `out_of_domain.npz` (plain arrays, no pickles); ValueError naming the problem."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable npz ({exc})") from None
        if tuple(str(s) for s in arrays.get("signals", ())) != SIGNALS:
            raise ValueError(f"{path}: made for other signals than {SIGNALS}")
        density = PoseDensity.from_arrays({k[8:]: v for k, v in arrays.items() if k.startswith("density_")}, path)
        try:
            ood = cls(density, *(np.asarray(arrays[k], np.float64) for k in
                                 ("noise_knots", "noise_scores", "centre", "scale", "weights", "score_knots", "factors")),
                      float(arrays["warn_at"]))
        except KeyError as exc:
            raise ValueError(f"{path}: missing array {exc}") from None
        s = len(SIGNALS)
        ok = (ood.centre.shape == ood.scale.shape == ood.weights.shape == (s,) and np.all(ood.scale > 0)
              and ood.score_knots.shape == ood.factors.shape and len(ood.factors) >= 1 and np.all(ood.factors > 0)
              and np.all(np.diff(ood.score_knots) >= 0) and ood.noise_knots.shape == ood.noise_scores.shape
              and len(ood.noise_knots) >= 1)
        finite = all(np.all(np.isfinite(a)) for a in (ood.noise_knots, ood.noise_scores, ood.centre, ood.scale,
                                                       ood.weights, ood.score_knots, ood.factors))
        if not ok or not finite or not np.isfinite(ood.warn_at):
            raise ValueError(f"{path}: inconsistent or non-finite arrays")
        for key in (k for k in arrays if k.startswith(TOLERANCE)):
            t = np.asarray(arrays[key], np.float64)
            if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t < 0):
                raise ValueError(f"{path}: {key} must be one finite, non-negative value per joint")
            ood.miss_tolerance[key[len(TOLERANCE):]] = t
        return ood
