"""Batched inference over many frames: N hypotheses, aggregation and per-joint uncertainty."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diffpose3d.aggregate import aggregate
from diffpose3d.metrics import hypothesis_covariance, spread_from_covariance
from diffpose3d.config import InferenceConfig
from diffpose3d.frames import FrameSet, gmm_index
from diffpose3d.model import STATE_DIM, DiffPoseModel
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


def sequence_draws(
    noise_index: np.ndarray, cfg: InferenceConfig, joints: int, dim: int
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """H_K noise shared by all frames with the same `noise_index` (a sequence): `(inverse (F,),
    u (S, F', J, 1), z (S, F', J, dim))`, row `inverse[f]` for frame f. Each sequence's draw depends
    only on the seed and its index, so it is the same however the frames are batched."""
    free = -(-cfg.hypotheses // 2) if cfg.antithetic else cfg.hypotheses
    ids, inverse = np.unique(np.asarray(noise_index), return_inverse=True)
    u = torch.empty(len(ids), free, joints, 1)
    z = torch.empty(len(ids), free, joints, dim)
    for i, sid in enumerate(ids):
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + int(sid))
        u[i] = torch.rand(free, joints, 1, generator=gen)
        z[i] = torch.randn(free, joints, dim, generator=gen)
    return inverse, u, z


def lift_batches(
    model: DiffPoseModel,
    keypoints_uv: torch.Tensor,
    uv_gmm: GaussianMixture,
    cfg: InferenceConfig,
    *,
    context: tuple[torch.Tensor, torch.Tensor] | None = None,
    noise_index: np.ndarray | None = None,
) -> FramePredictions:
    """Run the model over (F, J, 2) keypoints and their (F, J, M, 2) mixtures in batches.

    `context`: the frames' `(xyz, f_ST)` if already computed (a video model otherwise treats the F
    frames as one sequence in order). `noise_index (F,)`: which sequence each frame belongs to,
    for `cfg.coherent` hypotheses (default: one sequence).
    """
    device = model.device
    if model.backend != cfg.backend:
        model.use_backend(cfg.backend)
    if context is None and model.is_video:
        context = model.encode(keypoints_uv)
    draws = None
    if cfg.coherent and cfg.mode == "diffpose":
        index = np.zeros(keypoints_uv.shape[0], np.int64) if noise_index is None else noise_index
        draws = sequence_draws(index, cfg, keypoints_uv.shape[1], STATE_DIM)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    outs: dict[str, list[np.ndarray]] = {k: [] for k in ("pose", "hyp", "cov", "lifter", "uv")}
    n = keypoints_uv.shape[0]
    for start in range(0, n, cfg.batch_frames):
        idx = torch.arange(start, min(start + cfg.batch_frames, n))
        kp = keypoints_uv[idx].to(device)
        gmm = gmm_index(uv_gmm, idx).to(device)
        batch_draws = None if draws is None else (draws[1][draws[0][idx]], draws[2][draws[0][idx]])
        states, lifter = model.sample(
            kp, gmm, hypotheses=cfg.hypotheses, steps=cfg.steps, eta=cfg.eta,
            generator=generator, mode=cfg.mode, antithetic=cfg.antithetic,
            context=None if context is None else (context[0][idx], context[1][idx]), draws=batch_draws,
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


def attach_context(model: DiffPoseModel, frames: FrameSet) -> FrameSet:
    """Compute a video model's per-frame context over `frames`' whole sequences (a frame model's
    is computed batch by batch when needed, so nothing is stored), in place; returns `frames`."""
    if model.is_video and frames.context is None:
        frames.context = model.encode(frames.keypoints_uv, frames.sequence_rows())
    return frames


def predict_frames(model: DiffPoseModel, frames: FrameSet, cfg: InferenceConfig) -> FramePredictions:
    """Run the model over every frame of `frames` (hypotheses coherent per sequence with `cfg.coherent`)."""
    attach_context(model, frames)
    return lift_batches(model, frames.keypoints_uv, frames.uv_gmm, cfg, context=frames.context,
                        noise_index=frames.sequence_index)
