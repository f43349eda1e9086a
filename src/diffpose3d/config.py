"""Run configuration: nested dataclasses loaded from YAML, overridable with `--set section.key=value`.

A YAML file may name a `base:` file (a path relative to it): its values are read first and the
file's own values override them, section by section. Every run writes its resolved configuration
(`save_config`) beside its outputs, so a result can always be traced back to its exact settings.

    Config
      data        which dataset files, subjects, actions; train / validation / test blocks
      evidence    where the 2D evidence of H_K comes from; `evidence.synthetic` is the synthetic detector
      model       skeleton; `model.encoder` (f_ST), `model.denoiser` (g), `model.diffusion` (K, M, H_K)
      train       the two training stages: budget, schedule, validation, checkpoints
      inference   N hypotheses, DDIM steps, aggregation, seed, backend
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from diffpose3d.errors import ConfigError, InputFileError


@dataclass
class DataConfig:
    dataset: str = "humaneva"  # humaneva | h36m | 3dhp
    data_3d: str = ""  # path to the 3D file (e.g. data_3d_humaneva15_train.npz)
    data_2d: str = ""  # path to the 2D file (e.g. data_2d_humaneva15_gt_train.npz)
    cameras_file: str = ""  # HumanEva only: a cameras.json; empty = the packaged calibration
    train_split: str = "Train"  # HumanEva key prefix; H36M/3DHP: ignored
    train_subjects: list[str] = field(default_factory=list)  # empty = the protocol's
    test_subjects: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=lambda: ["Walk", "Jog", "Box"])
    # Carve train / validation / test blocks out of the training files (the shared data has no
    # public test split). With holdout off, validation is carved from the train subjects and the
    # test split is the protocol's.
    holdout: bool = True
    holdout_fractions: list[float] = field(default_factory=lambda: [0.7, 0.1, 0.2])
    holdout_gap_frames: int = 10
    train_on_all: bool = False  # final shipped models: train on train + val + test blocks
    stride: int = 1
    test_stride: int = 1


@dataclass
class SyntheticDetectorConfig:
    """The synthetic detector (`evidence.synthetic`): detector-like 2D evidence from ground-truth 2D."""

    noise_px: float = 4.0  # localisation error (standard deviation per axis, image pixels)
    swap_prob: float = 0.03  # per frame and left/right pair: the detector swaps the two joints
    occlusion_prob: float = 0.05  # per joint: modes broadened by occlusion_scale
    occlusion_scale: float = 3.0
    secondary_weight: float = 0.3  # weight of the true position when a pair is swapped
    min_std_px: float = 2.0  # spread of one mode (image pixels)
    heatmap_size: list[int] = field(default_factory=lambda: [64, 64])  # (W, H) of rendered heatmaps
    crop_margin: float = 0.25  # crop = keypoints' bounding box enlarged by this fraction per side
    min_crop_px: float = 32.0


@dataclass
class EvidenceConfig:
    """How the 2D evidence (and so the (u, v) part of H_K) is produced for training and tests."""

    # synthetic: detector-like multi-modal evidence made from GT 2D | keypoints: a tight component at
    # the file's 2D | gmm_file: an authors'-layout *_gmm.npz | confidence: keypoints + confidence
    source: str = "synthetic"
    gmm_file: str = ""  # with source = gmm_file: an authors'-layout *_gmm.npz
    keypoint_std_px: float = 2.0  # source = keypoints: spread of the one component (pixels)
    seed: int = 0
    synthetic: SyntheticDetectorConfig = field(default_factory=SyntheticDetectorConfig)


@dataclass
class EncoderConfig:
    """The context encoder f_ST (stage 1): a frame lifter or a MixSTE-style video encoder."""

    kind: str = "frame"  # frame: GraFormer-like frame lifter | video: seq2seq lifter over windows
    width: int = 96
    blocks: int = 4  # video: pairs of spatial + temporal transformer blocks
    heads: int = 4
    dropout: float = 0.1
    frames: int = 27  # video: T, the window
    stride: int = 9  # video: sliding-window step over whole sequences (overlaps averaged)
    flip: bool = True  # video: flip test-time augmentation of the context (training and inference)


@dataclass
class DenoiserConfig:
    """The denoiser g (stage 2) and what it is conditioned on besides f_ST and the anchor."""

    width: int = 96
    blocks: int = 5
    heads: int = 4
    dropout: float = 0.0
    # g also sees a per-joint summary of the 2D evidence (spread, second mode: evidence.summary)
    evidence_features: bool = False
    # video only: g also sees the anchor's local motion, (u, v, x, y, z) at +-1..motion_radius
    # frames minus this frame's, so its correction can cancel the encoder's jitter
    motion_radius: int = 0


@dataclass
class DiffusionConfig:
    num_steps: int = 50  # K
    schedule: str = "cosine"
    num_components: int = 5  # M, kernels of the H_K mixture
    depth_prior: str = "context"  # context: centred on the lifter | dataset: training-set depth GMM
    depth_components: int = 3  # kernels of the per-joint depth GMM (depth_prior = dataset)


@dataclass
class ModelConfig:
    skeleton: str = "humaneva15"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)


@dataclass
class TrainConfig:
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # 0 = torch default
    batch_size: int = 256
    encoder_epochs: int = 60
    encoder_lr: float = 1e-3
    denoiser_epochs: int = 60
    denoiser_lr: float = 5e-4
    weight_decay: float = 1e-4
    ema_decay: float = 0.995
    max_minutes: float = 0.0  # 0 = no limit
    encoder_share: float = 0.35  # stage 1 stops at this share of max_minutes; stage 2 has the rest
    flip_augment: bool = True
    window_batch_size: int = 16  # video stage 1: windows per batch (batch_size counts frames)
    video_frame_pretrain: float = 0.5  # video stage 1: share of its time spent on single frames first
    video_encoder_lr: float = 1e-3  # video stage 1 on windows (after the single-frame phase)
    velocity_weight: float = 0.0  # video stage 1: weight of the velocity (MPJVE) term of the loss
    uv_loss_weight: float = 0.1
    eval_every: int = 5  # epochs between validations (model selection on validation only)
    checkpoint_every: int = 1  # epochs between resumable checkpoints (out/checkpoints/<stage>.*)
    val_hypotheses: int = 5
    val_steps: int = 5
    val_max_frames: int = 1500  # stage-2 validation samples N hypotheses: an evenly spaced subset
    progress: bool = True


@dataclass
class InferenceConfig:
    hypotheses: int = 5  # N
    steps: int = 5  # DDIM steps (<= K)
    eta: float = 0.0
    antithetic: bool = True  # zero-sum noise across the N hypotheses: a mean without Monte Carlo blur
    coherent: bool = False  # hypothesis n of every frame of a sequence shares its H_K noise: N motions
    aggregate: str = "mean"  # mean | median | reprojection
    mode: str = "diffpose"  # diffpose | authors (deterministic refinement, N = 1, no f_ST)
    seed: int = 0
    batch_frames: int = 2048
    backend: str = "torch"  # torch | onnxruntime (g's network on ONNX Runtime, CPU; diffpose3d[onnx])


@dataclass
class Config:
    name: str = "humaneva_frame"
    data: DataConfig = field(default_factory=DataConfig)
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)


def _from_dict(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key '{key}' (known: {', '.join(known)})")
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            kwargs[key] = _from_dict(type(default), value or {}, f"{where}.{key}")
        else:
            kwargs[key] = _coerce(value, default, f"{where}.{key}")
    return cls(**kwargs)


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Bring a YAML or command-line value to the type of the field's default."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
            return value.lower() in {"true", "1", "yes"}
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if isinstance(default, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if default and isinstance(default[0], float):
            return [float(v) for v in value]
        return [str(v) if not isinstance(v, (int, float)) else v for v in value]
    if isinstance(default, str):
        return "" if value is None else str(value)
    return value


def config_from_dict(values: dict[str, Any]) -> Config:
    return _from_dict(Config, values or {}, "config")


def config_to_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`, recursively for sections (mappings)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file's values, with its `base:` file (relative to it) read first and overridden."""
    if not path.is_file():
        raise InputFileError(path, "config file not found")
    if path.resolve() in chain:
        raise InputFileError(path, "config files name each other as base in a circle")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputFileError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise InputFileError(path, f"a config file holds a mapping of sections, got {type(values).__name__}")
    base = values.pop("base", None)
    if base:
        values = _merge(_read_yaml(path.parent / str(base), chain + (path.resolve(),)), values)
    return values


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or the defaults) and apply `section.key=value` overrides."""
    values: dict[str, Any] = _read_yaml(Path(path)) if path else {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form section.key=value")
        dotted, raw = item.split("=", 1)
        node = values
        parts = dotted.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return config_from_dict(values)


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved configuration as YAML (atomically)."""
    from diffpose3d.io.atomic import atomic_write

    with atomic_write(Path(path), "w") as handle:
        yaml.safe_dump(config_to_dict(config), handle, sort_keys=False)
