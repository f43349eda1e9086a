"""The training-state format: what a stage saves so that a killed run resumes from exactly where it
stopped, and how a save is verified before it is resumed from.

A save (`StageCheckpoint`) is one self-describing file, `<dir>/<stage>-e<epoch>.safetensors`
(weights, EMA weights, optimizer tensors, RNG states, and in its header the epoch, schedule,
history and best validation with a checksum), then `<dir>/<stage>.json`, a pointer to it written
last; the previous save is kept until the pointer names the new one, so a run killed anywhere
resumes from a complete save, and a damaged one is detected, not resumed from.
Nothing is ever unpickled. (This is training state; a model bundle is `diffpose3d.bundle`.)
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from diffpose3d.errors import InputFileError
from diffpose3d.io.atomic import atomic_write, save_json_atomic


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
        if found != shapes or missing or not set(meta) >= _META_KEYS:
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


def _state_tensors(module: nn.Module, ema: nn.Module, best_state: dict) -> dict[str, torch.Tensor]:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in best_state.items()})
    return tensors


def collect_state(module: nn.Module, ema: nn.Module, best_state: dict, opt: torch.optim.Optimizer,
                  generator: torch.Generator) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors of a save (weights, EMA, best, optimizer, RNG states) and the optimizer's metadata."""
    tensors = _state_tensors(module, ema, best_state)
    opt_tensors, opt_meta = _optimizer_tensors(opt)
    tensors.update(opt_tensors)
    tensors["rng.generator"] = generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    return tensors, opt_meta


def restore_state(tensors: dict[str, torch.Tensor], meta: dict, module: nn.Module, ema: nn.Module,
                  opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler,
                  generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Loads a verified save into the live objects and the global RNG; returns the best weights.
    Raises what `load_state_dict` raises on a mismatch (the caller words it)."""
    module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    _load_optimizer(opt, tensors, meta["optimizer"])
    sched.load_state_dict(meta["scheduler"])
    generator.set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.torch"])
    return best_state
