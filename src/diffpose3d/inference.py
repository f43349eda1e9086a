"""Batched inference over many frames: N hypotheses, aggregation and per-joint uncertainty."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diffpose3d.aggregate import aggregate
from diffpose3d.metrics import hypothesis_covariance, spread_from_covariance
from diffpose3d.config import InferenceConfig
from diffpose3d.frames import FrameSet, gmm_index
from diffpose3d.model import DiffPoseModel
from diffpose3d.uncertainty.gmm import GaussianMixture


@dataclass
class FramePredictions:
    """Per-frame outputs in metres, root-relative camera frame."""

    pose: np.ndarray  # (F, J, 3) aggregated
    hypotheses: np.ndarray  # (F, N, J, 3)
    covariance: np.ndarray  # (F, J, 3, 3)
    spread: np.ndarray  # (F, J) RMS standard deviation
    lifter: np.ndarray  # (F, J, 3) the context encoder's own 3D guess
    uv: np.ndarray  # (F, N, J, 2) the denoised 2D part of each hypothesis


def lift_batches(
    model: DiffPoseModel, keypoints_uv: torch.Tensor, uv_gmm: GaussianMixture, cfg: InferenceConfig
) -> FramePredictions:
    """Run the model over (F, J, 2) keypoints and their (F, J, M, 2) mixtures in batches."""
    device = model.device
    if model.backend != cfg.backend:
        model.use_backend(cfg.backend)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    outs: dict[str, list[np.ndarray]] = {k: [] for k in ("pose", "hyp", "cov", "lifter", "uv")}
    n = keypoints_uv.shape[0]
    for start in range(0, n, cfg.batch_frames):
        idx = torch.arange(start, min(start + cfg.batch_frames, n))
        kp = keypoints_uv[idx].to(device)
        gmm = gmm_index(uv_gmm, idx).to(device)
        states, lifter = model.sample(
            kp, gmm, hypotheses=cfg.hypotheses, steps=cfg.steps, eta=cfg.eta,
            generator=generator, mode=cfg.mode, antithetic=cfg.antithetic,
        )
        xyz = states[..., 2:]
        xyz = xyz - xyz[..., :1, :]  # root-relative
        outs["pose"].append(aggregate(xyz, cfg.aggregate, kp).cpu().numpy())
        hyp = xyz.cpu().numpy()
        outs["hyp"].append(hyp)
        outs["cov"].append(hypothesis_covariance(hyp))
        outs["lifter"].append(lifter.cpu().numpy())
        outs["uv"].append(states[..., :2].cpu().numpy())
    cov = np.concatenate(outs["cov"])
    return FramePredictions(
        pose=np.concatenate(outs["pose"]),
        hypotheses=np.concatenate(outs["hyp"]),
        covariance=cov,
        spread=spread_from_covariance(cov),
        lifter=np.concatenate(outs["lifter"]),
        uv=np.concatenate(outs["uv"]),
    )


def predict_frames(model: DiffPoseModel, frames: FrameSet, cfg: InferenceConfig) -> FramePredictions:
    """Run the model over every frame of `frames`."""
    return lift_batches(model, frames.keypoints_uv, frames.uv_gmm, cfg)
