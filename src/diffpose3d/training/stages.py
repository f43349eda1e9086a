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
from diffpose3d.diffusion.forward import q_sample
from diffpose3d.errors import ConfigError
from diffpose3d.inference.lifting import attach_context, predict_frames
from diffpose3d.model import DiffPoseModel, anchored_prediction
from diffpose3d.training.batches import FrameBatches, TableBatches
from diffpose3d.training.distributed import DistInfo
from diffpose3d.training.loop import Budget, StageSpec, run_stage
from diffpose3d.training.windows import TrainingWindows, window_loss

Batches = FrameBatches | TableBatches


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
    inputs = model.prepare(frames.keypoints_uv, frames.uv_gmm, frames.focal).encoder_input
    pred, _ = run_encoder(encoder, inputs, frames.sequence_rows(), encoder_config, model.skeleton.flip_permutation(),
                          model.input_mirror)
    residual = pred - frames.target_xyz
    return float(residual.norm(dim=-1).mean() * 1000.0), residual


def encoder_loss(model: DiffPoseModel, source: Batches, perm: torch.Tensor, device: torch.device):
    """Stage 1 loss: MPJPE of the lifter on this rank's rows of the global batch."""

    def loss_fn(net: nn.Module, index: torch.Tensor, flip: bool, gen: torch.Generator, rows: torch.Tensor) -> torch.Tensor:
        batch = source.batch(index, flip, perm, gen).rows(rows, device)
        prep = model.prepare(batch.keypoints_uv, batch.uv_gmm, batch.focal)
        return joint_distance_sum(net(prep.encoder_input)[0], batch.target_xyz) / len(index)

    return loss_fn


def video_encoder_loss(windows: TrainingWindows, perm: torch.Tensor, mirror: torch.Tensor, device: torch.device,
                       velocity_weight: float, padded: bool = False):
    """Stage 1 loss of a video model: MPJPE over the real frames of this rank's training windows
    (plus `velocity_weight` x the velocity error), as a share of the global batch. `padded`: the
    windows' inputs hold the encoder's context frames (`net(uv, padded=True)`, a temporal convolution)."""

    def loss_fn(net: nn.Module, index: torch.Tensor, flip: bool, gen: torch.Generator, rows: torch.Tensor) -> torch.Tensor:
        uv, target, valid = windows.batch(index[rows], perm.tolist() if flip else None, mirror)
        pred = net(uv.to(device), padded=True)[0] if padded else net(uv.to(device))[0]
        loss, _ = window_loss(pred, target.to(device), valid.to(device), velocity_weight)
        return loss * len(rows) / len(index)

    return loss_fn


def _batch_context(
    model: DiffPoseModel, frames: FrameSet | None, idx: torch.Tensor, encoder_input: torch.Tensor, flip: bool,
    perm: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(xyz, f_ST)` of a batch: stored per frame for a video model (mirrored with the batch: with
    flip TTA the mirrored input's context is exactly the joint-swapped one), else computed."""
    if frames is None or frames.context is None:
        return model.context(encoder_input)
    xyz, feats = frames.context[0][idx], frames.context[1][idx]
    if flip:
        xyz, feats = model.flip_context(xyz, feats, perm)
    return xyz.to(encoder_input.device), feats.to(encoder_input.device)


def denoiser_loss(model: DiffPoseModel, source: Batches, perm: torch.Tensor, device: torch.device, uv_weight: float):
    """Stage 2 loss: h_k from the GMM forward process towards this frame's own H_K; predict h_0.

    The step and the noise are drawn for the whole global batch (the same on every rank) and
    sliced, so data-parallel training follows the single-process trajectory.
    """
    num_steps = model.schedule.K
    joints = model.skeleton.num_joints
    frames = source.frames if isinstance(source, FrameBatches) else None

    def loss_fn(net: nn.Module, index: torch.Tensor, flip: bool, gen: torch.Generator, rows: torch.Tensor) -> torch.Tensor:
        b = len(index)
        k_all = torch.randint(1, num_steps + 1, (b,), generator=gen)
        u_all = torch.rand(b, joints, 1, generator=gen)
        z_all = torch.randn(b, joints, 5, generator=gen)
        # a video context without flip TTA has no exact mirror: no flipped batches then
        flip = flip and (frames is None or frames.context is None or model.config.model.encoder.flip)
        batch = source.batch(index, flip, perm, gen).rows(rows, device)
        prep = model.prepare(batch.keypoints_uv, batch.uv_gmm, batch.focal)
        with torch.no_grad():
            xyz, feats = _batch_context(model, frames, index[rows], prep.encoder_input, flip, perm)
            hk = model.initial_distribution(prep.gmm, xyz)
        tuv, txyz = prep.points(batch.target_uv), batch.target_xyz
        h0 = torch.cat([tuv, txyz], dim=-1)
        k = k_all[rows].to(device)
        h_k, _ = q_sample(h0, k, hk.weights, hk.means, hk.cholesky(), model.schedule,
                          uniform=u_all[rows].to(device), normal=z_all[rows].to(device))
        cond = model.conditioning(prep.keypoints, xyz, feats, prep.gmm)
        pred = anchored_prediction(net, h_k, k, cond, model.schedule)
        per_pose = (pred[..., 2:] - txyz).norm(dim=-1).mean(-1) + uv_weight * (pred[..., :2] - tuv).norm(dim=-1).mean(-1)
        return per_pose.sum() / b

    return loss_fn


def diffpose_val_mm(model: DiffPoseModel, val: FrameSet, config: Config) -> float:
    """Validation MPJPE (mm) of the sampled mean pose, on at most `train.val_max_frames` frames."""
    cap = config.train.val_max_frames
    attach_context(model, val)
    if cap and len(val) > cap:
        val = val.subset(torch.linspace(0, len(val) - 1, cap).long())
    cfg = InferenceConfig(hypotheses=config.train.val_hypotheses, steps=config.train.val_steps, seed=config.train.seed,
                          precision="fp32")
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
    model: DiffPoseModel, train: Batches, val: FrameSet, config: Config, device: torch.device, budget: Budget,
    *, share: float | None = None, log: Callable[[dict], None] | None = None, checkpoint_dir: Path | None = None,
    resume: bool = False, dist_info: DistInfo = DistInfo(),
) -> dict:
    """Stage 1: the context encoder; stops at `share` (default `train.encoder_share`) of the budget.

    A video encoder first trains on single frames for `train.video_frame_pretrain` of its time
    (cheap steps: it learns the per-frame lifting as fast as the frame lifter does), then on random
    windows of `model.encoder.frames` frames (`TrainingWindows`), where it learns to use motion. A
    temporal convolution trains on chunks of `train.chunk_frames` consecutive output frames, each with
    its receptive field's context frames (`train.window_batch_size` chunks per batch).
    """
    cfg = config.train
    share = cfg.encoder_share if share is None else share
    perm = torch.as_tensor(model.skeleton.flip_permutation())
    common = {"budget": budget, "checkpoint_dir": checkpoint_dir, "resume": resume, "log": log, "dist_info": dist_info}

    def validate(ema: nn.Module) -> float:
        return lifter_mpjpe_mm(model, ema, val)[0]

    if not model.is_video:
        spec = StageSpec("encoder", cfg.encoder_epochs, cfg.encoder_lr, cfg.seed, share)
        return run_stage(spec, model.encoder, encoder_loss(model, train, perm, device), validate, len(train), cfg,
                         on_epoch_start=train.new_epoch, **common)
    if not isinstance(train, FrameBatches):
        raise ConfigError("a video model trains on a frame set's windows: set data.pose_table to false")
    frames_info = None
    if cfg.video_frame_pretrain > 0:
        spec = StageSpec("encoder_frames", cfg.encoder_epochs, cfg.encoder_lr, cfg.seed + 2, share * cfg.video_frame_pretrain)
        frames_info = run_stage(spec, SingleFrames(model.encoder), encoder_loss(model, train, perm, device),
                                lambda ema: lifter_mpjpe_mm(model, ema, val, single_frames=True)[0],
                                len(train), cfg, on_epoch_start=train.new_epoch, **common)
    frames = train.frames
    tcn = config.model.encoder.kind == "tcn"
    if tcn:  # chunks of consecutive output frames with the receptive field's context around them
        windows = TrainingWindows(frames, cfg.chunk_frames, seed=cfg.seed, context=model.encoder.context_frames)
    else:
        windows = TrainingWindows(frames, config.model.encoder.frames, seed=cfg.seed)
    windows.new_epoch(0, model.prepare(frames.keypoints_uv, frames.uv_gmm, frames.focal).encoder_input)

    def redraw_and_resample(epoch: int) -> None:
        frames.redraw_evidence(1_000 + epoch)
        windows.new_epoch(epoch, model.prepare(frames.keypoints_uv, frames.uv_gmm, frames.focal).encoder_input)

    spec = StageSpec("encoder", cfg.encoder_epochs, cfg.video_encoder_lr, cfg.seed, share)
    loss = video_encoder_loss(windows, perm, model.input_mirror, device, cfg.velocity_weight, padded=tcn)
    info = run_stage(spec, model.encoder, loss, validate,
                     windows.count, replace(cfg, batch_size=cfg.window_batch_size), on_epoch_start=redraw_and_resample,
                     **common)
    return {**info, "single_frames": frames_info}


def train_denoiser(
    model: DiffPoseModel, train: Batches, val: FrameSet, config: Config, device: torch.device, budget: Budget,
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
        train.new_epoch(10_000 + epoch)
        if isinstance(train, FrameBatches):
            attach_context(model, train.frames)  # a video model's context of the new evidence

    spec = StageSpec("denoiser", cfg.denoiser_epochs, cfg.denoiser_lr, cfg.seed + 1, 1.0, clip_grad=1.0)
    return run_stage(
        spec, model.denoiser, denoiser_loss(model, train, perm, device, cfg.uv_loss_weight),
        validate, len(train), cfg, budget=budget, checkpoint_dir=checkpoint_dir,
        resume=resume, log=log, dist_info=dist_info,
        on_epoch_start=on_epoch_start,
    )
