"""From N hypotheses to one pose (the per-joint uncertainty is `metrics.hypothesis_covariance`).

- `mean` is the paper's choice; `median` is the per-coordinate median (robust to one stray sample).
- `reprojection` picks, per joint, the hypothesis whose 3D position reprojects closest to the input
  2D keypoint (in the spirit of D3DP's joint-wise reprojection-based aggregation). We have no
  intrinsics at this point, so each hypothesis is projected with its own least-squares weak-perspective
  camera (scale + 2D offset fitted to the input keypoints over all joints).
"""

from __future__ import annotations

import torch

AGGREGATES = ("mean", "median", "reprojection")


def weak_perspective_residual(xyz: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Per-joint 2D residual of the best weak-perspective fit.

    xyz: (..., J, 3) root-relative; uv: (..., J, 2) normalised keypoints. Returns (..., J).
    """
    xy = xyz[..., :2]
    xy_c = xy - xy.mean(dim=-2, keepdim=True)
    uv_c = uv - uv.mean(dim=-2, keepdim=True)
    scale = (xy_c * uv_c).sum(dim=(-1, -2)) / (xy_c.square().sum(dim=(-1, -2)) + 1e-9)
    projected = scale[..., None, None] * xy_c
    return (projected - uv_c).norm(dim=-1)


def aggregate(hypotheses: torch.Tensor, method: str = "mean", keypoints_uv: torch.Tensor | None = None) -> torch.Tensor:
    """hypotheses: (B, N, J, 3) -> (B, J, 3)."""
    if method == "mean":
        return hypotheses.mean(dim=1)
    if method == "median":
        return hypotheses.median(dim=1).values
    if method == "reprojection":
        if keypoints_uv is None:
            raise ValueError("reprojection aggregation needs the input 2D keypoints")
        residual = weak_perspective_residual(hypotheses, keypoints_uv.unsqueeze(1))  # (B, N, J)
        best = residual.argmin(dim=1)  # (B, J)
        index = best[:, None, :, None].expand(-1, 1, -1, 3)
        return hypotheses.gather(1, index).squeeze(1)
    raise ValueError(f"unknown aggregation '{method}' (choose from {', '.join(AGGREGATES)})")
