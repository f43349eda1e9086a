"""Per joint, how far the 3D pose misses its own 2D evidence: a signal that sees a joint the 2D
puts elsewhere than the model's prior does.

The frame-level signals (`uncertainty.ood`) look at the whole pose and miss a shift of one joint: a
rig that defines a joint elsewhere (HumanEva-I's hips sit 6.8 cm from its pelvis, Human3.6M's
13.3 cm) or a detector's systematic offset. The lifter then puts the joint where its training had
it, is sure of it, and its 3D no longer projects onto the 2D there.

`excess_miss` fits the pose's root translation to the 2D through a pinhole camera
(`scene.root.solve_root`, the joints weighted by their evidence's precision), projects, and
measures per joint the distance from the evidence in metres at the root's depth, less what the
evidence's own spread explains (in quadrature): zero where the 2D and the 3D agree within the
2D's noise. A 2D source the model trained on misses in its own way (a detector that defines the
spine elsewhere, which the model learned): `fit_tolerance` measures, per joint, what held-out
frames of that source miss, and the miss counts only beyond it (in quadrature; `diffpose3d
fit-miss` stores it per 2D layout in the bundle's out-of-domain model). A joint that misses in
most frames of a sequence is put elsewhere by definition, and its 3D is as far off in the frames
whose view hides the miss (a hip set closer to the pelvis does not show from the side):
`sequence_floor` raises each frame's miss to the sequence's median. `widening_factors` turns it
into a per-joint factor for the hypotheses' spread, `sqrt(1 + (k m / s)^2)`: the spread `s` grows
in quadrature by `k` times the miss `m` (what it measures: `docs/EXPERIMENTS.md`).
"""

from __future__ import annotations

import numpy as np

from diffpose3d.mixtures.gmm import GaussianMixture
from diffpose3d.scene.root import solve_root


def excess_miss(pose: np.ndarray, keypoints_uv: np.ndarray, uv_gmm: GaussianMixture, focal: np.ndarray,
                tolerance: np.ndarray | None = None) -> np.ndarray:
    """Per frame and joint `(F, J)` the metres by which root-relative `pose (F, J, 3)` misses its 2D
    `keypoints_uv (F, J, 2)` (the model's uv: the image centre at 0, `focal (F,)` = f / (w / 2)),
    beyond its evidence `uv_gmm`'s RMS radius and then beyond `tolerance (J,)` metres (both in
    quadrature); 0 where no root could be fitted."""
    focal = np.asarray(focal, np.float64)[:, None, None]
    xy = np.asarray(keypoints_uv, np.float64) / focal  # normalised image coordinates
    radius = np.sqrt(2.0) * uv_gmm.spread().double().numpy() / focal[..., 0]  # RMS 2D radius, same units
    weights = 1.0 / np.maximum(radius, 1e-4) ** 2
    root = solve_root(pose, xy, weights, 1.0, (0.0, 0.0))  # (F, 3)
    placed = np.asarray(pose, np.float64) + root[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        miss = np.linalg.norm(placed[..., :2] / placed[..., 2:3] - xy, axis=-1)
        excess = _beyond(miss, radius) * root[:, None, 2]
    excess = np.where(np.isfinite(excess), excess, 0.0)
    return excess if tolerance is None else _beyond(excess, np.asarray(tolerance, np.float64))


def _beyond(value: np.ndarray, allowance: np.ndarray) -> np.ndarray:
    """What of `value` is left beyond `allowance`, in quadrature (0 within it)."""
    return np.sqrt(np.clip(value**2 - allowance**2, 0.0, None))


def fit_tolerance(miss: np.ndarray, quantile: float = 0.97) -> np.ndarray:
    """Per joint `(J,)` the `quantile` of held-out frames' misses `(F, J)` (`excess_miss` without a
    tolerance): what the model's own 2D source leaves unexplained on frames like its training's."""
    return np.quantile(np.asarray(miss, np.float64), quantile, axis=0)


def sequence_floor(miss: np.ndarray, sequences: list[np.ndarray]) -> np.ndarray:
    """`miss (F, J)` with each frame's value raised, per joint, to its median over the frame's
    sequence (`sequences`: each sequence's rows); a frame alone is its own sequence, so a photo's
    miss is unchanged, and a miss in a few frames (a detector's slip) stays in those frames."""
    out = np.array(miss, np.float64, copy=True)
    for rows in sequences:
        rows = np.asarray(rows)
        if len(rows):
            out[rows] = np.maximum(out[rows], np.median(out[rows], axis=0))
    return out


def widening_factors(miss: np.ndarray, spread: np.ndarray, strength: float) -> np.ndarray:
    """Per frame and joint `(F, J)` the factor that grows `spread (F, J)` in quadrature by `strength`
    times `miss (F, J)` (both metres): 1 where the miss is 0."""
    ratio = strength * np.asarray(miss) / np.maximum(np.asarray(spread), 1e-9)
    return np.sqrt(1.0 + ratio**2)
