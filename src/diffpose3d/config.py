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

from diffpose3d.config_ranges import check_config
from diffpose3d.config_ranges import show as _show
from diffpose3d.errors import ConfigError, InputFileError


@dataclass
class VirtualCameraConfig:
    """Training views through random cameras (`data.virtual`): each sample's 3D re-projected so the
    model learns pose, not one rig. Angles in degrees; the person's size is the RMS radius of its 2D
    joints in normalised units (the image is 2 units wide); focal lengths are `f / (w / 2)`."""

    share: float = 0.0  # of the training samples seen through a random camera (the rest: the data's own)
    elevation: list[float] = field(default_factory=lambda: [-15.0, 50.0])  # camera above the person: +
    roll: float = 8.0  # standard deviation
    focal: list[float] = field(default_factory=lambda: [1.2, 4.0])  # log-uniform
    size: list[float] = field(default_factory=lambda: [0.08, 0.5])  # log-uniform
    offset: float = 0.8  # the root's image position, uniform in [-offset, offset] of each half-extent
    aspects: list[float] = field(default_factory=lambda: [0.5625, 0.75, 1.0, 1.3333, 1.7778])  # h / w
    bone_scale: float = 0.0  # log-normal spread of each bone's length in the virtual views (other bodies)


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
    # Draw each training batch from a table of poses, cameras and detections (large data sets,
    # virtual cameras) instead of a precomputed frame set
    pose_table: bool = False
    val_subjects: list[str] = field(default_factory=list)  # pose_table: subjects held out for validation
    virtual: VirtualCameraConfig = field(default_factory=VirtualCameraConfig)


@dataclass
class SyntheticDetectorConfig:
    """The synthetic detector (`evidence.synthetic`): detector-like 2D evidence from ground-truth 2D."""

    noise_px: float = 4.0  # localisation error (standard deviation per axis, image pixels)
    swap_prob: float = 0.03  # per frame and left/right pair: the detector swaps the two joints
    occlusion_prob: float = 0.05  # per joint: modes broadened by occlusion_scale
    occlusion_scale: float = 3.0
    secondary_weight: float = 0.3  # weight of the true position when a pair is swapped
    min_std_px: float = 2.0  # spread of one mode (image pixels)
    # per joint, in units of the person's 2D RMS radius: localisation error (replaces noise_px) and
    # a systematic offset along the person's pelvis->thorax axis; empty: noise_px for every joint
    relative_noise: list[float] = field(default_factory=list)
    outlier_prob: float = 0.0  # per joint: a gross error (outlier_scale x the joint's noise)
    outlier_scale: float = 6.0
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
    # data.pose_table: each training sample's evidence is the exact 2D (a tight component), a real
    # detection where the data has one (`data.data_2d`), or else the synthetic detector
    exact_share: float = 0.0
    detection_share: float = 0.0


@dataclass
class EncoderConfig:
    """The context encoder f_ST (stage 1): a frame lifter, a MixSTE-style video encoder or a
    VideoPose3D-style temporal convolution."""

    # frame: GraFormer-like frame lifter | mlp: Martinez-style residual MLP frame lifter (learns
    # fastest per CPU second) | video: MixSTE-style seq2seq lifter over windows | tcn: dilated
    # temporal convolution over whole sequences (receptive field `frames`)
    kind: str = "frame"
    # image: the 2D as the field normalises it (by the image width) | person: centred on the person and
    # scaled by its size, with the centre, size and focal guess as explicit inputs (camera-robust)
    inputs: str = "image"
    width: int = 96  # channels of f_ST per joint
    blocks: int = 4  # video: pairs of spatial + temporal transformer blocks
    hidden: int = 1024  # mlp: the hidden width; tcn: the convolutions' channels
    heads: int = 4
    dropout: float = 0.1
    frames: int = 27  # video: T, the window; tcn: the receptive field, a power of 3 (27, 81, 243)
    stride: int = 9  # video: sliding-window step over whole sequences (overlaps averaged)
    flip: bool = True  # video, tcn: flip test-time augmentation of the context (training and inference)
    # tcn: a frame's context from it and the frames - 1 before it (causal: usable live) instead of
    # the (frames - 1) / 2 on each side (centred)
    causal: bool = False
    tta: bool = False  # frame lifters: the same, in stage 2 and at inference (stage 1 trains one view)


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
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    skeleton: str = "humaneva15"  # the joint layout lifted to


@dataclass
class TrainConfig:
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # 0 = torch default
    # bf16: the training steps' forward pass under bfloat16 autocast (weights, optimiser and
    # validation stay float32); on a CPU with AVX-512 BF16 the MLP lifter trains ~2.5x faster
    precision: str = "fp32"
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
    window_batch_size: int = 16  # video stage 1: windows (tcn: chunks) per batch (batch_size counts frames)
    # tcn stage 1: consecutive output frames per training chunk (their convolution work is shared;
    # each chunk's input holds model.encoder.frames - 1 more frames of context)
    chunk_frames: int = 64
    video_frame_pretrain: float = 0.5  # video stage 1: share of its time spent on single frames first
    video_encoder_lr: float = 1e-3  # video stage 1 on windows (after the single-frame phase)
    velocity_weight: float = 0.0  # video stage 1: weight of the velocity (MPJVE) term of the loss
    uv_loss_weight: float = 0.1
    # > 0: an epoch is this many batches drawn at random (a large data set is then trained,
    # validated and checkpointed by steps); 0: an epoch is one pass over the training samples
    epoch_steps: int = 0
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
    # g's transformer blocks in bfloat16 (bf16), float32 (fp32), or bf16 where the hardware has it
    # natively (auto); the coordinates stay float32 (inference/precision.py)
    precision: str = "auto"
    # Images and videos: H_K from the detector's heatmaps (True) or from its keypoints + visibility
    # (False). A bundle says which evidence it was trained for; `predict --heatmaps/--no-heatmaps` overrides.
    heatmaps: bool = True
    # With the bundle's out-of-domain model (`uncertainty.ood`): scale each frame's hypotheses by the
    # factor its out_of_domain score calls for (False: report the score, widen nothing).
    widen_off_domain: bool = True
    # Hypotheses scaled by the calibration (and widened off-domain) keep their own bone lengths
    # (`evaluation.calibration.keep_bones`); `calibrate` fits its scale for this and switches it on.
    keep_bones: bool = False
    # Per joint, grow the spread in quadrature by this many times the metres by which the 3D misses
    # its own 2D beyond the evidence's noise and beyond what the bundle's own 2D sources miss there
    # (`diffpose3d fit-miss`, per 2D layout; `uncertainty.reprojection`); 0: off.
    reprojection_widening: float = 0.0


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
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(values).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{where or 'config'}: unknown key {_show(key)} (known: {', '.join(known)})")
        default = getattr(cls(), key)
        dotted = f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(default):
            kwargs[key] = _from_dict(type(default), value or {}, dotted)
        else:
            kwargs[key] = _coerce(value, default, dotted)
    return cls(**kwargs)


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ConfigError(f"{where}: expected an integer, got {_show(value)}")
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where}: expected an integer, got {_show(value)}") from None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {_show(value)}")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where}: expected a number, got {_show(value)}") from None


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Bring a YAML or command-line value to the type of the field's default."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
            return value.lower() in {"true", "1", "yes"}
        raise ConfigError(f"{where}: expected true/false, got {_show(value)}")
    if isinstance(default, int):
        return _integer(value, where)
    if isinstance(default, float):
        return _number(value, where)
    if isinstance(default, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {_show(value)}")
        if default and isinstance(default[0], float):
            return [_number(v, where) for v in value]
        if default and isinstance(default[0], int):
            return [_integer(v, where) for v in value]
        if any(isinstance(v, (dict, list)) for v in value):
            raise ConfigError(f"{where}: expected a list of names or numbers, got {_show(value)}")
        return [str(v) if not isinstance(v, (int, float)) else v for v in value]
    if isinstance(default, str):
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {_show(value)}")
        return "" if value is None else str(value)
    return value


def config_from_dict(values: dict[str, Any]) -> Config:
    """A config from nested mappings (a YAML file's): typed, unknown keys refused, every setting range-checked."""
    config = _from_dict(Config, values or {}, "")
    check_config(config)
    return config


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


class _NoAliasLoader(yaml.SafeLoader):
    """`yaml.safe_load` without anchors and aliases (`&a`, `*a`): a few lines of nested aliases expand
    to gigabytes, and a configuration never needs them; and without a key twice in one mapping,
    which YAML readers settle by keeping the last, silently."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(None, None, "anchors and aliases (&name, *name) are not allowed",
                                              event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"key '{key}' appears twice in one section",
                                                            key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


MAX_YAML_BYTES = 1 << 20


def parse_yaml(text: str) -> Any:
    """`yaml.safe_load` without anchors and aliases; raises `yaml.YAMLError` (also for too deep nesting)."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)
    except RecursionError:
        raise yaml.YAMLError("nested too deeply") from None


def read_yaml_file(path: str | Path) -> Any:
    """A YAML file's values: UTF-8, at most 1 MiB, no anchors or aliases; `InputFileError` otherwise."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise InputFileError(path, f"cannot read ({exc.strerror or exc})") from None
    if len(raw) > MAX_YAML_BYTES:
        raise InputFileError(path, f"larger than {MAX_YAML_BYTES >> 20} MiB: not a config file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(path, f"not UTF-8 text (byte {exc.start})") from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(path, f"not valid YAML ({first}{_mark(exc)})") from None


def _mark(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f", line {mark.line + 1}" if mark is not None else ""


def _read_yaml(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file's values, with its `base:` file (relative to it) read first and overridden."""
    if not path.is_file():
        raise InputFileError(path, "config file not found")
    if path.resolve() in chain:
        raise InputFileError(path, "config files name each other as base in a circle")
    values = read_yaml_file(path) or {}
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
        try:
            node[parts[-1]] = parse_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"override {_show(item)}: not a YAML value ({first})") from None
    return config_from_dict(values)


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved configuration as YAML (atomically)."""
    from diffpose3d.io.atomic import atomic_write

    with atomic_write(Path(path), "w") as handle:
        yaml.safe_dump(config_to_dict(config), handle, sort_keys=False)
