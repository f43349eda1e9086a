"""Two-stage training, as in the paper.

Stage 1 trains the context encoder (a frame lifter: 2D -> 3D, whose hidden state is f_ST).
Stage 2 freezes it and trains the denoiser g to recover h_0 from h_k, where h_k comes from the
GMM forward process between the ground truth and that frame's own H_K.
Both stages keep an EMA copy of the weights, evaluate the EMA copy on the validation split and keep
the best one: the test split is never looked at during training.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from diffpose3d.config import Config, InferenceConfig, save_config
from diffpose3d.datasets import load_training_splits
from diffpose3d.diffusion.forward import q_sample
from diffpose3d.frames import FrameSet, build_frames, gmm_index
from diffpose3d.inference import predict_frames
from diffpose3d.model import DiffPoseModel
from diffpose3d.uncertainty.gmm import GaussianMixture


def resolve_device(name: str) -> torch.device:
    if name in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class Budget:
    """Wall-clock budget: a stage stops early (keeping its best weights) when its share is spent."""

    minutes: float
    start: float = field(default_factory=time.monotonic)

    def expired(self, share_until: float) -> bool:
        if self.minutes <= 0:
            return False
        return time.monotonic() - self.start > share_until * self.minutes * 60.0


def flip_batch(perm: torch.Tensor, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """Mirror poses left-right: negate the horizontal coordinate and swap left/right joints."""
    out = []
    for t in tensors:
        t = t[:, perm].clone()
        t[..., 0] = -t[..., 0]
        out.append(t)
    return out


def flip_gmm(gmm: GaussianMixture, perm: torch.Tensor) -> GaussianMixture:
    means = gmm.means[:, perm].clone()
    means[..., 0] = -means[..., 0]
    cov = gmm.covariances[:, perm].clone()
    cov[..., 0, 1:] = -cov[..., 0, 1:]
    cov[..., 1:, 0] = -cov[..., 1:, 0]
    return GaussianMixture(gmm.weights[:, perm], means, cov)


def mpjpe_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).norm(dim=-1).mean()


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _maybe_flip(frames: FrameSet, idx: torch.Tensor, perm: torch.Tensor, flip: bool, device: torch.device):
    kp = frames.keypoints_uv[idx]
    tuv = frames.target_uv[idx]
    txyz = frames.target_xyz[idx]
    gmm = gmm_index(frames.uv_gmm, idx)
    if flip:
        kp, tuv, txyz = flip_batch(perm, kp, tuv, txyz)
        gmm = flip_gmm(gmm, perm)
    return kp.to(device), tuv.to(device), txyz.to(device), gmm.to(device)


@torch.no_grad()
def lifter_mpjpe_mm(encoder: torch.nn.Module, frames: FrameSet, device: torch.device) -> tuple[float, torch.Tensor]:
    """Validation MPJPE (mm) of the lifter and its residuals (F, J, 3) in metres."""
    encoder.eval()
    preds = []
    for start in range(0, len(frames), 4096):
        kp = frames.keypoints_uv[start : start + 4096].to(device)
        preds.append(encoder(kp)[0].cpu())
    pred = torch.cat(preds)
    residual = pred - frames.target_xyz
    return float(residual.norm(dim=-1).mean() * 1000.0), residual


def train_encoder(
    model: DiffPoseModel, train: FrameSet, val: FrameSet, config: Config, device: torch.device, budget: Budget,
    share: float = 0.35,
    log: Callable[[dict], None] | None = None,
) -> dict:
    """Stage 1; stops at `share` of the wall-clock budget (the rest is the denoiser's)."""
    cfg = config.train
    encoder = model.encoder
    ema = AveragedModel(encoder, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay))
    opt = torch.optim.AdamW(encoder.parameters(), lr=cfg.encoder_lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.encoder_lr, total_steps=cfg.encoder_epochs * steps_per_epoch, pct_start=0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    perm = torch.as_tensor(model.skeleton.flip_permutation())
    best = (math.inf, copy.deepcopy(ema.module.state_dict()), 0)
    history = []
    bar = tqdm(range(cfg.encoder_epochs), desc="stage 1: context encoder", disable=not cfg.progress)
    for epoch in bar:
        encoder.train()
        losses = []
        for idx in _batches(len(train), cfg.batch_size, gen):
            flip = cfg.flip_augment and bool(torch.rand((), generator=gen) < 0.5)
            kp, _, txyz, _ = _maybe_flip(train, idx, perm, flip, device)
            loss = mpjpe_loss(encoder(kp)[0], txyz)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema.update_parameters(encoder)
            losses.append(loss.item())
        last = epoch + 1 == cfg.encoder_epochs or budget.expired(share)
        if (epoch + 1) % cfg.eval_every == 0 or last:
            val_mm, _ = lifter_mpjpe_mm(ema.module, val, device)
            history.append({"stage": 1, "epoch": epoch + 1, "train_mpjpe_mm": 1000 * float(np.mean(losses)), "val_mpjpe_mm": val_mm})
            if log:
                log(history[-1])
            if val_mm < best[0]:
                best = (val_mm, copy.deepcopy(ema.module.state_dict()), epoch + 1)
            bar.set_postfix(loss_mm=f"{1000 * np.mean(losses):.1f}", val_mm=f"{val_mm:.1f}")
        if last:
            break
    encoder.load_state_dict(best[1])
    return {"best_val_mpjpe_mm": best[0], "best_epoch": best[2], "history": history}


def denoiser_step_loss(model: DiffPoseModel, kp, tuv, txyz, gmm, gen: torch.Generator, uv_weight: float) -> torch.Tensor:
    """One stage-2 loss: h_k from the GMM forward process towards this frame's H_K, predict h_0."""
    with torch.no_grad():
        xyz, feats = model.context(kp)
        hk = model.initial_distribution(gmm, xyz)
    h0 = torch.cat([tuv, txyz], dim=-1)
    k = torch.randint(1, model.schedule.K + 1, (h0.shape[0],), generator=gen).to(h0.device)
    h_k, _ = q_sample(h0, k, hk.weights, hk.means, hk.cholesky(), model.schedule, generator=gen)
    pred = model.denoiser(h_k, k, feats)
    loss_xyz = mpjpe_loss(pred[..., 2:], txyz)
    loss_uv = (pred[..., :2] - tuv).norm(dim=-1).mean()
    return loss_xyz + uv_weight * loss_uv


def diffpose_val_mm(model: DiffPoseModel, val: FrameSet, config: Config) -> float:
    """Validation MPJPE (mm) of the sampled mean pose, on at most `train.val_max_frames` frames."""
    cap = config.train.val_max_frames
    if cap and len(val) > cap:
        val = val.subset(torch.linspace(0, len(val) - 1, cap).long())
    cfg = InferenceConfig(hypotheses=config.train.val_hypotheses, steps=config.train.val_steps, seed=config.train.seed)
    pred = predict_frames(model, val, cfg)
    return float(np.linalg.norm(pred.pose - val.target_xyz.numpy(), axis=-1).mean() * 1000.0)


def train_denoiser(
    model: DiffPoseModel, train: FrameSet, val: FrameSet, config: Config, device: torch.device, budget: Budget,
    log: Callable[[dict], None] | None = None,
) -> dict:
    cfg = config.train
    model.encoder.eval().requires_grad_(False)
    den = model.denoiser
    ema = AveragedModel(den, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay))
    opt = torch.optim.AdamW(den.parameters(), lr=cfg.denoiser_lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.denoiser_lr, total_steps=cfg.denoiser_epochs * steps_per_epoch, pct_start=0.1)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    perm = torch.as_tensor(model.skeleton.flip_permutation())
    best = (math.inf, copy.deepcopy(ema.module.state_dict()), 0)
    history = []
    bar = tqdm(range(cfg.denoiser_epochs), desc="stage 2: denoiser g", disable=not cfg.progress)
    for epoch in bar:
        den.train()
        losses = []
        for idx in _batches(len(train), cfg.batch_size, gen):
            flip = cfg.flip_augment and bool(torch.rand((), generator=gen) < 0.5)
            batch = _maybe_flip(train, idx, perm, flip, device)
            loss = denoiser_step_loss(model, *batch, gen=gen, uv_weight=cfg.uv_loss_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(den.parameters(), 1.0)
            opt.step()
            sched.step()
            ema.update_parameters(den)
            losses.append(loss.item())
        last = epoch + 1 == cfg.denoiser_epochs or budget.expired(1.0)
        if (epoch + 1) % cfg.eval_every == 0 or last:
            live = copy.deepcopy(den.state_dict())
            den.load_state_dict(ema.module.state_dict())
            val_mm = diffpose_val_mm(model, val, config)
            den.load_state_dict(live)
            history.append({"stage": 2, "epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_mpjpe_mm": val_mm})
            if log:
                log(history[-1])
            if val_mm < best[0]:
                best = (val_mm, copy.deepcopy(ema.module.state_dict()), epoch + 1)
            bar.set_postfix(loss=f"{np.mean(losses):.4f}", val_mm=f"{val_mm:.1f}")
        if last:
            break
    den.load_state_dict(best[1])
    return {"best_val_mpjpe_mm": best[0], "best_epoch": best[2], "history": history}


def train(config: Config, out_dir: str | Path) -> dict:
    """Train both stages, save the bundle (EMA weights, resolved config, info) in `out_dir`."""
    from diffpose3d.checkpoint import save_bundle

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, out_dir / "config.yaml")
    cfg = config.train
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    budget = Budget(cfg.max_minutes)

    splits = load_training_splits(config)
    model = DiffPoseModel(config).to(device)
    train_frames = build_frames(splits["train"], model.skeleton, config.evidence, seed_offset=0)
    val_frames = build_frames(splits["val"], model.skeleton, config.evidence, seed_offset=100_000)

    log_path = out_dir / "train_log.jsonl"
    log_path.write_text("")

    def log(record: dict) -> None:
        record = {**record, "minutes": round((time.monotonic() - budget.start) / 60, 2)}
        with log_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    t0 = time.monotonic()
    stage1 = train_encoder(model, train_frames, val_frames, config, device, budget, log=log)
    _, residual = lifter_mpjpe_mm(model.encoder, val_frames, device)
    model.residual_std.copy_(residual.std(dim=0).clamp_min(1e-3).to(device))
    t1 = time.monotonic()
    stage2 = train_denoiser(model, train_frames, val_frames, config, device, budget, log=log)
    t2 = time.monotonic()

    info = {
        "name": config.name,
        "train_frames": len(train_frames),
        "val_frames": len(val_frames),
        "stage1": stage1,
        "stage2": stage2,
        "minutes": {"stage1": (t1 - t0) / 60, "stage2": (t2 - t1) / 60},
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    save_bundle(model, config, out_dir, info)
    return info
