"""One training stage: AdamW with warm-up + cosine decay, an EMA copy, validation and model
selection, a wall-clock budget, and crash-safe checkpoints that a killed run resumes from exactly.

Under a budget (`train.max_minutes`) the schedule's progress is the larger of the step fraction and
the fraction of the stage's time spent, so the learning rate anneals fully however many epochs fit.
Without a budget the run is a pure function of the seed (and resumes bit-for-bit).

A checkpoint (`StageCheckpoint`) is one self-describing file per save, `<dir>/<stage>-e<epoch>.safetensors`
(weights, EMA weights, optimizer tensors, RNG states, and in its header the epoch, schedule,
history and best validation with a checksum), then `<dir>/<stage>.json`, a pointer to it written
last; the previous save is kept until the pointer names the new one, so a run killed anywhere
resumes from a complete checkpoint, and a damaged one is detected, not resumed from.
Nothing is ever unpickled.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from diffpose3d.config import TrainConfig
from diffpose3d.training.distributed import DistInfo
from diffpose3d.errors import InputFileError
from diffpose3d.io.atomic import atomic_write, save_json_atomic

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


class _Invalid(Exception):
    """A saved checkpoint that cannot be resumed from (the reason, for a one-line message)."""


CHECKPOINT_FORMAT = "diffpose3d.stage/1"


class StageCheckpoint:
    """A stage's resumable state, one self-describing file per save.

    `<stage>-e<epoch>.safetensors` holds every tensor (weights, EMA, best, optimizer, RNG states) and,
    in its header, the stage name, the metadata JSON and a SHA-256 of the metadata and the tensor
    data. `<stage>.json`, written after it (atomically), names the current file and repeats its
    metadata; only then are older saves deleted, all but the one before it (a fallback). Resuming
    verifies the stage, the checksum and the tensor set: the file the pointer names, else (a
    one-line warning) the newest valid file; a folder with saves of this stage but no valid one is
    refused (one line), never restarted silently.
    """

    def __init__(self, folder: Path, stage: str, warn: Callable[[str], None] | None = None) -> None:
        self.folder, self.stage = Path(folder), stage
        self.meta = self.folder / f"{stage}.json"
        self.legacy = self.folder / f"{stage}.safetensors"  # the older two-file layout
        self._pattern = re.compile(rf"{re.escape(stage)}-e\d{{6}}\.safetensors")
        self.warn = warn or (lambda message: print(message, file=sys.stderr))
        self._previous: Path | None = None  # the save this run resumed from or wrote last

    def _saves(self) -> list[Path]:
        """This stage's save files, newest first."""
        if not self.folder.is_dir():
            return []
        return sorted((p for p in self.folder.iterdir() if self._pattern.fullmatch(p.name)), reverse=True)

    def save(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        text = json.dumps(meta)
        data = _data_section(save(tensors))
        digest = hashlib.sha256(text.encode() + data).hexdigest()
        target = self.folder / f"{self.stage}-e{int(meta['epoch']):06d}.safetensors"
        header = {"format": CHECKPOINT_FORMAT, "stage": self.stage, "meta": text, "sha256": digest}
        with atomic_write(target, "wb") as handle:
            handle.write(save(tensors, metadata=header))
        save_json_atomic(self.meta, {"format": CHECKPOINT_FORMAT, "stage": self.stage, "file": target.name,
                                     "sha256": digest, **meta})
        # Kept: this save and the one before it in this run (the fallback if this one is damaged later);
        # anything else is older, or a stale save of a killed or overwritten run.
        for old in [*self._saves(), self.legacy]:
            if old not in (target, self._previous):
                old.unlink(missing_ok=True)
        self._previous = target

    def _named(self) -> tuple[Path, str]:
        """The file the pointer names and its checksum (raises `_Invalid`)."""
        try:
            pointer = json.loads(self.meta.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            raise _Invalid(f"{self.meta.name} is missing") from None
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise _Invalid(f"{self.meta.name} is unreadable ({type(exc).__name__})") from None
        name = pointer.get("file") if isinstance(pointer, dict) else None
        if not isinstance(name, str) or not self._pattern.fullmatch(name):
            raise _Invalid(f"{self.meta.name} names no {self.stage} checkpoint file")
        if not (self.folder / name).is_file():
            raise _Invalid(f"{name}, which {self.meta.name} names, is missing")
        return self.folder / name, str(pointer.get("sha256"))

    def _read(self, path: Path, shapes: dict[str, tuple[int, ...]], digest: str | None) -> tuple[dict[str, torch.Tensor], dict]:
        """A save file's tensors and metadata, verified (raises `_Invalid`); read in pieces, so a huge
        stray file costs no memory."""
        with path.open("rb") as handle:
            head = handle.read(8)
            size = int.from_bytes(head, "little") if len(head) == 8 else -1
            try:
                ok = 0 < size <= min(path.stat().st_size - 8, 100 << 20)  # safetensors' own header limit
                header = json.loads(handle.read(size)) if ok else None
            except (UnicodeDecodeError, ValueError, RecursionError):
                header = None
            info = header.get("__metadata__") if isinstance(header, dict) else None
            if not isinstance(info, dict) or info.get("format") != CHECKPOINT_FORMAT:
                raise _Invalid(f"{path.name} is truncated or not a checkpoint")
            if info.get("stage") != self.stage:
                raise _Invalid(f"{path.name} holds the '{info.get('stage')}' stage, not '{self.stage}'")
            text = str(info.get("meta", ""))
            hasher = hashlib.sha256(text.encode())
            for piece in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(piece)
        if hasher.hexdigest() != info.get("sha256"):
            raise _Invalid(f"{path.name} is damaged (checksum mismatch)")
        if digest is not None and digest != info.get("sha256"):
            raise _Invalid(f"{path.name} is not the save {self.meta.name} names (another checksum)")
        try:
            tensors, meta = load_file(str(path)), json.loads(text)
        except (SafetensorError, ValueError) as exc:
            raise _Invalid(f"{path.name} is unreadable ({exc})") from None
        found = {k: tuple(v.shape) for k, v in tensors.items() if k.split(".", 1)[0] in ("model", "ema", "best")}
        missing = {"rng.generator", "rng.torch"} - set(tensors)
        if found != shapes or missing or not _META_KEYS <= set(meta):
            raise _Invalid(f"{path.name} does not hold this model's {self.stage} state")
        return tensors, meta

    def load(self, shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, torch.Tensor], dict] | None:
        """The newest valid save (`shapes`: the model./ema./best. tensors it must hold), or None when
        this stage has never been saved here; `InputFileError` when saves exist but none is valid."""
        problems, candidates = [], [(p, None) for p in self._saves()]
        try:
            named, digest = self._named()
            candidates = [(named, digest), *[c for c in candidates if c[0] != named]]
        except _Invalid as exc:
            if candidates or self.meta.exists() or self.legacy.exists():
                problems.append(str(exc))
        for path, digest in candidates:
            try:
                tensors, meta = self._read(path, shapes, digest)
            except _Invalid as exc:
                problems.append(str(exc))
                continue
            except OSError as exc:
                problems.append(f"{path.name} is unreadable ({exc.strerror or exc})")
                continue
            if problems:
                self.warn(f"diffpose3d: warning: {self.folder}: {'; '.join(problems)}: "
                          f"resuming from {path.name} (epoch {meta['epoch']})")
            self._previous = path
            return tensors, meta
        if problems:
            if self.legacy.exists():
                problems.append(f"{self.legacy.name} is in an older layout")
            raise InputFileError(self.folder, f"no valid {self.stage} checkpoint to resume from ({'; '.join(problems)}); "
                                              "delete the folder to start this run over")
        return None


_META_KEYS = {"epoch", "history", "best", "finished", "optimizer", "scheduler"}


def _data_section(blob: bytes) -> bytes:
    """The tensor bytes of a serialised safetensors file (what follows its header)."""
    return blob[8 + int.from_bytes(blob[:8], "little"):]


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


def _state_tensors(module: nn.Module, ema: nn.Module, best_state: dict) -> dict[str, torch.Tensor]:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in best_state.items()})
    return tensors


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
    # use_buffers: BatchNorm's running statistics are averaged with the weights they belong to.
    # Copied from the live network instead, they do not fit the lagging EMA weights (the TCN
    # validated at 222 instead of 87 mm after 2,000 steps).
    ema = AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=spec.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = cfg.epoch_steps or math.ceil(num_samples / cfg.batch_size)
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
    if cfg.precision == "bf16":
        train_module = Autocast(train_module)
    start_epoch, history = 0, []
    best = {"val_mpjpe_mm": math.inf, "epoch": 0}
    best_state = copy.deepcopy(ema.module.state_dict())
    ckpt = None
    if checkpoint_dir is not None:  # every rank reads a checkpoint; rank 0 alone writes and warns
        ckpt = StageCheckpoint(checkpoint_dir, spec.name, None if dist_info.is_main else (lambda message: None))
    saved = ckpt.load({k: tuple(v.shape) for k, v in _state_tensors(module, ema, best_state).items()}) \
        if resume and ckpt is not None else None
    if saved is not None:
        tensors, meta = saved
        try:
            module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
            best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
            _load_optimizer(opt, tensors, meta["optimizer"])
            sched.load_state_dict(meta["scheduler"])
            gen.set_state(tensors["rng.generator"])
            torch.set_rng_state(tensors["rng.torch"])
            start_epoch, history, best = int(meta["epoch"]), list(meta["history"]), dict(meta["best"])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise InputFileError(ckpt.meta, f"cannot resume the {spec.name} stage from it ({type(exc).__name__})") from None
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
        for index in _batches(num_samples, cfg.batch_size, gen, cfg.epoch_steps):
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
            tensors = _state_tensors(module, ema, best_state)
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
