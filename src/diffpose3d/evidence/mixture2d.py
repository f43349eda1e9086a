"""Per-joint 2D mixtures over (u, v): the shared vocabulary of every evidence source.

- `broad_mixture`: the one "no evidence" mixture (a joint with confidence 0, a joint the input
  layout lacks, a frame where no person was found): the moments of a uniform position over the
  whole image;
- `point_mixture`: the one keypoint-to-Gaussian (an isotropic component at each keypoint);
  `keypoints_to_gmm`: a detector's keypoints + confidence as such mixtures;
- `mixture_to_uv` / `mixture_to_pixels`: means and covariances between pixels and the normalised
  screen frame (`cameras.normalize_screen_coordinates`);
- `map_gmm`: carry mixtures to another joint layout; `top_mode`: the detector's keypoint (the mean
  of the heaviest component); `stack_mixtures`: frames with different M into one batch.
"""

from __future__ import annotations

import numpy as np
import torch

from diffpose3d.cameras import image_coordinates, normalize_screen_coordinates, uv_per_pixel
from diffpose3d.errors import ConfigError
from diffpose3d.mixtures.gmm import GaussianMixture, top_components
from diffpose3d.skeleton import mapping_indices


def top_mode(gmm: GaussianMixture) -> torch.Tensor:
    """Mean of each joint's heaviest component: (..., M, 2) mixtures -> (..., 2)."""
    best = gmm.weights.argmax(dim=-1)
    index = best[..., None, None].expand(*best.shape, 1, gmm.means.shape[-1])
    return gmm.means.gather(-2, index).squeeze(-2)


def mixture_to_uv(gmm: GaussianMixture, width: int, height: int) -> GaussianMixture:
    """Means and covariances from pixels to the normalised screen frame."""
    return GaussianMixture(gmm.weights, normalize_screen_coordinates(gmm.means, width, height),
                           gmm.covariances * uv_per_pixel(width) ** 2)


def mixture_to_pixels(gmm: GaussianMixture, width: int, height: int) -> GaussianMixture:
    """Inverse of `mixture_to_uv`."""
    return GaussianMixture(gmm.weights, image_coordinates(gmm.means, width, height),
                           gmm.covariances * (width / 2.0) ** 2)


def broad_mixture(
    batch_shape: tuple[int, ...], aspect: float | torch.Tensor, num_components: int = 1,
    dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
) -> GaussianMixture:
    """'Anywhere in the image': the moments of a uniform position over an image of aspect ratio
    `aspect` = height / width, in uv (u spans [-1, 1], v spans [-aspect, aspect]); `aspect` may be
    a tensor `(B,)` of one aspect per frame (the first batch dimension).

    Component 0 carries all the weight; the others (if any) are zero-weight copies so that every
    joint has the same number of components.
    """
    weights = torch.zeros(*batch_shape, num_components, dtype=dtype, device=device)
    weights[..., 0] = 1.0
    means = torch.zeros(*batch_shape, num_components, 2, dtype=dtype, device=device)
    a = torch.as_tensor(aspect, dtype=dtype, device=device)
    a = a.reshape(a.shape + (1,) * (len(batch_shape) - a.dim())).expand(batch_shape)
    var = torch.stack([torch.full_like(a, 1.0 / 3.0), a**2 / 3.0], -1)  # (2 ext)^2 / 12
    cov = torch.diag_embed(var).unsqueeze(-3).expand(*batch_shape, num_components, 2, 2).clone()
    return GaussianMixture(weights, means, cov)


def fill_missing(keypoints_uv: torch.Tensor, missing: torch.Tensor, parents: tuple[int, ...] | list[int]) -> torch.Tensor:
    """The keypoints `(B, J, 2)` a lifter sees for joints without evidence (`missing (B, J)`): the
    nearest present ancestor's position (the present joints' centroid for the root)."""
    if not bool(missing.any()):
        return keypoints_uv
    kp = keypoints_uv.clone()
    present = ~missing
    centroid = (kp * present[..., None]).sum(1) / present.sum(1, keepdim=True).clamp_min(1)
    for j in range(kp.shape[1]):  # parents come before children in every layout
        p = parents[j]
        fill = centroid if p < 0 else kp[:, p]
        kp[:, j] = torch.where(missing[:, j, None], fill, kp[:, j])
    return kp


def point_mixture(keypoints_uv: torch.Tensor, std: float | torch.Tensor, num_components: int = 1) -> GaussianMixture:
    """One isotropic Gaussian of standard deviation `std` (uv units: one float, or one per keypoint
    `(...)`) at each keypoint `(..., 2)` -> `(..., M, 2)`. The one keypoint-to-Gaussian: components
    after the first (`num_components > 1`) are zero-weight copies, so the layout matches mixtures
    with more components."""
    shape = keypoints_uv.shape[:-1]
    weights = torch.zeros(*shape, num_components)
    weights[..., 0] = 1.0
    var = (std**2)[..., None, None, None] if isinstance(std, torch.Tensor) else std**2
    cov = (torch.eye(2) * var).expand(*shape, num_components, 2, 2)
    means = keypoints_uv.unsqueeze(-2).expand(*shape, num_components, 2)
    return GaussianMixture(weights, means.clone(), cov.clone())


def keypoints_to_gmm(
    keypoints: torch.Tensor | np.ndarray, confidence: torch.Tensor | np.ndarray, image_size: tuple[int, int],
    *, min_std_px: float = 2.0, num_components: int = 1,
) -> GaussianMixture:
    """Stand-in 2D evidence when a detector gives only keypoints `(T, J, 2)` px + confidence `(T, J)`.

    Not a fitted heatmap: `point_mixture` at the keypoint, with standard deviation
    `min_std_px / sqrt(confidence)` (a fully confident joint keeps `min_std_px`; the spread grows as
    confidence falls), its variance capped at the broad, whole-image u-variance. A joint with
    confidence 0 or NaN, or a NaN keypoint, gets `broad_mixture`. Output `(T, J, M, 2)` in uv.
    """
    kp = torch.as_tensor(np.asarray(keypoints, dtype=np.float32))
    conf = torch.as_tensor(np.asarray(confidence, dtype=np.float32))
    if kp.dim() != 3 or kp.shape[-1] != 2 or conf.shape != kp.shape[:2]:
        raise ValueError(f"need keypoints (T, J, 2) and confidence (T, J), got {tuple(kp.shape)}, {tuple(conf.shape)}")
    broad = broad_mixture(tuple(kp.shape[:2]), image_size[1] / image_size[0], num_components)
    missing = ~torch.isfinite(kp).all(-1) | ~torch.isfinite(conf) | (conf <= 0)
    c = torch.where(missing, torch.ones_like(conf), conf.clamp(max=1.0))
    std_uv = min_std_px / c.sqrt() * uv_per_pixel(image_size[0])
    point = point_mixture(normalize_screen_coordinates(torch.nan_to_num(kp), *image_size), std_uv, num_components)
    capped = torch.minimum(point.covariances, broad.covariances[..., :1, :1, :1])  # cap at the broad u-variance
    return GaussianMixture(point.weights, point.means, capped).where(missing, broad)


def map_gmm(gmm: GaussianMixture, src: str, dst: str, aspect: float, max_components: int | None = None) -> GaussianMixture:
    """Carry per-joint mixtures (T, J_src, M, 2) to another layout (T, J_dst, M, 2).

    A derived joint that is a weighted sum `sum_i w_i x_i` of source joints (`skeleton.mapping_table`)
    is, for independent sources, a mixture over all combinations of their components (weights
    multiply, means combine with the w_i, covariances with the w_i^2); the heaviest
    `max_components` combinations are kept. Joints the source lacks get the broad mixture of an
    image of aspect ratio `aspect` (height / width).
    """
    if src == dst:
        return gmm
    m = max_components or gmm.weights.shape[-1]
    try:
        table = mapping_indices(src, dst)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    t = gmm.weights.shape[0]
    ws, mus, covs = [], [], []
    for sources in table:
        if not sources:
            b = broad_mixture((t,), aspect, m)
            ws.append(b.weights), mus.append(b.means), covs.append(b.covariances)
            continue
        (j0, c0), rest = sources[0], sources[1:]
        w, mu, cov = gmm.weights[:, j0], c0 * gmm.means[:, j0], c0**2 * gmm.covariances[:, j0]
        for j, c in rest:
            w = (w[:, :, None] * gmm.weights[:, j][:, None, :]).flatten(1)
            mu = (mu[:, :, None] + c * gmm.means[:, j][:, None, :]).flatten(1, 2)
            cov = (cov[:, :, None] + c**2 * gmm.covariances[:, j][:, None, :]).flatten(1, 2)
            keep = w.topk(min(m, w.shape[1]), dim=1).indices
            w = w.gather(1, keep)
            mu = mu.gather(1, keep[..., None].expand(-1, -1, 2))
            cov = cov.gather(1, keep[..., None, None].expand(-1, -1, 2, 2))
        joint = top_components(GaussianMixture(w, mu, cov), m)
        ws.append(joint.weights), mus.append(joint.means), covs.append(joint.covariances)
    return GaussianMixture(torch.stack(ws, 1), torch.stack(mus, 1), torch.stack(covs, 1))


def stack_mixtures(mixtures: list[GaussianMixture]) -> GaussianMixture:
    """Concatenate per-frame mixtures (1, J, M_i, 2) along time, padding with empty components."""
    m = max(g.num_components for g in mixtures)
    return GaussianMixture.cat([top_components(g, m) for g in mixtures], dim=0)
