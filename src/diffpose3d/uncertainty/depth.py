"""The 3D part of H_K: where each joint's root-relative (x, y, z) may be, before any denoising.

Two priors, selected by name in `DepthPriorConfig.kind`:
- "context": centred on a lifter's (the context encoder's) predicted xyz `(T, J, 3)`, with a
  per-joint, per-axis spread equal to the root-mean-square residual of that lifter on a training
  set (`residual_std`, metres). One Gaussian per joint.
- "dataset": x and y as in "context", z from a training-set prior: a 1-D GMM per joint over the
  root-relative camera-frame depth (metres), fitted with the batched EM. The depth evidence then
  ignores the frame (the paper's "statistics of the training set" option).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffpose3d.uncertainty.em import fit_gmm
from diffpose3d.uncertainty.gmm import GaussianMixture, product_mixture

DEPTH_PRIORS = ("context", "dataset")


@dataclass
class DepthPriorConfig:
    kind: str = "context"  # context | dataset
    num_components: int = 5  # kernels of the per-joint depth GMM (kind = dataset)
    min_std: float = 0.005  # floor of every spread (metres); also keeps the root joint proper
    default_std: float = 0.05  # x, y, z spread when no residuals were measured (metres)


@dataclass
class DepthPrior:
    """Fitted statistics: `residual_std (J, 3)` metres and, for "dataset", `depth (J, M, 1)`."""

    kind: str
    residual_std: torch.Tensor
    depth: GaussianMixture | None = None

    def state_dict(self) -> dict[str, torch.Tensor | str]:
        out: dict[str, torch.Tensor | str] = {"kind": self.kind, "residual_std": self.residual_std}
        if self.depth is not None:
            out.update(depth_weights=self.depth.weights, depth_means=self.depth.means,
                       depth_covariances=self.depth.covariances)
        return out

    @classmethod
    def from_state_dict(cls, state: dict) -> "DepthPrior":
        depth = None
        if "depth_weights" in state:
            depth = GaussianMixture(state["depth_weights"], state["depth_means"], state["depth_covariances"])
        return cls(str(state["kind"]), state["residual_std"], depth)

    def xyz_mixture(self, xyz_pred: torch.Tensor) -> GaussianMixture:
        """Per-joint mixture over (x, y, z) for lifter predictions `(..., J, 3)` -> `(..., J, Mz, 3)`."""
        depth = self.depth if self.kind == "dataset" else None
        return xyz_mixture(xyz_pred, self.residual_std, depth)


def xyz_mixture(centre: torch.Tensor, std: torch.Tensor, depth: GaussianMixture | None = None) -> GaussianMixture:
    """Per-joint mixture over (x, y, z): a Gaussian at `centre (..., J, 3)` with spread `std`
    (broadcastable, metres) -> `(..., J, 1, 3)`; with a z mixture `depth` (`(J, Mz, 1)` or
    batched), z comes from it instead -> `(..., J, Mz, 3)`."""
    std = std.to(centre).expand_as(centre)
    if depth is None:
        return gaussian_xyz(centre, std)
    d = depth.to(device=centre.device, dtype=centre.dtype)
    shape = centre.shape[:-1]
    z = GaussianMixture(d.weights.expand(*shape, -1), d.means.expand(*shape, -1, -1),
                        d.covariances.expand(*shape, -1, -1, -1))
    return product_mixture(gaussian_xyz(centre[..., :2], std[..., :2]), z)


def gaussian_xyz(centre: torch.Tensor, std: torch.Tensor) -> GaussianMixture:
    """One diagonal Gaussian per joint: centre `(..., D)`, std `(..., D)` -> `(..., 1, D)`."""
    return GaussianMixture(
        torch.ones(*centre.shape[:-1], 1, dtype=centre.dtype, device=centre.device),
        centre.unsqueeze(-2),
        torch.diag_embed(std**2).unsqueeze(-3),
    )


def residual_std(pred_xyz: torch.Tensor, gt_xyz: torch.Tensor, min_std: float = 0.005) -> torch.Tensor:
    """Root-mean-square lifter residual per joint and axis `(J, 3)` over frames `(F, J, 3)` (metres).

    RMS rather than the centred standard deviation: H_K is centred on the prediction itself, so a
    lifter's bias is part of its uncertainty. Frames with non-finite values are ignored.
    """
    if pred_xyz.shape != gt_xyz.shape or pred_xyz.dim() != 3:
        raise ValueError(f"need matching (F, J, 3) arrays, got {tuple(pred_xyz.shape)}, {tuple(gt_xyz.shape)}")
    r = pred_xyz - gt_xyz
    ok = torch.isfinite(r)
    ms = torch.where(ok, r, torch.zeros_like(r)).pow(2).sum(0) / ok.sum(0).clamp_min(1)
    return ms.sqrt().clamp_min(min_std)


def fit_depth_gmm(
    gt_xyz: torch.Tensor,
    num_components: int = 5,
    *,
    min_std: float = 0.005,
    max_frames: int = 20000,
    seed: int = 0,
) -> GaussianMixture:
    """Per-joint 1-D GMM over root-relative depth: gt `(F, J, 3)` metres -> `(J, M, 1)`.

    At most `max_frames` evenly spaced frames are used. The root joint (identically 0) gets a
    component of spread `min_std`; `min_std**2` is added to every variance.
    """
    if gt_xyz.dim() != 3 or gt_xyz.shape[-1] != 3:
        raise ValueError(f"gt_xyz must be (F, J, 3), got {tuple(gt_xyz.shape)}")
    rel = gt_xyz - gt_xyz[:, :1]
    ok = torch.isfinite(rel).all(-1).all(-1)
    rel = rel[ok]
    if rel.shape[0] == 0:
        raise ValueError("no finite frames to fit the depth prior on")
    step = max(1, rel.shape[0] // max_frames)
    z = rel[::step, :, 2].T.unsqueeze(-1).contiguous()  # (J, F, 1)
    gmm, _ = fit_gmm(z, None, num_components, covariance="full", reg_covar_abs=min_std**2, seed=seed)
    return gmm


def fit_depth_prior(
    config: DepthPriorConfig,
    gt_xyz: torch.Tensor,
    pred_xyz: torch.Tensor | None = None,
    *,
    seed: int = 0,
) -> DepthPrior:
    """Fit the prior `config.kind` names from training poses (root-relative or absolute) `(F, J, 3)`
    and, when given, the lifter's predictions on the same frames (else `default_std` spreads)."""
    if config.kind not in DEPTH_PRIORS:
        raise ValueError(f"unknown depth prior '{config.kind}' ({' | '.join(DEPTH_PRIORS)})")
    j = gt_xyz.shape[1]
    if pred_xyz is not None:
        rel = gt_xyz - gt_xyz[:, :1]
        std = residual_std(pred_xyz, rel, config.min_std)
    else:
        std = torch.full((j, 3), max(config.default_std, config.min_std), dtype=gt_xyz.dtype)
    depth = None
    if config.kind == "dataset":
        depth = fit_depth_gmm(gt_xyz, config.num_components, min_std=config.min_std, seed=seed)
    return DepthPrior(config.kind, std, depth)
