"""One training stage: AdamW with warm-up + cosine decay, an EMA copy, validation and model
selection, a wall-clock budget, and crash-safe checkpoints that a killed run resumes from exactly.

Under a budget (`train.max_minutes`) the schedule's progress is the larger of the step fraction and
the fraction of the stage's time spent, so the learning rate anneals fully however many epochs fit.
Without a budget the run is a pure function of the seed (and resumes bit-for-bit).

A checkpoint is `<dir>/<stage>.safetensors` (weights, EMA weights, optimizer tensors, RNG states)
plus `<dir>/<stage>.json` (epoch, schedule, history, best validation); both written atomically, the
JSON last, so a run killed between the two resumes from the previous complete checkpoint.
Nothing is ever unpickled.
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
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from diffpose3d.config import TrainConfig
from diffpose3d.training.distributed import DistInfo
from diffpose3d.io.atomic import atomic_write

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


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = opt.state_dict()
    tensors = {}
    for pid, values in state["state"].items():
        for key, value in values.items():
            tensors[f"opt.{pid}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return tensors, {"param_groups": state["param_groups"]}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


class StageCheckpoint:
    def __init__(self, folder: Path, stage: str) -> None:
        self.weights = folder / f"{stage}.safetensors"
        self.meta = folder / f"{stage}.json"

    def exists(self) -> bool:
        return self.meta.is_file() and self.weights.is_file()

    def save(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self.weights.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.weights.with_name(f".{self.weights.name}.tmp")
        save_file(tensors, str(tmp))
        tmp.replace(self.weights)
        with atomic_write(self.meta, "w") as handle:
            json.dump(meta, handle)

    def load(self) -> tuple[dict[str, torch.Tensor], dict]:
        meta = json.loads(self.meta.read_text())
        return load_file(str(self.weights)), meta


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
    ema = AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay))
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=spec.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(num_samples / cfg.batch_size)
    total_steps = max(spec.epochs * steps_per_epoch, 1)
    stage_start = time.monotonic()
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(max(step / total_steps, budget.progress(stage_start, spec.budget_share)))
    )
    gen = torch.Generator().manual_seed(spec.seed)
    train_module = (
        DistributedDataParallel(module, device_ids=[dist_info.local_rank] if next(module.parameters()).is_cuda else None)
        if dist_info.enabled else module
    )
    start_epoch, history = 0, []
    best = {"val_mpjpe_mm": math.inf, "epoch": 0}
    best_state = copy.deepcopy(ema.module.state_dict())
    ckpt = StageCheckpoint(checkpoint_dir, spec.name) if checkpoint_dir is not None else None
    if resume and ckpt is not None and ckpt.exists():
        tensors, meta = ckpt.load()
        module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        _load_optimizer(opt, tensors, meta["optimizer"])
        sched.load_state_dict(meta["scheduler"])
        gen.set_state(tensors["rng.generator"])
        torch.set_rng_state(tensors["rng.torch"])
        start_epoch, history, best = meta["epoch"], meta["history"], meta["best"]
        # The wall-clock budget and the stage's learning-rate schedule continue, not restart:
        # the killed run's time counts as spent.
        elapsed = meta.get("elapsed_s", {})
        now = time.monotonic()
        budget.start = min(budget.start, now - float(elapsed.get("run", 0.0)))
        stage_start = now - float(elapsed.get("stage", 0.0))
        if meta.get("finished"):
            module.load_state_dict(best_state)
            return {"best_val_mpjpe_mm": best["val_mpjpe_mm"], "best_epoch": best["epoch"], "history": history, "resumed_from": start_epoch}
    bar = tqdm(range(start_epoch, spec.epochs), desc=f"{spec.name}", initial=start_epoch, total=spec.epochs,
               disable=not (cfg.progress and dist_info.is_main))
    finished = start_epoch >= spec.epochs
    for epoch in bar:
        if on_epoch_start is not None:
            on_epoch_start(epoch)  # a pure function of the epoch, so resuming stays exact
        module.train()
        losses = []
        for index in _batches(num_samples, cfg.batch_size, gen):
            flip = cfg.flip_augment and bool(torch.rand((), generator=gen) < 0.5)
            rows = torch.arange(dist_info.rank, len(index), dist_info.world_size)
            loss = loss_fn(train_module, index, flip, gen, rows)
            opt.zero_grad(set_to_none=True)
            # DDP averages gradients over ranks; each rank's loss is already its share of the global mean.
            (loss * dist_info.world_size).backward()
            if spec.clip_grad:
                torch.nn.utils.clip_grad_norm_(module.parameters(), spec.clip_grad)
            opt.step()
            sched.step()
            ema.update_parameters(module)
            losses.append(float(loss.detach()))
        last = epoch + 1 == spec.epochs or budget.expired(spec.budget_share)
        if (epoch + 1) % cfg.eval_every == 0 or last:
            val = float(validate(ema.module))
            record = {"stage": spec.name, "epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_mpjpe_mm": val}
            history.append(record)
            if val < best["val_mpjpe_mm"]:
                best = {"val_mpjpe_mm": val, "epoch": epoch + 1}
                best_state = copy.deepcopy(ema.module.state_dict())
            if log and dist_info.is_main:
                log(record)
            bar.set_postfix(loss=f"{np.mean(losses):.4f}", val_mm=f"{val:.1f}")
        finished = last
        if ckpt is not None and dist_info.is_main and ((epoch + 1) % max(cfg.checkpoint_every, 1) == 0 or last):
            tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
            tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
            tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in best_state.items()})
            opt_tensors, opt_meta = _optimizer_tensors(opt)
            tensors.update(opt_tensors)
            tensors["rng.generator"] = gen.get_state()
            tensors["rng.torch"] = torch.get_rng_state()
            ckpt.save(tensors, {
                "epoch": epoch + 1, "history": history, "best": best, "finished": finished,
                "optimizer": opt_meta, "scheduler": sched.state_dict(),
                "elapsed_s": {"run": time.monotonic() - budget.start, "stage": time.monotonic() - stage_start},
            })
        if last:
            break
    module.load_state_dict(best_state)
    return {"best_val_mpjpe_mm": best["val_mpjpe_mm"], "best_epoch": best["epoch"], "history": history}
