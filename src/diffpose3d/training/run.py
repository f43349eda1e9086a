"""A whole training run: data, both stages, the calibrations that follow them, the bundle.

Both stages keep an EMA copy of the weights, evaluate the EMA copy on the validation split and keep
the best one: the test split is never looked at during training. After stage 1 the lifter's
residual spread on validation data sets H_K's 3D spread; after stage 2 the hypotheses' spread is
scaled to match the error of their mean on validation data (`fit_spread_scale`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from diffpose3d.checkpoint import resolve_device, save_bundle
from diffpose3d.config import Config, InferenceConfig, save_config
from diffpose3d.data.frames import FrameSet, build_frames
from diffpose3d.data.splits import training_splits
from diffpose3d.diffusion.hk import fit_depth_gmm
from diffpose3d.inference.lifting import attach_context, predict_frames
from diffpose3d.model import DiffPoseModel
from diffpose3d.training.distributed import barrier, init_distributed, shutdown
from diffpose3d.training.loop import Budget
from diffpose3d.training.stages import lifter_mpjpe_mm, train_denoiser, train_encoder


@torch.no_grad()
def fit_spread_scale(model: DiffPoseModel, val: FrameSet, config: Config) -> float:
    """The factor that makes the hypotheses' spread match the error of their mean on validation data:
    s^2 = E ||mean - truth||^2 / E trace(covariance), over non-root joints, clamped to [0.5, 10]."""
    cap = config.train.val_max_frames
    attach_context(model, val)
    if cap and len(val) > cap:
        val = val.subset(torch.linspace(0, len(val) - 1, cap).long())
    model.spread_scale.fill_(1.0)
    cfg = InferenceConfig(hypotheses=max(config.train.val_hypotheses, 2), steps=config.train.val_steps, seed=config.train.seed)
    pred = predict_frames(model, val, cfg)
    err2 = np.square(pred.pose - val.target_xyz.numpy()).sum(-1)[:, 1:]
    var = np.trace(pred.covariance, axis1=-2, axis2=-1)[:, 1:]
    scale = float(np.clip(np.sqrt(err2.mean() / max(var.mean(), 1e-12)), 0.5, 10.0))
    model.spread_scale.fill_(scale)
    return scale


def train(config: Config, out_dir: str | Path, *, resume: bool = False) -> dict:
    """Train both stages and save the bundle (EMA weights, resolved config, info) in `out_dir`.

    Progress is checkpointed in `out_dir/checkpoints` every `train.checkpoint_every` epochs;
    `resume=True` continues a killed run from there. Under `torchrun` the stages run data-parallel.
    """
    out_dir = Path(out_dir)
    cfg = config.train
    dist_info, dist_device = init_distributed(cfg.device)
    if dist_info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, out_dir / "config.yaml")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = dist_device or resolve_device(cfg.device)
    budget = Budget(cfg.max_minutes)
    ckpt_dir = out_dir / "checkpoints"

    splits = training_splits(config)
    model = DiffPoseModel(config).to(device)
    train_frames = build_frames(splits["train"], model.skeleton, config.evidence, seed_offset=0)
    val_frames = build_frames(splits["val"], model.skeleton, config.evidence, seed_offset=100_000)

    log_path = out_dir / "train_log.jsonl"
    if dist_info.is_main and not resume:
        log_path.write_text("")

    def log(record: dict) -> None:
        record = {**record, "minutes": round((time.monotonic() - budget.start) / 60, 2)}
        with log_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    common = {"log": log, "checkpoint_dir": ckpt_dir, "resume": resume, "dist_info": dist_info}
    t0 = time.monotonic()
    stage1 = train_encoder(model, train_frames, val_frames, config, device, budget, **common)
    _, residual = lifter_mpjpe_mm(model, model.encoder, val_frames)
    model.residual_std.copy_(residual.std(dim=0).clamp_min(1e-3).to(device))
    if config.model.diffusion.depth_prior == "dataset":
        model.set_depth_prior(fit_depth_gmm(train_frames.target_xyz, config.model.diffusion.depth_components, seed=cfg.seed))
    t1 = time.monotonic()
    stage2 = train_denoiser(model, train_frames, val_frames, config, device, budget, **common)
    stage2["spread_scale"] = fit_spread_scale(model, val_frames, config)
    t2 = time.monotonic()

    info = {
        "name": config.name,
        "train_frames": len(train_frames),
        "val_frames": len(val_frames),
        "stage1": stage1,
        "stage2": stage2,
        "minutes": {"stage1": (t1 - t0) / 60, "stage2": (t2 - t1) / 60},
        "device": str(device),
        "world_size": dist_info.world_size,
        "rank": dist_info.rank,
        "torch_threads": torch.get_num_threads(),
    }
    if dist_info.is_main:
        save_bundle(model, config, out_dir, info)
    barrier(dist_info)
    shutdown(dist_info)
    return info
