"""The paper's two training stages: what each learns, from which loss, validated how.

Stage 1 trains the context encoder (a frame lifter: 2D -> 3D, whose hidden state is f_ST).
Stage 2 freezes it and trains the denoiser g to recover h_0 from h_k, where h_k comes from the
GMM forward process between the ground truth and that frame's own H_K: the loss that defines what
g learns sits here, beside the forward process it samples. `training.loop.run_stage` holds the
loop (EMA, validation, budget, checkpoints, data parallelism); `training.run.train` runs both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from diffpose3d.config import Config, InferenceConfig
from diffpose3d.context import run_encoder
from diffpose3d.data.frames import FrameSet
from diffpose3d.data.mirror import flip_gmm, flip_keypoints, flip_pose
from diffpose3d.diffusion.forward import q_sample
from diffpose3d.inference.lifting import attach_context, predict_frames
from diffpose3d.model import DiffPoseModel, anchored_prediction
from diffpose3d.training.distributed import DistInfo
from diffpose3d.training.loop import Budget, StageSpec, run_stage
from diffpose3d.training.windows import TrainingWindows, window_loss


def _maybe_flip(frames: FrameSet, idx: torch.Tensor, perm: torch.Tensor, flip: bool, device: torch.device):
    kp = frames.keypoints_uv[idx]
    tuv = frames.target_uv[idx]
    txyz = frames.target_xyz[idx]
    gmm = frames.uv_gmm[idx]
    if flip:
        kp, tuv, txyz = flip_keypoints(kp, perm), flip_keypoints(tuv, perm), flip_pose(txyz, perm)
        gmm = flip_gmm(gmm, perm)
    return kp.to(device), tuv.to(device), txyz.to(device), gmm.to(device)


def joint_distance_sum(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over poses of the mean joint distance; divided by the global batch size it is MPJPE."""
    return (pred - target).norm(dim=-1).mean(dim=-1).sum()


@torch.no_grad()
def lifter_mpjpe_mm(
    model: DiffPoseModel, encoder: nn.Module, frames: FrameSet, *, single_frames: bool = False
) -> tuple[float, torch.Tensor]:
    """Validation MPJPE (mm) of `encoder` (the model's, or an EMA copy) and its residuals (F, J, 3)
    in metres. `single_frames`: a video encoder fed one-frame clips (`SingleFrames`), as its first
    training phase sees it."""
    encoder_config = model.config.model.encoder
    if single_frames:
        encoder_config = replace(encoder_config, kind="frame")
    pred, _ = run_encoder(encoder, frames.keypoints_uv, frames.sequence_rows(), encoder_config,
                          model.skeleton.flip_permutation())
    residual = pred - frames.target_xyz
    return float(residual.norm(dim=-1).mean() * 1000.0), residual


def encoder_loss(train: FrameSet, perm: torch.Tensor, device: torch.device):
    """Stage 1 loss: MPJPE of the lifter on this rank's rows of the global batch."""

    def loss_fn(net: nn.Module, index: torch.Tensor, flip: bool, gen: torch.Generator, rows: torch.Tensor) -> torch.Tensor:
        kp, _, txyz, _ = _maybe_flip(train, index[rows], perm, flip, device)
        return joint_distance_sum(net(kp)[0], txyz) / len(index)

    return loss_fn


def video_encoder_loss(windows: TrainingWindows, perm: torch.Tensor, device: torch.device, velocity_weight: float):
    """Stage 1 loss of a video model: MPJPE over the real frames of this rank's training windows
    (plus `velocity_weight` x the velocity error), as a share of the global batch."""

    def loss_fn(net: nn.Module, index: torch.Tensor, flip: bool, gen: torch.Generator, rows: torch.Tensor) -> torch.Tensor:
        uv, target, valid = windows.batch(index[rows], perm.tolist() if flip else None)
        loss, _ = window_loss(net(uv.to(device))[0], target.to(device), valid.to(device), velocity_weight)
        return loss * len(rows) / len(index)

    return loss_fn


def _batch_context(
    model: DiffPoseModel, frames: FrameSet, idx: torch.Tensor, kp: torch.Tensor, flip: bool, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(xyz, f_ST)` of a batch: stored per frame for a video model (mirrored with the batch: with
    flip TTA the mirrored input's context is exactly the joint-swapped one), else computed from `kp`."""
    if frames.context is None:
        return model.context(kp)
    xyz, feats = frames.context[0][idx], frames.context[1][idx]
    if flip:
        xyz, feats = model.flip_context(xyz, feats, perm)
    return xyz.to(kp.device), feats.to(kp.device)


def denoiser_loss(model: DiffPoseModel, train: FrameSet, perm: torch.Tensor, device: torch.device, uv_weight: float):
    """Stage 2 loss: h_k from the GMM forward process towards this frame's own H_K; predict h_0.

    The step and the noise are drawn for the whole global batch (the same on every rank) and
    sliced, so data-parallel training follows the single-process trajectory.
    """
    num_steps = model.schedule.K
    joints = model.skeleton.num_joints

    def loss_fn(net: nn.Module, index: torch.Tensor, flip: bool, gen: torch.Generator, rows: torch.Tensor) -> torch.Tensor:
        b = len(index)
        k_all = torch.randint(1, num_steps + 1, (b,), generator=gen)
        u_all = torch.rand(b, joints, 1, generator=gen)
        z_all = torch.randn(b, joints, 5, generator=gen)
        # a video context without flip TTA has no exact mirror: no flipped batches then
        flip = flip and (train.context is None or model.config.model.encoder.flip)
        kp, tuv, txyz, gmm = _maybe_flip(train, index[rows], perm, flip, device)
        with torch.no_grad():
            xyz, feats = _batch_context(model, train, index[rows], kp, flip, perm)
            hk = model.initial_distribution(gmm, xyz)
        h0 = torch.cat([tuv, txyz], dim=-1)
        k = k_all[rows].to(device)
        h_k, _ = q_sample(h0, k, hk.weights, hk.means, hk.cholesky(), model.schedule,
                          uniform=u_all[rows].to(device), normal=z_all[rows].to(device))
        pred = anchored_prediction(net, h_k, k, model.conditioning(kp, xyz, feats, gmm), model.schedule.alpha_bar)
        per_pose = (pred[..., 2:] - txyz).norm(dim=-1).mean(-1) + uv_weight * (pred[..., :2] - tuv).norm(dim=-1).mean(-1)
        return per_pose.sum() / b

    return loss_fn


def diffpose_val_mm(model: DiffPoseModel, val: FrameSet, config: Config) -> float:
    """Validation MPJPE (mm) of the sampled mean pose, on at most `train.val_max_frames` frames."""
    cap = config.train.val_max_frames
    attach_context(model, val)
    if cap and len(val) > cap:
        val = val.subset(torch.linspace(0, len(val) - 1, cap).long())
    cfg = InferenceConfig(hypotheses=config.train.val_hypotheses, steps=config.train.val_steps, seed=config.train.seed)
    pred = predict_frames(model, val, cfg)
    return float(np.linalg.norm(pred.pose - val.target_xyz.numpy(), axis=-1).mean() * 1000.0)


class SingleFrames(nn.Module):
    """A video encoder seen as a frame lifter: `(B, J, 2) -> (xyz (B, J, 3), f (B, J, C))` on
    one-frame clips (its temporal blocks then act frame by frame)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, kp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xyz, feats = self.encoder(kp.unsqueeze(1))
        return xyz.squeeze(1), feats.squeeze(1)


def train_encoder(
    model: DiffPoseModel, train: FrameSet, val: FrameSet, config: Config, device: torch.device, budget: Budget,
    *, share: float | None = None, log: Callable[[dict], None] | None = None, checkpoint_dir: Path | None = None,
    resume: bool = False, dist_info: DistInfo = DistInfo(),
) -> dict:
    """Stage 1: the context encoder; stops at `share` (default `train.encoder_share`) of the budget.

    A video encoder first trains on single frames for `train.video_frame_pretrain` of its time
    (cheap steps: it learns the per-frame lifting as fast as the frame lifter does), then on random
    windows of `model.encoder.frames` frames (`TrainingWindows`), where it learns to use motion.
    """
    cfg = config.train
    share = cfg.encoder_share if share is None else share
    perm = torch.as_tensor(model.skeleton.flip_permutation())
    common = {"budget": budget, "checkpoint_dir": checkpoint_dir, "resume": resume, "log": log, "dist_info": dist_info}

    def validate(ema: nn.Module) -> float:
        return lifter_mpjpe_mm(model, ema, val)[0]

    if not model.is_video:
        spec = StageSpec("encoder", cfg.encoder_epochs, cfg.encoder_lr, cfg.seed, share)
        return run_stage(spec, model.encoder, encoder_loss(train, perm, device), validate, len(train), cfg,
                         on_epoch_start=train.redraw_evidence, **common)
    frames_info = None
    if cfg.video_frame_pretrain > 0:
        spec = StageSpec("encoder_frames", cfg.encoder_epochs, cfg.encoder_lr, cfg.seed + 2, share * cfg.video_frame_pretrain)
        frames_info = run_stage(spec, SingleFrames(model.encoder), encoder_loss(train, perm, device),
                                lambda ema: lifter_mpjpe_mm(model, ema, val, single_frames=True)[0],
                                len(train), cfg, on_epoch_start=train.redraw_evidence, **common)
    windows = TrainingWindows(train, config.model.encoder.frames, seed=cfg.seed)

    def redraw_and_resample(epoch: int) -> None:
        train.redraw_evidence(1_000 + epoch)
        windows.new_epoch(epoch)

    spec = StageSpec("encoder", cfg.encoder_epochs, cfg.video_encoder_lr, cfg.seed, share)
    info = run_stage(spec, model.encoder, video_encoder_loss(windows, perm, device, cfg.velocity_weight), validate,
                     windows.count, replace(cfg, batch_size=cfg.window_batch_size), on_epoch_start=redraw_and_resample,
                     **common)
    return {**info, "single_frames": frames_info}


def train_denoiser(
    model: DiffPoseModel, train: FrameSet, val: FrameSet, config: Config, device: torch.device, budget: Budget,
    *, log: Callable[[dict], None] | None = None, checkpoint_dir: Path | None = None,
    resume: bool = False, dist_info: DistInfo = DistInfo(),
) -> dict:
    """Stage 2: the denoiser g, with the context encoder frozen."""
    cfg = config.train
    model.encoder.eval().requires_grad_(False)
    perm = torch.as_tensor(model.skeleton.flip_permutation())

    def validate(ema_denoiser: nn.Module) -> float:
        live = model.denoiser
        model.denoiser = ema_denoiser
        try:
            return diffpose_val_mm(model, val, config)
        finally:
            model.denoiser = live

    def on_epoch_start(epoch: int) -> None:
        train.redraw_evidence(10_000 + epoch)
        attach_context(model, train)  # a video model's context of the new evidence

    spec = StageSpec("denoiser", cfg.denoiser_epochs, cfg.denoiser_lr, cfg.seed + 1, 1.0, clip_grad=1.0)
    return run_stage(
        spec, model.denoiser, denoiser_loss(model, train, perm, device, cfg.uv_loss_weight),
        validate, len(train), cfg, budget=budget, checkpoint_dir=checkpoint_dir,
        resume=resume, log=log, dist_info=dist_info,
        on_epoch_start=on_epoch_start,
    )
