"""Fit a bundle's out-of-domain model (`uncertainty.ood`) from its own training data.

1. The pose density: the exact 2D of training subjects' frames drawn as training draws them (real
   and virtual cameras, `uncertainty.samples`), in the person's frame.
2. Calibration frames: the held-out subjects (`data.val_subjects`) or, for a bundle trained on
   every subject, the takes' validation blocks (`held_out_parts`), drawn the same way (in-domain),
   and the same subjects under synthetic shifts (other bodies, steep views, truncation); the model
   runs on all of them without widening.
3. The signals' noise correction and standardisation on the in-domain frames; their weights and the
   score -> factor map on all calibration frames (module docstring of `uncertainty.ood`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from diffpose3d import metrics
from diffpose3d.config import Config
from diffpose3d.data.protocols import protocol_subjects
from diffpose3d.errors import ConfigError
from diffpose3d.evaluation import calibration as cal
from diffpose3d.evidence.mixture2d import point_mixture
from diffpose3d.inference.lifting import lift_batches
from diffpose3d.model import DiffPoseModel
from diffpose3d.training.batches import Batch
from diffpose3d.uncertainty.ood import MIN_FACTOR, SIGNALS, OutOfDomain, disagreement, log_noise
from diffpose3d.uncertainty.pose_density import fit_pose_density, pose_features
from diffpose3d.uncertainty.samples import default_shifts, draw_inputs, input_batches

EXACT_STD_UV = 0.004  # the exact 2D's stand-in evidence width when the density is fitted (2 px of 1000)


@dataclass
class CalibrationFrames:
    """One calibration set: its density score and log noise `(F,)`, disagreement `(F,)` and the
    per non-root joint ratio error / (90 % ball radius x spread) `(F, J - 1)`."""

    name: str
    density: np.ndarray
    noise: np.ndarray
    disagreement: np.ndarray
    ratio: np.ndarray


def _run(model: DiffPoseModel, batch: Batch, name: str, density) -> CalibrationFrames:
    cfg = model.config.inference
    pred = lift_batches(model, batch.keypoints_uv, batch.uv_gmm, cfg, focal=batch.focal, widen=False)
    truth = batch.target_xyz.numpy()
    feats = pose_features(batch.keypoints_uv, batch.uv_gmm)
    error = np.linalg.norm(pred.pose[:, 1:] - truth[:, 1:], axis=-1)
    ratio = error / (cal.gaussian_ball_radius(cal.CONFORMAL_LEVEL) * pred.spread[:, 1:].clip(1e-9))
    return CalibrationFrames(name, density.score(feats), log_noise(feats.noise, feats.present),
                             disagreement(pred.pose, pred.lifter, pred.spread), ratio)


def _binned(x: np.ndarray, y: np.ndarray, bins: int, stat: Callable[[np.ndarray], float]) -> tuple[np.ndarray, np.ndarray]:
    """Equal-count bins of x: (mean x per bin, stat of y per bin)."""
    order = np.argsort(x)
    parts = np.array_split(order, bins)
    return np.array([x[p].mean() for p in parts]), np.array([stat(y[p]) for p in parts])


def _monotone(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted isotonic (non-decreasing) regression by pool-adjacent-violators."""
    blocks: list[list[float]] = []  # [value, weight, count]
    for v, wt in zip(y, w):
        blocks.append([float(v), float(wt), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            b = blocks.pop()
            a = blocks[-1]
            a[0] = (a[0] * a[1] + b[0] * b[1]) / (a[1] + b[1])
            a[1] += b[1]
            a[2] += b[2]
    return np.concatenate([np.full(int(c), v) for v, _, c in blocks])


@dataclass(frozen=True)
class Part:
    """Some subjects of a bundle's dataset, whole (`block` None) or one hold-out block of each take."""

    subjects: list[str]
    block: str | None = None

    def describe(self) -> str:
        names = ", ".join(self.subjects)
        return names if self.block is None else f"the {self.block} blocks of {names}"


def held_out_parts(config: Config) -> tuple[Part, Part]:
    """(what training saw, what it never saw but validated on) for a bundle's config: its training
    subjects and `data.val_subjects`, or, for a bundle trained on every subject (`data.holdout`),
    the takes' 'train' and 'val' blocks (the 'test' blocks stay for the conformal calibration and
    the reported figures)."""
    d = config.data
    subjects = list(d.train_subjects or protocol_subjects(d.dataset, "train"))
    if d.val_subjects:
        return Part([s for s in subjects if s not in d.val_subjects]), Part(list(d.val_subjects))
    if d.holdout:
        return Part(subjects, "train"), Part(subjects, "val")
    raise ConfigError("fitting the out-of-domain model needs held-out data: data.val_subjects or data.holdout")


def fit_out_of_domain(
    model: DiffPoseModel, *, train_samples: int = 40_000, calibration_samples: int = 3000, shift_samples: int = 1500,
    seed: int = 0, bins: int = 24, floor: float = MIN_FACTOR, log: Callable[[str], None] = print,
) -> tuple[OutOfDomain, dict[str, Any]]:
    """The out-of-domain model of `model` and a record of the fit (module docstring); no frame's
    spread is scaled by less than `floor` (`widening_floor`)."""
    config = model.config
    fit_on, home = held_out_parts(config)
    torch.manual_seed(seed)
    log(f"pose density: {train_samples} training-like frames of {fit_on.describe()}")
    train = draw_inputs(input_batches(config, model.skeleton, fit_on.subjects, fit_on.block), train_samples, seed)
    exact = pose_features(train.target_uv, point_mixture(train.target_uv, EXACT_STD_UV))
    held = input_batches(config, model.skeleton, home.subjects, home.block)
    in_domain = draw_inputs(held, calibration_samples, seed + 1)
    density = fit_pose_density(model.skeleton.name, exact.points[exact.present.all(1)],
                               pose_features(in_domain.keypoints_uv, in_domain.uv_gmm), seed=seed)
    log(f"calibration: {calibration_samples} in-domain frames of {home.describe()} and "
        f"{shift_samples} per synthetic shift")
    sets = [_run(model, in_domain, "in-domain", density)]
    for k, shift in enumerate(default_shifts(config)):
        sets.append(_run(model, draw_inputs(held, shift_samples, seed + 2 + k, shift), shift.name, density))
    ood, record = fit_from_frames(density, sets, bins, floor)
    return ood, record


def widening_floor(conformal: dict[str, Any]) -> float:
    """The least factor the map may give, for a bundle calibrated as `conformal` (its info's record):
    `MIN_FACTOR` (typical frames may narrow) for a calibration on the in-domain frames fit-ood also
    uses, 1 for one carried over to new subjects (`calibrate --new-subjects`): that spread is sized
    for people the held-out frames under-represent, and narrowing the typical frame back to their
    level would undo it."""
    return 1.0 if "new_subjects" in conformal else MIN_FACTOR


def fit_from_frames(density, sets: list[CalibrationFrames], bins: int = 24,
                    floor: float = MIN_FACTOR) -> tuple[OutOfDomain, dict[str, Any]]:
    """The noise correction, standardisation, weights and factor map from calibration sets (the first
    is in-domain); the factors are at least `floor`."""
    home = sets[0]
    ok = np.isfinite(home.density)
    noise_knots, noise_scores = _binned(home.noise[ok], home.density[ok], min(12, max(1, ok.sum() // 50)), np.median)

    def raw(s: CalibrationFrames) -> np.ndarray:
        return np.stack([s.density - np.interp(s.noise, noise_knots, noise_scores), s.disagreement], 1)

    raw_home = raw(home)
    centre = np.nanmedian(raw_home, 0)
    scale = np.maximum(np.nanquantile(raw_home, 0.9, axis=0) - centre, 1e-3)
    z = np.concatenate([np.nan_to_num((raw(s) - centre) / scale) for s in sets])
    ratio = np.concatenate([s.ratio for s in sets])
    frame_ratio = np.log(np.median(ratio, 1).clip(1e-6))
    rho = np.array([metrics.rank_correlation(z[:, i], frame_ratio) for i in range(len(SIGNALS))])
    weights = np.clip(rho, 0.0, None)
    weights = weights / weights.sum() if weights.sum() > 0 else np.eye(len(SIGNALS))[0]
    score = z @ weights
    knots, needed = _binned(score, ratio, bins, lambda r: float(np.quantile(r, cal.CONFORMAL_LEVEL)))
    factors = _monotone(needed, np.ones(len(needed)))
    home_score = score[: len(home.ratio)]
    factors = np.clip(factors / _home_neutral(home.ratio, home_score, knots, factors), floor, None)
    ood = OutOfDomain(density, noise_knots, noise_scores, centre, scale, weights, knots, factors,
                      float(np.quantile(home_score, 0.99)))
    radius_ok = lambda s, f: float(np.mean(s.ratio <= f[:, None]))
    record: dict[str, Any] = {"signals": list(SIGNALS), "spearman_with_error_ratio": rho.round(3).tolist(),
                              "weights": weights.round(3).tolist(), "warn_at": round(ood.warn_at, 3), "floor": floor,
                              "score_knots": knots.round(3).tolist(), "factors": factors.round(3).tolist(), "sets": {}}
    start = 0
    for s in sets:
        sc = score[start:start + len(s.ratio)]
        start += len(s.ratio)
        record["sets"][s.name] = {"frames": len(s.ratio), "mean_score": round(float(sc.mean()), 3),
                                  "coverage_90_before": round(radius_ok(s, np.ones(len(sc))), 3),
                                  "coverage_90_after": round(radius_ok(s, ood.factor(sc)), 3)}
    return ood, record


def _home_neutral(ratio: np.ndarray, score: np.ndarray, knots: np.ndarray, factors: np.ndarray) -> float:
    """The divisor c >= 1 of the factors that brings the in-domain frames' 90 % coverage down to
    max(their coverage without widening, 90 %): the pooled map may not over-cover at home."""
    def coverage(c: float) -> float:
        return float(np.mean(ratio <= np.interp(score, knots, factors / c)[:, None]))

    target = max(float(np.mean(ratio <= 1.0)), cal.CONFORMAL_LEVEL)
    if coverage(1.0) <= target:
        return 1.0
    lo, hi = 1.0, 2.0
    while coverage(hi) > target and hi < 1e3:
        hi *= 2.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if coverage(mid) > target else (lo, mid)
    return hi
