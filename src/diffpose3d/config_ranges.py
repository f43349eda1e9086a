"""The allowed range of every setting, keyed by its dotted name ("train.batch_size"), and the check
`config.config_from_dict` runs on every config it builds (a YAML file, `--set` overrides, a bundle's
`config.yaml`). Explicit checks (never `assert`, so they hold under `python -O`); a refusal is one
`ConfigError` line naming the key, the allowed range and the value.

A new field gets its line in `RANGES`; `check_config` also runs the cross-field checks of `_CROSS`.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
from collections.abc import Callable
from typing import Any

from diffpose3d.errors import ConfigError

# A check returns None when the value is fine, else the allowed range in words.
Check = Callable[[Any], "str | None"]

SEED_MAX = 2**32 - 1  # numpy's and torch's seeds; offsets added to a seed stay in int64


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_fmt(lo)}"
    return f"{'<' if hi_open else '<='} {_fmt(hi)}" if hi is not None else "finite"


def _inside(x: Any, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool, integer: bool) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or (integer and not isinstance(x, int)):
        return False
    if not math.isfinite(x):
        return False
    if lo is not None and (x < lo or (lo_open and x == lo)):
        return False
    return hi is None or (x < hi or (not hi_open and x == hi))


def max_threads() -> int:
    """The CPUs this process may run on (at least 1): the bound of every thread-count setting."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def clamp_threads(threads: int) -> int:
    """A thread-count setting (0: the library's default) clamped to this machine's CPUs."""
    return min(max(int(threads), 0), max_threads())


def integer(lo: float | None = None, hi: float | None = None) -> Check:
    allowed = f"an integer {_interval(lo, hi, False, False)}"
    return lambda x: None if _inside(x, lo, hi, False, False, True) else allowed


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False) -> Check:
    allowed = f"a number {_interval(lo, hi, lo_open, hi_open)}"
    return lambda x: None if _inside(x, lo, hi, lo_open, hi_open, False) else allowed


def one_of(*choices: str) -> Check:
    allowed = f"one of {' | '.join(choices)}"
    return lambda x: None if x in choices else allowed


def numbers(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, length: int | None = None,
            nonempty: bool = False, ordered: bool = False, whole: bool = False) -> Check:
    """A list of numbers in a range: of `length` items, `nonempty`, `ordered` ([low, high], low <= high)."""
    count = f"{length} " if length else ("one or more " if nonempty else "")
    kind = "integers" if whole else "numbers"
    allowed = f"a list of {count}{kind} {_interval(lo, hi, lo_open, False)}" + (" [low, high], low <= high" if ordered else "")

    def check(x: Any) -> str | None:
        ok = isinstance(x, list) and (length is None or len(x) == length) and (not nonempty or len(x) > 0)
        ok = ok and all(_inside(v, lo, hi, lo_open, False, whole) for v in x)
        return None if ok and (not ordered or x[0] <= x[1]) else allowed
    return check


def _holdout_fractions(x: Any) -> str | None:
    ok = numbers(0, 1, length=3)(x) is None and x[0] > 0 and x[1] > 0
    return None if ok else "three numbers [train, val, test] in [0, 1] with train > 0 and val > 0"


def registry(module: str, name: str) -> Check:
    """One of the choices `module` owns in its registry `name` (a tuple, or a dict's keys): one list,
    where the code that dispatches on it lives. Read when a value is checked, as those modules
    import the config themselves."""
    return lambda x: one_of(*getattr(importlib.import_module(module), name))(x)


SHARE = number(0, 1)
POSITIVE = number(0, lo_open=True)
NONNEGATIVE = number(0)
SEED = integer(0, SEED_MAX)
COUNT = integer(1, 1_000_000)
WIDTH = integer(1, 4096)
BLOCKS = integer(1, 64)
DROPOUT = number(0, 1, hi_open=True)
LEARNING_RATE = number(0, 1, lo_open=True)

RANGES: dict[str, Check] = {
    "data.dataset": registry("diffpose3d.data.protocols", "BENCHMARKS"),
    "data.holdout_fractions": _holdout_fractions,
    "data.holdout_gap_frames": integer(0, 1_000_000),
    "data.stride": COUNT,
    "data.test_stride": COUNT,
    "data.virtual.share": SHARE,
    "data.virtual.elevation": numbers(-90, 90, length=2, ordered=True),
    "data.virtual.roll": number(0, 180),
    "data.virtual.focal": numbers(0, lo_open=True, length=2, ordered=True),
    "data.virtual.size": numbers(0, lo_open=True, length=2, ordered=True),
    "data.virtual.offset": SHARE,
    "data.virtual.aspects": numbers(0, lo_open=True, nonempty=True),
    "data.virtual.bone_scale": number(0, 1),
    "evidence.source": registry("diffpose3d.data.frames", "SOURCES"),
    "evidence.keypoint_std_px": POSITIVE,
    "evidence.seed": SEED,
    "evidence.exact_share": SHARE,
    "evidence.detection_share": SHARE,
    "evidence.synthetic.noise_px": NONNEGATIVE,
    "evidence.synthetic.swap_prob": SHARE,
    "evidence.synthetic.occlusion_prob": SHARE,
    "evidence.synthetic.occlusion_scale": POSITIVE,
    "evidence.synthetic.secondary_weight": SHARE,
    "evidence.synthetic.min_std_px": POSITIVE,
    "evidence.synthetic.relative_noise": numbers(0),
    "evidence.synthetic.outlier_prob": SHARE,
    "evidence.synthetic.outlier_scale": POSITIVE,
    "evidence.synthetic.heatmap_size": numbers(8, 1024, length=2, whole=True),
    "evidence.synthetic.crop_margin": NONNEGATIVE,
    "evidence.synthetic.min_crop_px": POSITIVE,
    "model.skeleton": registry("diffpose3d.skeleton", "SKELETON_NAMES"),
    "model.encoder.kind": registry("diffpose3d.model", "CONTEXTS"),
    "model.encoder.inputs": registry("diffpose3d.model", "INPUTS"),
    "model.encoder.width": WIDTH,
    "model.encoder.hidden": WIDTH,
    "model.encoder.blocks": BLOCKS,
    "model.encoder.heads": integer(1, 64),
    "model.encoder.dropout": DROPOUT,
    "model.encoder.frames": integer(1, 1024),
    "model.encoder.stride": integer(1, 1024),
    "model.denoiser.width": WIDTH,
    "model.denoiser.blocks": BLOCKS,
    "model.denoiser.heads": integer(1, 64),
    "model.denoiser.dropout": DROPOUT,
    "model.denoiser.motion_radius": integer(0, 64),
    "model.diffusion.num_steps": integer(1, 10_000),
    "model.diffusion.schedule": registry("diffpose3d.diffusion.schedule", "SCHEDULES"),
    "model.diffusion.num_components": integer(1, 64),
    "model.diffusion.depth_prior": registry("diffpose3d.diffusion.hk", "DEPTH_PRIORS"),
    "model.diffusion.depth_components": integer(1, 64),
    "train.seed": SEED,
    "train.threads": integer(0, 1024),
    "train.precision": one_of("fp32", "bf16"),
    "train.batch_size": integer(1, 65_536),
    "train.encoder_epochs": COUNT,
    "train.encoder_lr": LEARNING_RATE,
    "train.denoiser_epochs": COUNT,
    "train.denoiser_lr": LEARNING_RATE,
    "train.weight_decay": number(0, 1),
    "train.ema_decay": number(0, 1, hi_open=True),
    "train.max_minutes": NONNEGATIVE,
    "train.encoder_share": SHARE,
    "train.window_batch_size": integer(1, 65_536),
    "train.chunk_frames": integer(1, 65_536),
    "train.video_frame_pretrain": SHARE,
    "train.video_encoder_lr": LEARNING_RATE,
    "train.velocity_weight": NONNEGATIVE,
    "train.uv_loss_weight": NONNEGATIVE,
    "train.epoch_steps": integer(0, 1_000_000),
    "train.eval_every": COUNT,
    "train.checkpoint_every": COUNT,
    "train.val_hypotheses": integer(1, 1000),
    "train.val_steps": integer(1, 10_000),
    "train.val_max_frames": integer(0, 100_000_000),
    "inference.hypotheses": integer(1, 1000),
    "inference.steps": integer(1, 10_000),
    "inference.eta": number(0, 1),
    "inference.aggregate": registry("diffpose3d.inference.aggregate", "AGGREGATES"),
    "inference.mode": registry("diffpose3d.model", "MODES"),
    "inference.seed": SEED,
    "inference.batch_frames": COUNT,
    "inference.backend": registry("diffpose3d.models.onnx_backend", "BACKENDS"),
    "inference.precision": registry("diffpose3d.inference.precision", "PRECISIONS"),
}


def _divides(config: Any, part: str) -> str | None:
    net = getattr(config.model, part)
    if net.width % net.heads:
        return f"model.{part}.width must be a multiple of model.{part}.heads={net.heads}, got {net.width}"
    return None


def _within_k(config: Any, key: str) -> str | None:
    section, name = key.split(".")
    value, k = getattr(getattr(config, section), name), config.model.diffusion.num_steps
    return f"{key} must be <= model.diffusion.num_steps={k}, got {value}" if value > k else None


def _shares(config: Any) -> str | None:
    e = config.evidence
    total = e.exact_share + e.detection_share
    return f"evidence.exact_share + evidence.detection_share must be <= 1, got {total:g}" if total > 1 else None


def _receptive_field(config: Any) -> str | None:
    e = config.model.encoder
    if e.kind != "tcn":
        return None
    field = 9
    while field < e.frames:
        field *= 3
    if field == e.frames:
        return None
    return f"model.encoder.frames of a tcn encoder must be a power of 3 (9, 27, 81, 243), got {e.frames}"


_CROSS: list[Callable[[Any], str | None]] = [
    lambda c: _divides(c, "encoder"), lambda c: _divides(c, "denoiser"), _receptive_field,
    lambda c: _within_k(c, "inference.steps"), lambda c: _within_k(c, "train.val_steps"), _shares,
]


def show(value: Any) -> str:
    """A value for a one-line message (long ones cut)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_section(section: Any, prefix: str) -> None:
    """Range-check the fields of one (nested) section dataclass, e.g. `check_section(cfg, "inference")`
    for an `InferenceConfig` built with `dataclasses.replace`."""
    for f in dataclasses.fields(section):
        key, value = f"{prefix}.{f.name}" if prefix else f.name, getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            check_section(value, key)
        elif key in RANGES and (allowed := RANGES[key](value)) is not None:
            raise ConfigError(f"{key} must be {allowed}, got {show(value)}")


def check_config(config: Any) -> None:
    """Every setting of a `Config` in its range, and the settings that depend on each other consistent."""
    check_section(config, "")
    for cross in _CROSS:
        if (problem := cross(config)) is not None:
            raise ConfigError(problem)
