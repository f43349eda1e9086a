"""A whole training run: data, both stages, the calibrations that follow them, the bundle.

Both stages keep an EMA copy of the weights, evaluate the EMA copy on the validation split and keep
the best one: the test split is never looked at during training. After stage 1 the lifter's
residual spread on validation data sets H_K's 3D spread; after stage 2 the hypotheses' spread is
scaled to match the error of their mean on validation data (`fit_spread_scale`).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from diffpose3d.bundle import resolve_device, save_bundle
from diffpose3d.config import Config, InferenceConfig, save_config
from diffpose3d.config_ranges import clamp_threads
from diffpose3d.data.frames import FrameSet, build_frames
from diffpose3d.data.loading import load_sequences
from diffpose3d.data.pose_table import build_pose_table
from diffpose3d.data.protocols import protocol_subjects
from diffpose3d.data.splits import heldout_blocks, training_splits
from diffpose3d.diffusion.hk import fit_depth_gmm
from diffpose3d.errors import ConfigError, InputFileError
from diffpose3d.evaluation import calibration as cal
from diffpose3d.inference.lifting import attach_context, predict_frames
from diffpose3d.io.atomic import check_output_file, save_text_atomic
from diffpose3d.model import DiffPoseModel
from diffpose3d.skeleton import Skeleton
from diffpose3d.training.batches import FrameBatches, TableBatches
from diffpose3d.training.distributed import barrier, init_distributed, shutdown
from diffpose3d.training.loop import Budget
from diffpose3d.training.stages import lifter_mpjpe_mm, train_denoiser, train_encoder


@torch.no_grad()
def fit_spread_scale(model: DiffPoseModel, val: FrameSet, config: Config) -> float:
    """Fit and set the model's `spread_scale` on validation data (`evaluation.calibration.spread_scale`)."""
    cap = config.train.val_max_frames
    attach_context(model, val)
    if cap and len(val) > cap:
        val = val.subset(torch.linspace(0, len(val) - 1, cap).long())
    model.spread_scale.fill_(1.0)
    cfg = InferenceConfig(hypotheses=max(config.train.val_hypotheses, 2), steps=config.train.val_steps, seed=config.train.seed,
                          precision="fp32")
    pred = predict_frames(model, val, cfg)
    scale = cal.spread_scale(pred.pose, pred.covariance, val.target_xyz.numpy())
    model.spread_scale.fill_(scale)
    return scale


def training_data(config: Config, skeleton: Skeleton) -> tuple[FrameBatches | TableBatches, FrameSet]:
    """The training batches and the validation frames a config asks for.

    A frame set of the config's train split, or (`data.pose_table`) a pose table of the training
    subjects' takes (with the detections of `data.data_2d` when given) and, for validation, the
    `data.val_subjects` (or, without them, every take's validation block: `data.holdout`) seen by
    their real cameras with their exact 2D (`evidence.source: keypoints`).
    """
    if not config.data.pose_table:
        splits = training_splits(config)
        train = build_frames(splits["train"], skeleton, config.evidence, seed_offset=0)
        return FrameBatches(train), build_frames(splits["val"], skeleton, config.evidence, seed_offset=100_000)
    d = config.data
    if not d.val_subjects and not d.holdout:
        raise ConfigError("data.pose_table needs data.val_subjects (subjects held out for validation) or data.holdout "
                          "(validation blocks of every take)")
    subjects = [s for s in (d.train_subjects or protocol_subjects(d.dataset, "train")) if s not in d.val_subjects]
    projected = replace(config, data=replace(d, data_2d=""))  # 2D as the 3D projects
    poses = load_sequences(projected, subjects=subjects, split=None)
    detections = load_sequences(config, subjects=subjects, split=None) if d.data_2d else None
    if d.val_subjects:
        val = load_sequences(projected, subjects=list(d.val_subjects), split=None)
    else:  # the takes' validation blocks; their 'test' blocks are left for the conformal calibration
        val = heldout_blocks(poses, d, "val")
        poses = heldout_blocks(poses, d, "train")
        detections = heldout_blocks(detections, d, "train") if detections is not None else None
    table = build_pose_table(poses, detections, skeleton.name)
    val = [s.slice(step=d.test_stride) for s in val]
    val_frames = build_frames(val, skeleton, replace(config.evidence, source="keypoints"), seed_offset=100_000)
    return TableBatches(table, skeleton, config.evidence, d.virtual), val_frames


def training_poses(batches: FrameBatches | TableBatches, every: int = 10) -> torch.Tensor:
    """Root-relative camera-frame 3D `(F, J, 3)` of the training data (a pose table's every
    `every`-th row, through its real cameras in turn)."""
    if isinstance(batches, FrameBatches):
        return batches.frames.target_xyz
    rows = torch.arange(0, len(batches.table), every)
    return batches.table.real_views(rows, rows % batches.table.num_cameras)[0]


def _logged_cpu_minutes(log_path: Path) -> float:
    """The CPU minutes the last record of a resumed run's log counted (0 when there is none)."""
    try:
        lines = [line for line in log_path.read_text().splitlines() if line.strip()]
        return float(json.loads(lines[-1]).get("cpu_minutes", 0.0)) if lines else 0.0
    except (OSError, ValueError, AttributeError):
        return 0.0


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
    if cfg.threads > 0:  # a config may come from a bigger machine: at most this one's CPUs
        torch.set_num_threads(clamp_threads(cfg.threads))
    torch.manual_seed(cfg.seed)
    device = dist_device or resolve_device(cfg.device)
    budget = Budget(cfg.max_minutes)
    ckpt_dir = out_dir / "checkpoints"

    model = DiffPoseModel(config).to(device)
    t_setup = time.monotonic()
    train_batches, val_frames = training_data(config, model.skeleton)
    setup_minutes = (time.monotonic() - t_setup) / 60

    log_path = out_dir / "train_log.jsonl"
    if dist_info.is_main and not resume:
        save_text_atomic(log_path, "")
    cpu_before = _logged_cpu_minutes(log_path) if resume else 0.0

    def log(record: dict) -> None:
        # minutes: wall clock of the run; cpu_minutes: CPU time of this rank's process (every thread),
        # killed processes' included: the x axis of a learning curve in core-hours on a shared machine
        record = {**record, "minutes": round((time.monotonic() - budget.start) / 60, 2),
                  "cpu_minutes": round(cpu_before + time.process_time() / 60, 2)}
        with check_output_file(log_path).open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    if resume and any(ckpt_dir.glob("denoiser*")) and not any(ckpt_dir.glob("encoder-e*.safetensors")):
        raise InputFileError(ckpt_dir, "stage 2's checkpoints are there but stage 1's are gone: resuming would "
                                       "train g on another encoder (remove the folder to start afresh)")
    common = {"log": log, "checkpoint_dir": ckpt_dir, "resume": resume, "dist_info": dist_info}
    t0 = time.monotonic()
    stage1 = train_encoder(model, train_batches, val_frames, config, device, budget, **common)
    _, residual = lifter_mpjpe_mm(model, model.encoder, val_frames)
    model.residual_std.copy_(residual.std(dim=0).clamp_min(1e-3).to(device))
    if config.model.diffusion.depth_prior == "dataset":
        depth = fit_depth_gmm(training_poses(train_batches), config.model.diffusion.depth_components, seed=cfg.seed)
        model.set_depth_prior(depth)
    t1 = time.monotonic()
    stage2 = train_denoiser(model, train_batches, val_frames, config, device, budget, **common)
    stage2["spread_scale"] = fit_spread_scale(model, val_frames, config)
    t2 = time.monotonic()

    info = {
        "name": config.name,
        "train_frames": len(train_batches),
        "val_frames": len(val_frames),
        "setup_minutes": setup_minutes,
        "stage1": stage1,
        "stage2": stage2,
        "minutes": {"stage1": (t1 - t0) / 60, "stage2": (t2 - t1) / 60},  # of this process
        "run_minutes": (t2 - budget.start) / 60,  # of the whole run, resumed processes included
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
