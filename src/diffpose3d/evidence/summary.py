"""A per-joint summary of the 2D evidence, for g to condition on (`model.evidence_features`).

The context encoder sees only each joint's top 2D mode; g sees one draw of H_K per hypothesis. What
neither sees directly is how far to trust a joint's 2D: how broad its evidence is and where its
second mode lies (the other side of a left/right confusion). These channels give g that per joint.
"""

from __future__ import annotations

import torch

from diffpose3d.mixtures.gmm import GaussianMixture

EVIDENCE_CHANNELS = 7


def evidence_summary(gmm: GaussianMixture, keypoints_uv: torch.Tensor) -> torch.Tensor:
    """`(B, J, M, 2)` mixtures and the `(B, J, 2)` keypoints read from them -> `(B, J, 7)`:
    mixture mean minus keypoint (2), log of the mixture's RMS standard deviation (1), heaviest
    weight (1), second-heaviest component's mean minus keypoint (2) and weight (1); the second
    component's channels are zeros when M = 1 or its weight is 0 (a padding slot says nothing)."""
    log_spread = gmm.spread(floor=1e-10).log()
    order = gmm.weights.argsort(dim=-1, descending=True)
    weights = gmm.weights.gather(-1, order)
    if gmm.weights.shape[-1] > 1:
        second = gmm.means.gather(-2, order[..., 1:2, None].expand(*order.shape[:-1], 1, 2)).squeeze(-2)
        second_weight = weights[..., 1:2]
        second_offset = torch.where(second_weight > 0, second - keypoints_uv, torch.zeros_like(keypoints_uv))
    else:
        second_offset, second_weight = torch.zeros_like(keypoints_uv), torch.zeros_like(weights[..., :1])
    return torch.cat([gmm.mean() - keypoints_uv, log_spread.unsqueeze(-1), weights[..., :1], second_offset, second_weight],
                     dim=-1)
