"""Is the spread honest? The field's calibration protocol, and a conformal guarantee.

Quantile calibration (Pierzchlewicz et al., ICLR 2023, the cGNF protocol): per pose S samples
(200 in the paper); per joint, each sample's distance to the joints' sample median (coordinate-wise)
and the truth's distance to it; for levels q = 0, 0.05, ..., 1 the frequency with which the truth's
distance falls below the samples' q-quantile; the median of that frequency over joints; the
expected calibration error (ECE) is the mean |frequency - q| over the levels. A calibrated model
gives frequency = q at every level (ECE 0); an over-confident one lower frequencies.

Conformal scaling: the nonconformity of a (frame, joint) is the truth's distance from the
hypotheses' mean in units of their spread (`metrics.spread_from_covariance`). On a calibration split
(neither training nor test data), per joint, the ceil((n + 1) level) / n empirical quantile q_j of
that score is the radius that covers `level` of the split; scaling the joint's hypotheses about
their mean by q_j / r (r the radius of the `level` ball of a 3-D Gaussian in units of its RMS axis
spread) makes the ball of r spreads that region. Guarantee: for a new frame exchangeable with the
calibration frames, the ball covers the truth with probability at least `level` (marginally, over
frames). Not guaranteed: coverage per frame, per action, or under a shift (a camera, a pose, a
detector the calibration split did not have).

Radial shape: errors are heavier-tailed than the hypotheses (many joints almost exact, a few far
off), so a scale that makes the 90 % ball right over-covers at 50 %. `fit_radial_map` maps each
hypothesis' radius so the hypotheses' radial quantiles are the errors' on the calibration split.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from diffpose3d.metrics import hypothesis_spread

QUANTILE_LEVELS = np.linspace(0.0, 1.0, 21)
CONFORMAL_LEVEL = 0.9
RADIAL_KNOTS = 41
RADIAL_TOP_LEVEL = 0.995  # the map's last knot: above, radii scale by its ratio (the sample's max is noise)


def quantile_frequencies(samples: np.ndarray, truth: np.ndarray, levels: np.ndarray = QUANTILE_LEVELS) -> np.ndarray:
    """Per level and joint `(L, J)`: how often the truth lies within the samples' q-quantile distance
    of their median. `samples (F, S, J, 3)`, `truth (F, J, 3)`."""
    s = np.asarray(samples, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if s.ndim != 4 or s.shape[-1] != 3 or t.shape != s.shape[:1] + s.shape[2:]:
        raise ValueError(f"need samples (F, S, J, 3) and truth (F, J, 3), got {s.shape} and {t.shape}")
    median = np.median(s, axis=1)  # (F, J, 3)
    d_samples = np.linalg.norm(s - median[:, None], axis=-1)  # (F, S, J)
    d_truth = np.linalg.norm(t - median, axis=-1)  # (F, J)
    radii = np.quantile(d_samples, levels, axis=1)  # (L, F, J)
    return (d_truth[None] <= radii).mean(axis=1)


def calibration_curve(samples: np.ndarray, truth: np.ndarray, joints: np.ndarray | None = None,
                      levels: np.ndarray = QUANTILE_LEVELS) -> np.ndarray:
    """The protocol's frequency per level `(L,)`: the median over joints (or over `joints` only)."""
    per_joint = quantile_frequencies(samples, truth, levels)
    if joints is not None:
        per_joint = per_joint[:, joints]
    return np.median(per_joint, axis=1)


def expected_calibration_error(curve: np.ndarray, levels: np.ndarray = QUANTILE_LEVELS) -> float:
    """Mean |frequency - level| of a calibration curve."""
    return float(np.mean(np.abs(np.asarray(curve) - levels)))


def gaussian_ball_radius(level: float = CONFORMAL_LEVEL) -> float:
    """Radius, in units of the per-axis standard deviation, of the central ball holding `level` of an
    isotropic 3-D Gaussian (sqrt of the chi-square quantile with 3 degrees of freedom)."""
    from scipy import stats  # here, not at the top: the model imports this module

    return math.sqrt(stats.chi2.ppf(level, df=3))


def nonconformity(mean: np.ndarray, spread: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The truth's distance from the hypotheses' mean in units of their spread, `(F, J)`."""
    return np.linalg.norm(np.asarray(truth) - np.asarray(mean), axis=-1) / np.maximum(np.asarray(spread), 1e-9)


def conformal_scale(scores: np.ndarray, level: float = CONFORMAL_LEVEL) -> np.ndarray:
    """Per joint `(J,)` the factor for the hypotheses' spread that makes the `level` Gaussian ball the
    split-conformal region of `level` for `scores (F, J)` (`nonconformity` on a calibration split)."""
    n = scores.shape[0]
    if n < 1:
        raise ValueError("conformal calibration needs at least one frame")
    rank = min(math.ceil((n + 1) * level), n)
    q = np.sort(scores, axis=0)[rank - 1]
    return q / gaussian_ball_radius(level)


def conformal_scale_keeping_bones(raw: np.ndarray, spread_scale: float, truth: np.ndarray, joints: np.ndarray,
                                  parents: tuple[int, ...] | list[int], level: float = CONFORMAL_LEVEL,
                                  rounds: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """`conformal_scale` for a model that keeps bones (`keep_bones`): per joint `(J,)` the factor on
    the spread, and the nonconformity scores `(F, J)` it leaves. `raw (F, N, J, 3)` are the
    denoiser's hypotheses before any scaling, `truth (F, J', 3)` the data's joints `joints (J',)` of
    the model's (the root first, left at 1: it is exact by construction).

    Keeping bones takes back part of a joint's scaling (more where its bone is short against the
    spread) and carries its parent's into it, so no closed form exists; the fit is a fixed point:
    scale, keep bones, and multiply each joint's factor by the conformal factor its remaining miss
    calls for, `rounds` times (a few suffice: each round is the exact answer for a linear model)."""
    h = torch.as_tensor(np.asarray(raw), dtype=torch.float64)
    centre = h.mean(dim=1, keepdim=True)
    mean = centre[:, 0].numpy()[:, joints]

    def scores(scale: np.ndarray) -> np.ndarray:
        kept = keep_bones(centre + torch.as_tensor(spread_scale * scale)[:, None] * (h - centre), h, parents)
        return nonconformity(mean, hypothesis_spread(kept.numpy())[:, joints], truth)

    scale = np.ones(h.shape[2])
    for _ in range(rounds):
        scale[joints[1:]] *= conformal_scale(scores(scale)[:, 1:], level)
    return scale, scores(scale)


def spread_scale(pose: np.ndarray, covariance: np.ndarray, truth: np.ndarray) -> float:
    """The global factor that makes the hypotheses' spread match the error of their mean: s^2 =
    E ||mean - truth||^2 / E trace(covariance) over the non-root joints, clamped to [0.5, 10]
    (`pose`, `truth (F, J, 3)`, `covariance (F, J, 3, 3)`; fitted after training's stage 2)."""
    err2 = np.square(np.asarray(pose) - np.asarray(truth)).sum(-1)[:, 1:]
    var = np.trace(np.asarray(covariance), axis1=-2, axis2=-1)[:, 1:]
    return float(np.clip(np.sqrt(err2.mean() / max(var.mean(), 1e-12)), 0.5, 10.0))


def usable_scale(scale: np.ndarray, dtype: torch.dtype, level: float) -> torch.Tensor:
    """`scale` as the bundle stores it (`dtype`), refused (`ConfigError`) when a value is not a
    positive finite number there: such a bundle could not be loaded or would predict no spread."""
    from diffpose3d.errors import ConfigError

    stored = torch.as_tensor(np.asarray(scale, np.float64), dtype=dtype)
    bad = [float(v) for v in stored if not (bool(torch.isfinite(v)) and float(v) > 0)]
    if bad:
        raise ConfigError(f"--level {level}: the conformal scale would be {bad[0]} (not a positive finite number), "
                          "which would make the bundle unusable; nothing was written")
    return stored


def scale_hypotheses(states: torch.Tensor, spread_scale: torch.Tensor, conformal_scale: torch.Tensor) -> torch.Tensor:
    """Hypotheses `(B, N, J, D)` scaled about their mean by the fitted calibration: the global
    `spread_scale` (`spread_scale`, fitted by `training.run.fit_spread_scale`) times the per-joint `conformal_scale (J,)`
    (`conformal_scale`, fitted by `diffpose3d calibrate`)."""
    centre = states.mean(dim=1, keepdim=True)
    scale = spread_scale * conformal_scale.to(states.dtype)[:, None]  # (J, 1)
    return centre + scale * (states - centre)


def keep_bones(scaled: torch.Tensor, original: torch.Tensor, parents: tuple[int, ...] | list[int]) -> torch.Tensor:
    """`scaled` hypotheses `(B, N, J, D)` (the last three of D are x, y, z) with each one's bone
    lengths set back to those of the same hypothesis in `original` (before any scaling), and each
    joint's mean over the hypotheses kept where `scaled` has it.

    A factor per joint on the offsets from the mean (the conformal scale, the radial shape, the
    out-of-domain widening) stretches bones: on a new subject, forearms up to 18 cm longer or shorter
    than in the same hypothesis unscaled. Here, from the root down the tree, each joint goes to the
    point at its own bone's length from its (already placed) parent that is nearest its scaled
    position: the spread comes from where the bones point, not from how long they are. Placing
    pulls a joint's hypotheses in towards its parent, which moves their mean (the pose, 1 mm MPJPE
    worse there); one shift per joint, the same for all hypotheses, puts the mean back exactly, so
    a bone then differs from its own length by the difference of two such shifts (at most 17 mm
    there, against 18 cm scaled). `calibrate` fits the conformal scale through this step
    (`conformal_scale_keeping_bones`), so the coverage it states holds."""
    xyz, source = scaled[..., -3:], original[..., -3:]
    placed = xyz.clone()
    for j, p in enumerate(parents):
        if p < 0:
            continue
        if p >= j:
            raise ValueError(f"joint {j}'s parent {p} does not come before it: keep_bones needs parents first")
        length = torch.linalg.vector_norm(source[..., j, :] - source[..., p, :], dim=-1, keepdim=True)
        towards = xyz[..., j, :] - placed[..., p, :]
        placed[..., j, :] = placed[..., p, :] + length * towards / torch.linalg.vector_norm(
            towards, dim=-1, keepdim=True).clamp_min(1e-12)
    placed = placed - placed.mean(dim=1, keepdim=True) + xyz.mean(dim=1, keepdim=True)
    return torch.cat([scaled[..., :-3], placed], dim=-1)


def hypothesis_radii(offsets: torch.Tensor | np.ndarray) -> tuple:
    """Each hypothesis' 3D distance from the mean `(B, N, J)` and its RMS over the hypotheses `(B, 1, J)`
    of offsets `(B, N, J, D)` from the mean (the last three of D are x, y, z); torch or numpy."""
    dist = (offsets[..., -3:] ** 2).sum(-1) ** 0.5
    return dist, (dist**2).mean(1, keepdims=True) ** 0.5


def fit_radial_map(hypotheses: np.ndarray, truth: np.ndarray, knots: int = RADIAL_KNOTS) -> tuple[np.ndarray, np.ndarray]:
    """The radial shape calibration: knots (from, to) `(K,)` of a monotone map of a hypothesis'
    distance from the mean, in units of the frame and joint's RMS distance, onto the truth's.

    Quantile recalibration (Kuleshov et al., ICML 2018) of the radial distribution: `from` are
    quantiles of the hypotheses' radii `u` and `to` the same quantiles of the truth's radius `r`,
    pooled over frames and the joints given (`hypotheses (F, N, J, 3)`, `truth (F, J, 3)`). Mapping
    each hypothesis' radius through it (`reshape_hypotheses`) gives the hypotheses the radial
    distribution of the errors: the field's quantile calibration at every level, where one scale
    factor (`conformal_scale`) can match only one level. The first knot is (0, 0)."""
    h = np.asarray(hypotheses, np.float64)
    centre = h.mean(1, keepdims=True)
    dist, rms = hypothesis_radii(h - centre)
    rms = np.maximum(rms, 1e-12)
    u = (dist / rms).ravel()
    r = (np.linalg.norm(np.asarray(truth, np.float64) - centre[:, 0], axis=-1) / rms[:, 0]).ravel()
    levels = np.linspace(0.0, RADIAL_TOP_LEVEL, knots)[1:]
    source = np.concatenate([[0.0], np.quantile(u, levels)])
    target = np.concatenate([[0.0], np.quantile(r, levels)])
    # strictly increasing (ties in u would make the map a step)
    source = np.maximum.accumulate(source + np.arange(knots) * 1e-9)
    target = np.maximum.accumulate(target)
    return source, target


def identity_radial_map(knots: int = RADIAL_KNOTS) -> torch.Tensor:
    """`(2, K)` knots of the map that leaves every radius as it is."""
    line = torch.linspace(0.0, 4.0, knots)
    return torch.stack([line, line])


def reshape_hypotheses(states: torch.Tensor, radial_map: torch.Tensor) -> torch.Tensor:
    """Hypotheses `(B, N, J, D)` with each one's offset from the mean rescaled so its radius `u` (in
    units of the RMS radius) becomes the map's value (`fit_radial_map`; `(2, K)` knots, linear in
    between, proportional beyond the last), then all of a frame and joint's offsets by one factor
    that keeps their RMS radius: the map changes the shape, never the mean (the pose) nor the
    spread (so the conformal ball of any N keeps its coverage; the errors' radii have an RMS of
    about one spread once the conformal scale is fitted, so the shape's quantiles still hold)."""
    source, target = radial_map.to(states.dtype)
    if torch.equal(source, target):  # the identity (every bundle without a fitted shape): nothing to do
        return states
    centre = states.mean(dim=1, keepdim=True)
    offsets = states - centre
    dist, rms = hypothesis_radii(offsets)
    u = dist / rms.clamp_min(1e-12)
    i = torch.searchsorted(source, u.contiguous()).clamp(1, len(source) - 1)
    lo, hi = source[i - 1], source[i]
    inside = target[i - 1] + (u - lo) / (hi - lo) * (target[i] - target[i - 1])
    mapped = torch.where(u > source[-1], u * (target[-1] / source[-1]), inside)
    factor = torch.where(u > 0, mapped / u.clamp_min(1e-12), torch.zeros_like(u))
    moved = offsets * factor[..., None]
    moved = moved - moved.mean(dim=1, keepdim=True)
    _, rms_after = hypothesis_radii(moved)
    return centre + moved * (rms / rms_after.clamp_min(1e-12))[..., None]


def ball_coverage(mean: np.ndarray, spread: np.ndarray, truth: np.ndarray, level: float = CONFORMAL_LEVEL) -> float:
    """Share of (frame, joint) truths within `gaussian_ball_radius(level)` spreads of the mean."""
    return float(np.mean(nonconformity(mean, spread, truth) <= gaussian_ball_radius(level)))


def reliability_diagram(path: str | Path, curves: dict[str, np.ndarray], title: str,
                        levels: np.ndarray = QUANTILE_LEVELS) -> Path:
    """A PNG of frequency against level per curve, beside the diagonal a calibrated model follows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from diffpose3d.io.atomic import atomic_write

    fig = Figure(figsize=(4.5, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls="--", label="calibrated")
    for name, curve in curves.items():
        ax.plot(levels, curve, marker="o", ms=3, label=f"{name} (ECE {expected_calibration_error(curve, levels):.3f})")
    ax.set_xlabel("quantile level q")
    ax.set_ylabel("frequency of the truth within the q-quantile")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png")
    return path
