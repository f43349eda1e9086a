"""One training stage: AdamW with warm-up + cosine decay, an EMA copy, validation and model
selection, a wall-clock budget, and crash-safe checkpoints that a killed run resumes from exactly.

Under a budget (`train.max_minutes`) the schedule's progress is the larger of the step fraction and
the fraction of the stage's time spent, so the learning rate anneals fully however many epochs fit.
Without a budget the run is a pure function of the seed (and resumes bit-for-bit).

`run_stage` reads as its steps: `_set_up` (the optimiser, schedule, EMA and generator), `_resume`
(continue a saved state), then per epoch `_train_epoch`, `_validate` and `_save`. What a save holds
and how it is verified is `training.state`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from diffpose3d.config import TrainConfig
from diffpose3d.errors import InputFileError
from diffpose3d.training.distributed import DistInfo
from diffpose3d.training.state import StageCheckpoint, _state_tensors, collect_state, restore_state

# loss_fn(net, global_batch_index, flip, generator, rows) -> the loss of this rank's `rows` of the
# global batch, divided by the global batch size (so the sum over ranks is the global mean).
LossFn = Callable[[nn.Module, torch.Tensor, bool, torch.Generator, torch.Tensor], torch.Tensor]


@dataclass
class Budget:
    """Wall-clock budget of a run; each stage owns the time up to its `share` of it."""

    minutes: float
    start: float = field(default_factory=time.monotonic)

    def expired(self, share_until: float) -> bool:
        if self.minutes <= 0:
            return False
        return time.monotonic() - self.start > share_until * self.minutes * 60.0

    def progress(self, stage_start: float, share_until: float) -> float:
        """Fraction of the stage's time window spent (0 without a budget)."""
        if self.minutes <= 0:
            return 0.0
        end = self.start + share_until * self.minutes * 60.0
        return min(max((time.monotonic() - stage_start) / max(end - stage_start, 1e-9), 0.0), 1.0)


def lr_factor(progress: float, warmup: float = 0.05, floor: float = 0.01) -> float:
    """Linear warm-up, then cosine decay to `floor` of the peak learning rate."""
    if progress < warmup:
        return max(progress / warmup, floor)
    t = min((progress - warmup) / (1.0 - warmup), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


@dataclass
class StageSpec:
    name: str  # "encoder" | "denoiser"
    epochs: int
    lr: float
    seed: int
    budget_share: float  # the stage stops once this share of the run's budget is spent
    clip_grad: float | None = None


def _batches(n: int, batch_size: int, generator: torch.Generator, steps: int = 0) -> list[torch.Tensor]:
    """One epoch's batches of sample indices: a permutation of the `n` samples, or (`steps` > 0) that
    many batches drawn at random: a large data set is then trained, validated and checkpointed
    by steps, not by passes over it."""
    if steps > 0:
        return list(torch.randint(n, (steps, batch_size), generator=generator))
    order = torch.randperm(n, generator=generator)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


class Autocast(nn.Module):
    """Runs `module`'s forward pass under bfloat16 autocast and hands float32 outputs back, so that
    the losses, the forward process and the optimiser stay in float32."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        device_type = next(self.module.parameters()).device.type
        with torch.autocast(device_type, dtype=torch.bfloat16):
            out = self.module(*args, **kwargs)
        return _to_float32(out)


def _to_float32(out):
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (tuple, list)):
        return type(out)(_to_float32(o) for o in out)
    return out


@dataclass
class _Stage:
    """The live state of one stage while it trains (what a save holds, plus the objects it lives in)."""

    module: nn.Module
    train_module: nn.Module  # `module`, wrapped for DDP and/or bf16 autocast
    ema: AveragedModel
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR | None  # set right after the stage (it reads its clock)
    gen: torch.Generator
    stage_start: float
    best_state: dict
    history: list = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"val_mpjpe_mm": math.inf, "epoch": 0})


def _set_up(spec: StageSpec, module: nn.Module, num_samples: int, cfg: TrainConfig, budget: Budget,
            dist_info: DistInfo) -> _Stage:
    """A fresh stage: EMA copy, AdamW, the warm-up + cosine schedule, the seeded generator."""
    # use_buffers: BatchNorm's running statistics are averaged with the weights they belong to.
    # Copied from the live network instead, they do not fit the lagging EMA weights (the TCN
    # validated at 222 instead of 87 mm after 2,000 steps).
    ema = AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=spec.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = cfg.epoch_steps or math.ceil(num_samples / cfg.batch_size)
    total_steps = max(spec.epochs * steps_per_epoch, 1)
    gen = torch.Generator().manual_seed(spec.seed)
    train_module = (
        DistributedDataParallel(module, device_ids=[dist_info.local_rank] if next(module.parameters()).is_cuda else None)
        if dist_info.enabled else module
    )
    if cfg.precision == "bf16":
        train_module = Autocast(train_module)
    stage = _Stage(module, train_module, ema, opt, None, gen, time.monotonic(), copy.deepcopy(ema.module.state_dict()))
    # The schedule reads `stage.stage_start` when it steps, so a resumed stage's clock is honoured.
    stage.sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(max(step / total_steps, budget.progress(stage.stage_start, spec.budget_share)))
    )
    return stage


def _resume(stage: _Stage, ckpt: StageCheckpoint, name: str, budget: Budget) -> dict | None:
    """Continues `ckpt`'s newest valid save into `stage`; returns the saved meta (None: nothing saved).
    The wall-clock budget and the learning-rate schedule continue, not restart: the killed run's
    time counts as spent."""
    shapes = {k: tuple(v.shape) for k, v in _state_tensors(stage.module, stage.ema, stage.best_state).items()}
    saved = ckpt.load(shapes)
    if saved is None:
        return None
    tensors, meta = saved
    try:
        stage.best_state = restore_state(tensors, meta, stage.module, stage.ema, stage.opt, stage.sched, stage.gen)
        stage.history, stage.best = list(meta["history"]), dict(meta["best"])
        int(meta["epoch"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise InputFileError(ckpt.meta, f"cannot resume the {name} stage from it ({type(exc).__name__})") from None
    elapsed = meta.get("elapsed_s", {})
    now = time.monotonic()
    budget.start = min(budget.start, now - float(elapsed.get("run", 0.0)))
    stage.stage_start = now - float(elapsed.get("stage", 0.0))
    return meta


def _train_epoch(stage: _Stage, spec: StageSpec, loss_fn: LossFn, num_samples: int, cfg: TrainConfig,
                 dist_info: DistInfo) -> list[float]:
    """One epoch of optimiser steps (each followed by a schedule step and an EMA update); the losses."""
    stage.module.train()
    losses = []
    for index in _batches(num_samples, cfg.batch_size, stage.gen, cfg.epoch_steps):
        flip = cfg.flip_augment and bool(torch.rand((), generator=stage.gen) < 0.5)
        rows = torch.arange(dist_info.rank, len(index), dist_info.world_size)
        loss = loss_fn(stage.train_module, index, flip, stage.gen, rows)
        stage.opt.zero_grad(set_to_none=True)
        # DDP averages gradients over ranks; each rank's loss is already its share of the global mean.
        (loss * dist_info.world_size).backward()
        if spec.clip_grad:
            torch.nn.utils.clip_grad_norm_(stage.module.parameters(), spec.clip_grad)
        stage.opt.step()
        stage.sched.step()
        stage.ema.update_parameters(stage.module)
        losses.append(float(loss.detach()))
    return losses


def _validate(stage: _Stage, spec: StageSpec, epoch: int, losses: list[float],
              validate: Callable[[nn.Module], float]) -> dict:
    """Validates the EMA weights, keeps them if they are the best so far; the history record."""
    val = float(validate(stage.ema.module))
    record = {"stage": spec.name, "epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_mpjpe_mm": val}
    stage.history.append(record)
    if val < stage.best["val_mpjpe_mm"]:
        stage.best = {"val_mpjpe_mm": val, "epoch": epoch + 1}
        stage.best_state = copy.deepcopy(stage.ema.module.state_dict())
    return record


def _save(stage: _Stage, ckpt: StageCheckpoint, epoch: int, finished: bool, budget: Budget) -> None:
    tensors, opt_meta = collect_state(stage.module, stage.ema, stage.best_state, stage.opt, stage.gen)
    ckpt.save(tensors, {
        "epoch": epoch + 1, "history": stage.history, "best": stage.best, "finished": finished,
        "optimizer": opt_meta, "scheduler": stage.sched.state_dict(),
        "elapsed_s": {"run": time.monotonic() - budget.start, "stage": time.monotonic() - stage.stage_start},
    })


def run_stage(
    spec: StageSpec,
    module: nn.Module,
    loss_fn: LossFn,
    validate: Callable[[nn.Module], float],
    num_samples: int,
    cfg: TrainConfig,
    *,
    budget: Budget,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    log: Callable[[dict], None] | None = None,
    dist_info: DistInfo = DistInfo(),
    on_epoch_start: Callable[[int], None] | None = None,
) -> dict:
    """Train `module` for `spec.epochs` epochs; load the best EMA weights into it at the end.

    `validate(ema_module) -> mm` runs every `cfg.eval_every` epochs and at the last epoch. With
    `checkpoint_dir` the complete state is saved after every epoch (and removed once the stage ends,
    except the result); with `resume` a saved state is continued exactly where it stopped.
    """
    stage = _set_up(spec, module, num_samples, cfg, budget, dist_info)
    ckpt = None
    if checkpoint_dir is not None:  # every rank reads a checkpoint; rank 0 alone writes and warns
        ckpt = StageCheckpoint(checkpoint_dir, spec.name, None if dist_info.is_main else (lambda message: None))
    start_epoch = 0
    meta = _resume(stage, ckpt, spec.name, budget) if resume and ckpt is not None else None
    if meta is not None:
        start_epoch = int(meta["epoch"])
        if meta.get("finished"):
            module.load_state_dict(stage.best_state)
            return {"best_val_mpjpe_mm": stage.best["val_mpjpe_mm"], "best_epoch": stage.best["epoch"],
                    "history": stage.history, "resumed_from": start_epoch}
    bar = tqdm(range(start_epoch, spec.epochs), desc=f"{spec.name}", initial=start_epoch, total=spec.epochs,
               disable=not (cfg.progress and dist_info.is_main))
    for epoch in bar:
        if on_epoch_start is not None:
            on_epoch_start(epoch)  # a pure function of the epoch, so resuming stays exact
        losses = _train_epoch(stage, spec, loss_fn, num_samples, cfg, dist_info)
        last = epoch + 1 == spec.epochs or budget.expired(spec.budget_share)
        if (epoch + 1) % cfg.eval_every == 0 or last:
            record = _validate(stage, spec, epoch, losses, validate)
            if log and dist_info.is_main:
                log(record)
            bar.set_postfix(loss=f"{np.mean(losses):.4f}", val_mm=f"{record['val_mpjpe_mm']:.1f}")
        if ckpt is not None and dist_info.is_main and ((epoch + 1) % max(cfg.checkpoint_every, 1) == 0 or last):
            _save(stage, ckpt, epoch, last, budget)
        if last:
            break
    module.load_state_dict(stage.best_state)
    return {"best_val_mpjpe_mm": stage.best["val_mpjpe_mm"], "best_epoch": stage.best["epoch"], "history": stage.history}
