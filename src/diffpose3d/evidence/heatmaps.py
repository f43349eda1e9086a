"""2D evidence of H_K: per-joint heatmaps (or keypoints + confidence) -> per-joint GMM over (u, v).

Heatmaps `(T, J, H, W)` come with a per-frame affine `(T, 2, 3)` that maps a heatmap pixel centre
`(col, row, 1)` to image pixels `(x, y)` (the inverse of the detector's crop). Each joint's heatmap
is treated as a distribution over positions: its `top_k` strongest pixels (and only those above
`threshold * peak`) become weighted samples at their centres, mapped to normalised image
coordinates `uv = xy / w * 2 - [1, h / w]`, and batched EM fits the mixture. The variance of a
uniform position within one heatmap pixel is added to every covariance, so a one-pixel peak still
gives a proper Gaussian. EM splits one peak into several components about a heatmap pixel apart;
those are merged back into one per mode (`mixtures.gmm.merge_close_components`), so the heaviest component
is the peak and the second one another peak, as in the synthetic detector's mixtures. A flat,
all-zero or non-finite heatmap carries no evidence: it becomes one broad component with the
moments of a uniform position over the whole image.
"""

from __future__ import annotations

import numpy as np
import torch

from diffpose3d.cameras import normalize_screen_coordinates, uv_per_pixel
from diffpose3d.evidence.mixture2d import broad_mixture
from diffpose3d.mixtures.em import fit_gmm
from diffpose3d.mixtures.gmm import MERGE_WITHIN, GaussianMixture, merge_close_components


def heatmaps_to_gmm(
    heatmaps: torch.Tensor | np.ndarray,
    affine: torch.Tensor | np.ndarray,
    image_size: tuple[int, int],
    num_components: int = 5,
    *,
    top_k: int = 128,
    threshold: float = 0.02,
    flat_tol: float = 1e-3,
    covariance: str = "full",
    max_iter: int = 100,
    tol: float = 1e-3,
    seed: int = 0,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
    merge_within: float | None = MERGE_WITHIN,
) -> GaussianMixture:
    """Fit one mixture per joint: heatmaps `(T, J, H, W)` + affines `(T, 2, 3)` -> `(T, J, M, 2)` in uv.

    Negative values count as zero. A heatmap whose peak-to-trough range is below `flat_tol` times
    its peak (or that is all zero / non-finite) becomes `mixture2d.broad_mixture`. Components within
    `merge_within` standard deviations are merged (None: EM's components as they are); components
    are sorted by weight.
    """
    hm = torch.as_tensor(heatmaps)
    hm = hm.float() if not hm.is_floating_point() else hm
    aff = torch.as_tensor(affine, dtype=hm.dtype, device=hm.device)
    if hm.dim() != 4:
        raise ValueError(f"heatmaps must be (T, J, H, W), got {tuple(hm.shape)}")
    t, j, hh, ww = hm.shape
    if aff.shape != (t, 2, 3):
        raise ValueError(f"affine must be ({t}, 2, 3), got {tuple(aff.shape)}")
    flat = torch.nan_to_num(hm, nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0).reshape(t * j, hh * ww)
    peak = flat.amax(-1)
    trough = flat.amin(-1)
    no_evidence = (peak <= 0) | (peak - trough <= flat_tol * peak)

    k = min(top_k, hh * ww)
    vals, idx = flat.topk(k, dim=-1)  # (B, k)
    vals = torch.where(vals >= threshold * peak.unsqueeze(-1), vals, torch.zeros_like(vals))
    vals = torch.where(no_evidence.unsqueeze(-1), torch.ones_like(vals), vals)  # fitted, then replaced
    cols = (idx % ww).to(hm.dtype)
    rows = torch.div(idx, ww, rounding_mode="floor").to(hm.dtype)
    a = aff.repeat_interleave(j, dim=0)  # (B, 2, 3)
    x = a[:, 0, :1] * cols + a[:, 0, 1:2] * rows + a[:, 0, 2:3]
    y = a[:, 1, :1] * cols + a[:, 1, 1:2] * rows + a[:, 1, 2:3]
    uv = normalize_screen_coordinates(torch.stack([x, y], -1), *image_size)  # (B, k, 2)
    # Variance of a uniform position inside one heatmap pixel, in uv units (axis-aligned part).
    lin = a[:, :, :2] * uv_per_pixel(image_size[0])
    pixel_var = (lin**2).sum(-1) / 12.0  # (B, 2)

    gmm, _ = fit_gmm(
        uv, vals, num_components, covariance=covariance, max_iter=max_iter, tol=tol,
        reg_covar_abs=pixel_var, generator=generator, seed=seed, chunk_size=chunk_size,
    )
    broad = broad_mixture((t * j,), image_size[1] / image_size[0], num_components, dtype=hm.dtype, device=hm.device)
    if merge_within is not None:
        gmm = merge_close_components(gmm, merge_within)
    gmm = gmm.where(no_evidence, broad)
    return gmm.reshape(t, j)
