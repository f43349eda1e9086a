"""Detector-like 2D evidence for datasets that only have ground-truth 2D keypoints.

A seeded generator draws, per frame and joint, the modes a 2D detector's heatmap would show:
- localisation error: every mode centre is the true position plus `N(0, noise_px^2)` per axis, or
  (`relative_noise`) a per-joint error in units of the person's 2D size, with a share of gross
  errors (`outlier_prob`, `outlier_scale` times larger);
- left/right confusion: with probability `swap_prob` per frame and left/right pair, both joints of
  the pair are swapped: the dominant mode (weight `1 - secondary_weight`) sits at the mirrored
  joint and the true position survives as a secondary mode (weight `secondary_weight`), so the
  detector's argmax is wrong at rate `swap_prob` while the evidence still covers the truth;
- occlusion: with probability `occlusion_prob` per joint, its modes (spread and localisation
  error) are broadened by `occlusion_scale`.
Each mode is an isotropic Gaussian of standard deviation `min_std_px` (times the occlusion factor).

Two outputs of the same draws (`draw_modes`):
- `synthetic_heatmaps`: heatmaps `(T, J, H, W)` on a square crop around the person plus the
  crop-to-image affine `(T, 2, 3)`, ready for `evidence.heatmaps.heatmaps_to_gmm` (each heatmap pixel holds
  the mixture's probability mass over that pixel, normalised to a peak of 1);
- `synthetic_gmm`: the fast path for training sets, the mixture itself in pixels. It equals the
  heatmap path's fit in expectation: the fit recovers the same modes and weights, up to one heatmap
  pixel's quantisation variance and truncation at the crop border.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from diffpose3d.config import SyntheticDetectorConfig
from diffpose3d.mixtures.gmm import GaussianMixture


@dataclass
class DetectorModes:
    """Two modes per joint, the dominant first: centres `(T, J, 2, 2)` px, stds `(T, J, 2)` px,
    weights `(T, J, 2)` (the second is 0, at the first's centre, unless swapped); `swapped (T, P)`,
    `occluded (T, J)`."""

    centres: torch.Tensor
    stds: torch.Tensor
    weights: torch.Tensor
    swapped: torch.Tensor
    occluded: torch.Tensor


def _pairs(pairs: Any) -> tuple[list[int], list[int]]:
    if hasattr(pairs, "left") and hasattr(pairs, "right"):
        left, right = pairs.left, pairs.right
    else:
        left, right = pairs
    left, right = [int(i) for i in left], [int(i) for i in right]
    if len(left) != len(right):
        raise ValueError("left and right joint lists differ in length")
    return left, right


def draw_modes(
    keypoints: torch.Tensor | np.ndarray,
    pairs: Any,
    config: SyntheticDetectorConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    seed: int = 0,
) -> DetectorModes:
    """Draw the detector's modes for GT keypoints `(T, J, 2)` px; `pairs` is `(left, right)` index
    lists or a `Skeleton`. All randomness comes from `generator` (or a CPU one seeded by `seed`)."""
    cfg = config or SyntheticDetectorConfig()
    gt = torch.as_tensor(np.asarray(keypoints, dtype=np.float32))
    if gt.dim() != 3 or gt.shape[-1] != 2:
        raise ValueError(f"keypoints must be (T, J, 2), got {tuple(gt.shape)}")
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)
    t, j, _ = gt.shape
    left, right = _pairs(pairs)
    dev = gen.device
    swapped = torch.rand(t, len(left), generator=gen, device=dev) < cfg.swap_prob
    occluded = torch.rand(t, j, generator=gen, device=dev) < cfg.occlusion_prob
    noise = torch.randn(t, j, 2, 2, generator=gen, device=dev)
    swapped, occluded, noise = swapped.cpu(), occluded.cpu(), noise.cpu()

    mirror = torch.arange(j).repeat(t, 1)  # (T, J): where each joint's dominant mode sits
    is_swapped = torch.zeros(t, j, dtype=torch.bool)
    for p, (a, b) in enumerate(zip(left, right)):
        mirror[:, a] = torch.where(swapped[:, p], b, a)
        mirror[:, b] = torch.where(swapped[:, p], a, b)
        is_swapped[:, a] |= swapped[:, p]
        is_swapped[:, b] |= swapped[:, p]
    scale = torch.where(occluded, cfg.occlusion_scale, 1.0)  # (T, J)
    dominant = gt.gather(1, mirror.unsqueeze(-1).expand(t, j, 2))
    noise_px, spread_px = joint_noise_px(gt, cfg)  # (T, J) each
    error = noise_px * scale
    if cfg.outlier_prob > 0:
        outlier = (torch.rand(t, j, generator=gen, device=dev) < cfg.outlier_prob).cpu()
        error = torch.where(outlier, error * cfg.outlier_scale, error)
    centres = torch.stack([dominant, gt], 2) + noise * error[..., None, None]
    # An unswapped joint has one mode: its unused second slot repeats the first. (A second noisy
    # draw around the truth there would hand the model a free, independent measurement of it.)
    centres[:, :, 1] = torch.where(is_swapped[..., None], centres[:, :, 1], centres[:, :, 0])
    stds = (spread_px * scale).unsqueeze(-1).expand(t, j, 2).clone()
    sw = cfg.secondary_weight
    weights = torch.stack([torch.where(is_swapped, 1.0 - sw, 1.0), torch.where(is_swapped, sw, 0.0)], -1)
    return DetectorModes(centres, stds, weights, swapped, occluded)


def joint_noise_px(keypoints: torch.Tensor, cfg: SyntheticDetectorConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Per frame and joint `(T, J)`: the localisation error's standard deviation and a mode's spread,
    in pixels. Absolute (`noise_px`, `min_std_px`), or with `relative_noise` per joint in units of
    the person's 2D RMS radius (so the detector errs alike on a small and a large person), the
    mode as broad as the error it stands for (at least `min_std_px`)."""
    t, j = keypoints.shape[:2]
    if not cfg.relative_noise:
        return torch.full((t, j), cfg.noise_px), torch.full((t, j), cfg.min_std_px)
    if len(cfg.relative_noise) != j:
        raise ValueError(f"evidence.synthetic.relative_noise has {len(cfg.relative_noise)} values for {j} joints")
    finite = torch.isfinite(keypoints).all(-1, keepdim=True)
    kp = torch.where(finite, keypoints, torch.zeros_like(keypoints))
    n = finite.sum(1).clamp_min(1)
    centre = kp.sum(1, keepdim=True) / n[:, None]
    radius = (((kp - centre) * finite).square().sum(-1).sum(1) / n[:, 0]).sqrt()  # (T,)
    noise = radius[:, None] * torch.tensor(cfg.relative_noise, dtype=kp.dtype)
    return noise, noise.clamp_min(cfg.min_std_px)


def modes_to_gmm(modes: DetectorModes, num_components: int = 2) -> GaussianMixture:
    """The modes as a pixel-space mixture `(T, J, M, 2)`; components beyond 2 get zero weight."""
    t, j = modes.weights.shape[:2]
    m = max(num_components, 1)
    weights, means, stds = modes.weights, modes.centres, modes.stds
    if m < 2:
        weights, means, stds = torch.ones(t, j, 1), means[:, :, :1], stds[:, :, :1]
    elif m > 2:
        pad = m - 2
        weights = torch.cat([weights, torch.zeros(t, j, pad)], -1)
        means = torch.cat([means, means[:, :, :1].expand(t, j, pad, 2)], 2)
        stds = torch.cat([stds, stds[:, :, :1].expand(t, j, pad)], 2)
    cov = (stds**2)[..., None, None] * torch.eye(2)
    return GaussianMixture(weights.contiguous(), means.contiguous(), cov.contiguous())


def synthetic_gmm(
    keypoints: torch.Tensor | np.ndarray,
    pairs: Any,
    config: SyntheticDetectorConfig | None = None,
    *,
    seed: int = 0,
    generator: torch.Generator | None = None,
    num_components: int = 2,
) -> GaussianMixture:
    """Fast path: the synthetic detector's 2D mixture `(T, J, M, 2)` in **pixels**, no heatmaps."""
    return modes_to_gmm(draw_modes(keypoints, pairs, config, generator=generator, seed=seed), num_components)


def crop_affine(keypoints: torch.Tensor, config: SyntheticDetectorConfig) -> torch.Tensor:
    """Per-frame square crop around the finite keypoints -> affine `(T, 2, 3)` heatmap px -> image px."""
    wh, hh = config.heatmap_size
    finite = torch.isfinite(keypoints).all(-1, keepdim=True)
    lo = torch.where(finite, keypoints, torch.full_like(keypoints, math.inf)).amin(1)
    hi = torch.where(finite, keypoints, torch.full_like(keypoints, -math.inf)).amax(1)
    ok = torch.isfinite(lo).all(-1, keepdim=True)
    lo, hi = torch.where(ok, lo, torch.zeros_like(lo)), torch.where(ok, hi, torch.zeros_like(hi))
    centre = (lo + hi) / 2
    side = ((hi - lo).amax(-1) * (1 + 2 * config.crop_margin)).clamp_min(config.min_crop_px)  # (T,)
    s = side / max(wh, hh)  # image pixels per heatmap pixel (square pixels)
    x0 = centre[:, 0] - s * wh / 2
    y0 = centre[:, 1] - s * hh / 2
    zero = torch.zeros_like(s)
    return torch.stack([torch.stack([s, zero, x0 + 0.5 * s], -1), torch.stack([zero, s, y0 + 0.5 * s], -1)], 1)


def render_heatmaps(modes: DetectorModes, affine: torch.Tensor, heatmap_size: tuple[int, int]) -> torch.Tensor:
    """Probability mass of each joint's modes over the heatmap pixels `(T, J, H, W)` (peak 1)."""
    wh, hh = heatmap_size
    s = affine[:, 0, 0][:, None, None]  # (T, 1, 1)
    # Mode centres and spreads in heatmap pixel units (pixel c covers [c - 1/2, c + 1/2]).
    cx = (modes.centres[..., 0] - affine[:, 0, 2][:, None, None]) / s
    cy = (modes.centres[..., 1] - affine[:, 1, 2][:, None, None]) / s
    sd = modes.stds / s

    def mass(centre: torch.Tensor, n: int) -> torch.Tensor:  # (T, J, 2) -> (T, J, 2, n)
        edges = torch.arange(n + 1, dtype=centre.dtype) - 0.5
        z = (edges - centre.unsqueeze(-1)) / (sd.unsqueeze(-1) * math.sqrt(2))
        cdf = 0.5 * (1 + torch.erf(z))
        return cdf[..., 1:] - cdf[..., :-1]

    mx, my = mass(cx, wh), mass(cy, hh)
    hm = torch.einsum("tjm,tjmy,tjmx->tjyx", modes.weights, my, mx)
    peak = hm.amax(dim=(-1, -2), keepdim=True)
    return torch.where(peak > 0, hm / peak.clamp_min(1e-30), hm)


def synthetic_heatmaps(
    keypoints: torch.Tensor | np.ndarray, modes: DetectorModes, config: SyntheticDetectorConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The heatmaps `(T, J, H, W)` of drawn `modes` on a square crop around the GT `keypoints`, and
    the crop-to-image affines `(T, 2, 3)`."""
    cfg = config or SyntheticDetectorConfig()
    affine = crop_affine(torch.as_tensor(np.asarray(keypoints, dtype=np.float32)), cfg)
    return render_heatmaps(modes, affine, cfg.heatmap_size), affine
