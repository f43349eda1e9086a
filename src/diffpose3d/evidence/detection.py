"""A 2D detector's result for one image as per-joint 2D evidence: its heatmaps fitted by EM (or
its keypoints + confidence), weighed by the detector's visibility."""

from __future__ import annotations

import numpy as np
import torch

from diffpose3d.config import SyntheticDetectorConfig
from diffpose3d.evidence.mixture2d import broad_mixture
from diffpose3d.mixtures.gmm import GaussianMixture, top_components

MAX_COMPONENTS = 5  # M of the per-joint 2D mixtures
# An occluded joint is broadened as the synthetic detector the models are trained with broadens it.
OCCLUSION_SCALE = SyntheticDetectorConfig().occlusion_scale


def with_visibility(gmm: GaussianMixture, visibility: np.ndarray, scale: float = OCCLUSION_SCALE) -> GaussianMixture:
    """Weigh heatmap evidence by the detector's visibility: with probability `c` the joint is where
    its heatmap says; otherwise (occluded, out of frame) the same modes, `scale` times broader."""
    c = torch.as_tensor(visibility, dtype=gmm.weights.dtype).clamp(0.0, 1.0).unsqueeze(-1)
    return GaussianMixture(
        torch.cat([gmm.weights * c, gmm.weights * (1 - c)], -1),
        torch.cat([gmm.means, gmm.means], -2),
        torch.cat([gmm.covariances, gmm.covariances * scale**2], -3),
    )


def detection_evidence(detection, image_size: tuple[int, int], num_joints: int) -> tuple[GaussianMixture, np.ndarray]:
    """One `detect.Detection` (or None: nobody found) -> ((1, J, M, 2) mixture, (1, J) confidence).
    Without a detection every joint gets the broad mixture and confidence 0, as a joint of
    confidence 0 does."""
    from diffpose3d.evidence.heatmaps import heatmaps_to_gmm
    from diffpose3d.evidence.mixture2d import keypoints_to_gmm

    w, h = image_size
    if detection is None:
        return broad_mixture((1, num_joints), h / w), np.zeros((1, num_joints), np.float32)
    conf = np.asarray(detection.confidence, np.float32)[None]
    if detection.heatmaps is not None and detection.heatmap_to_image is not None:
        gmm = heatmaps_to_gmm(detection.heatmaps[None], detection.heatmap_to_image[None], image_size)
        gmm = top_components(with_visibility(gmm, conf), MAX_COMPONENTS)
    else:
        gmm = keypoints_to_gmm(detection.keypoints[None], conf, image_size)
    return gmm, conf
