"""2D evidence for H_K: per-joint mixtures over (u, v) and the keypoints the context encoder sees.

Sources, all ending in the model's joint layout and normalised screen coordinates:
- `keypoints`: one tight component at the file's 2D keypoints (ground truth for the field's "GT 2D"
  setting, or a detector's keypoints such as CPN's);
- `synthetic`: detector-like multi-modal evidence made from the ground-truth 2D
  (`uncertainty.synthetic`), so training and tests exercise left/right confusion and occlusion;
- `gmm_file`: the per-joint mixtures of an authors'-layout `*_gmm.npz` (attached to the sequence),
  with components that split one mode merged back into one (as `heatmaps_to_gmm` does);
- `confidence`: keypoints + confidence from a detector or a keypoints file (a stand-in mixture whose
  spread follows the confidence, `uncertainty.heatmaps.keypoints_to_gmm`).
The encoder's keypoints are the mean of each joint's heaviest component (what a detector's argmax
would report).
"""

from __future__ import annotations

import numpy as np
import torch

from diffpose3d.cameras import normalize_screen_coordinates
from diffpose3d.config import EvidenceConfig
from diffpose3d.data.base import PoseSequence
from diffpose3d.errors import ConfigError
from diffpose3d.skeleton import Skeleton, mapping_indices
from diffpose3d.uncertainty.gmm import GaussianMixture, merge_close_components, top_components

BROAD_STD = 1.0  # normalised units: about half the image width, for joints with no evidence


def top_mode(gmm: GaussianMixture) -> torch.Tensor:
    """Mean of each joint's heaviest component: (..., M, 2) mixtures -> (..., 2)."""
    best = gmm.weights.argmax(dim=-1)
    index = best[..., None, None].expand(*best.shape, 1, gmm.means.shape[-1])
    return gmm.means.gather(-2, index).squeeze(-2)


def pixel_gmm_to_normalised(gmm: GaussianMixture, width: int, height: int) -> GaussianMixture:
    """Means and covariances from pixels to the normalised screen frame (scale 2 / w, shift)."""
    scale = 2.0 / width
    shift = torch.tensor([1.0, height / width], dtype=gmm.means.dtype)
    return GaussianMixture(gmm.weights, gmm.means * scale - shift, gmm.covariances * scale**2)


def broad_mixture(shape: tuple[int, ...], num_components: int = 1) -> GaussianMixture:
    """A mixture that says 'anywhere in the image': zero mean, BROAD_STD on both axes."""
    weights = torch.zeros(*shape, num_components)
    weights[..., 0] = 1.0
    means = torch.zeros(*shape, num_components, 2)
    cov = torch.eye(2).expand(*shape, num_components, 2, 2) * BROAD_STD**2
    return GaussianMixture(weights, means, cov.clone())


def map_gmm(gmm: GaussianMixture, src: str, dst: str, max_components: int | None = None) -> GaussianMixture:
    """Carry per-joint mixtures (T, J_src, M, 2) to another layout (T, J_dst, M, 2).

    A derived joint that is the mean of n source joints is, for independent sources, a mixture
    over all combinations of their components (weights multiply, means average, covariances sum
    divided by n^2); the heaviest `max_components` combinations are kept. Joints the source lacks
    get a broad component.
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
            b = broad_mixture((t,), m)
            ws.append(b.weights), mus.append(b.means), covs.append(b.covariances)
            continue
        w, mu, cov = gmm.weights[:, sources[0]], gmm.means[:, sources[0]], gmm.covariances[:, sources[0]]
        for j in sources[1:]:
            w = (w[:, :, None] * gmm.weights[:, j][:, None, :]).flatten(1)
            mu = (mu[:, :, None] + gmm.means[:, j][:, None, :]).flatten(1, 2)
            cov = (cov[:, :, None] + gmm.covariances[:, j][:, None, :]).flatten(1, 2)
            keep = w.topk(min(m, w.shape[1]), dim=1).indices
            w = w.gather(1, keep)
            mu = mu.gather(1, keep[..., None].expand(-1, -1, 2))
            cov = cov.gather(1, keep[..., None, None].expand(-1, -1, 2, 2))
        n = len(sources)
        joint = top_components(GaussianMixture(w, mu / n, cov / n**2), m)
        ws.append(joint.weights), mus.append(joint.means), covs.append(joint.covariances)
    return GaussianMixture(torch.stack(ws, 1), torch.stack(mus, 1), torch.stack(covs, 1))


def gt_mixture(keypoints_uv: torch.Tensor, std: float) -> GaussianMixture:
    shape = keypoints_uv.shape[:-1]
    weights = torch.ones(*shape, 1)
    cov = torch.eye(2).expand(*shape, 1, 2, 2) * std**2
    return GaussianMixture(weights, keypoints_uv.unsqueeze(-2).clone(), cov.clone())


def authors_gmm_to_mixture(gmm_2d: np.ndarray) -> GaussianMixture:
    """The authors' (T, J, K, 5) = [weight, mean u, mean v, var u, var v] (pixels) as a mixture."""
    g = torch.as_tensor(np.asarray(gmm_2d, dtype=np.float32))
    weights = g[..., 0] / g[..., 0].sum(-1, keepdim=True).clamp_min(1e-12)
    var = g[..., 3:5].clamp_min(1e-6)
    return GaussianMixture(weights, g[..., 1:3].clone(), torch.diag_embed(var))


def evidence_for_sequence(
    seq: PoseSequence, skeleton: Skeleton, cfg: EvidenceConfig, *, seed: int = 0
) -> tuple[torch.Tensor, GaussianMixture]:
    """(keypoints_uv (T, J, 2), uv mixture (T, J, M, 2)) for one sequence, in the model's layout."""
    w, h = seq.image_size
    if seq.skeleton != skeleton.name and cfg.source in ("keypoints", "synthetic"):
        raise ConfigError(
            f"{seq.key}: the data's joint layout is {seq.skeleton}, the model's is {skeleton.name} "
            "(use a model trained on this dataset's layout)"
        )
    if cfg.source == "keypoints":
        kp = torch.as_tensor(normalize_screen_coordinates(seq.keypoints_2d, w, h), dtype=torch.float32)
        return kp, gt_mixture(kp, cfg.min_std_px * 2.0 / w)
    if cfg.source == "synthetic":
        from diffpose3d.uncertainty.synthetic import synthetic_gmm

        gmm_px = synthetic_gmm(seq.keypoints_2d, (skeleton.left, skeleton.right), cfg, seed=seed)
        gmm = pixel_gmm_to_normalised(gmm_px, w, h)
    elif cfg.source == "gmm_file":
        if seq.gmm_2d is None:
            raise ConfigError(f"evidence.source is gmm_file but {seq.key} has no attached GMM (give the GMM file)")
        gmm = pixel_gmm_to_normalised(authors_gmm_to_mixture(seq.gmm_2d), w, h)
        gmm = map_gmm(merge_close_components(gmm), seq.skeleton, skeleton.name)
    elif cfg.source == "confidence":
        from diffpose3d.uncertainty.heatmaps import keypoints_to_gmm

        conf = seq.confidence if seq.confidence is not None else np.ones(seq.keypoints_2d.shape[:2], np.float32)
        gmm = keypoints_to_gmm(seq.keypoints_2d, conf, (w, h))
        gmm = map_gmm(gmm, seq.skeleton, skeleton.name)
    else:
        raise ConfigError(f"unknown evidence source '{cfg.source}' (keypoints | synthetic | gmm_file | confidence)")
    return top_mode(gmm), gmm
