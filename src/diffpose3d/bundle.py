"""Model bundles: a folder with `model.safetensors` (weights) and `config.yaml` (resolved config),
and the device a model runs on.

Loading never unpickles anything: weights come from safetensors, settings from YAML (safe_load, without
aliases). Weights that are not finite are refused.
The packaged bundles live in `diffpose3d/assets/models/`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from diffpose3d.config import Config, config_from_dict, read_yaml_file, save_config
from diffpose3d.errors import ConfigError, InputFileError, OutputFileError
from diffpose3d.io.atomic import atomic_write, check_output_file, current_umask
from diffpose3d.uncertainty.ood import FILE as OOD_FILE

WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"
INFO = "info.json"
DEFAULT_MODEL = "h36m_frame"
# Buffers a bundle may lack (made before they existed): the model's defaults stand.
OPTIONAL_BUFFERS = frozenset({"conformal_scale", "radial_map"})


def resolve_device(name: str) -> torch.device:
    """"auto" (or "") is CUDA when available, else the CPU; anything else is taken as torch names it."""
    if name in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"device {name!r} is not a device (use auto, cpu, cuda, cuda:N or mps)") from None


def packaged_models() -> dict[str, Path]:
    """The bundles shipped inside the package, by name (e.g. humaneva_frame, humaneva_video)."""
    root = Path(str(resources.files("diffpose3d") / "assets" / "models"))
    return {p.name: p for p in sorted(root.iterdir()) if (p / WEIGHTS).is_file()}


def default_checkpoint() -> Path:
    """The default bundle: the camera-robust Human3.6M frame model (`configs/h36m_frame.yaml`)."""
    return packaged_models()[DEFAULT_MODEL]


def resolve_checkpoint(name: str | Path | None) -> Path:
    """A checkpoint folder from a path, the name of a packaged bundle, or None (the default)."""
    if not name:
        return default_checkpoint()
    path = Path(name)
    if not path.exists() and path.name == str(name):
        return packaged_models().get(str(name), path)
    return path


def save_bundle(
    model: torch.nn.Module, config: Config, folder: str | Path, info: dict | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a bundle; `dtype` stores the floating-point weights in another type (loading casts back).

    The files are written into a staging folder inside `folder` and loaded back (`load_bundle`)
    before they replace the bundle there: a bundle that would not load is refused in one line and
    the previous one is left as it was."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".bundle.staging-", dir=folder))
    except OSError as exc:
        raise OutputFileError(folder, f"cannot write ({exc.strerror or exc})") from None
    ood = getattr(model, "out_of_domain", None)
    names = [WEIGHTS, CONFIG] + ([INFO] if info is not None else []) + ([OOD_FILE] if ood is not None else [])
    try:
        for name in names:
            check_output_file(folder / name)
        tensors = {
            k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
            for k, v in model.state_dict().items()
        }
        save_file(tensors, str(staging / WEIGHTS))
        os.chmod(staging / WEIGHTS, 0o666 & ~current_umask())  # safetensors writes 0600: a bundle is for sharing
        save_config(config, staging / CONFIG)
        if ood is not None:
            ood.save(staging)
        if info is not None:
            with atomic_write(staging / INFO, "w") as handle:
                json.dump(info, handle, indent=2)
        try:
            load_bundle(staging)
        except InputFileError as exc:
            raise OutputFileError(folder, f"the new bundle would not load back ({exc.problem}); "
                                          "the bundle there is left as it was") from None
        for name in names:
            check_output_file(folder / name)
            os.replace(staging / name, folder / name)
    except OSError as exc:
        raise OutputFileError(folder, f"cannot write ({exc.strerror or exc})") from None
    finally:
        for name in names:
            with contextlib.suppress(OSError):
                (staging / name).unlink()
        with contextlib.suppress(OSError):
            staging.rmdir()
    return folder


def store_conformal(model: torch.nn.Module, folder: str | Path, info: dict, record: dict) -> Path:
    """Rewrite the bundle at `folder` with `model`'s fitted conformal scaling, `record` (the fit's
    summary) stored under `conformal` in its info (`evaluation.scoring.calibrate_checkpoint`)."""
    stored = info.get("weights_dtype")  # an exported bundle stays in its weights' type (float16: half the size)
    dtype = getattr(torch, stored, None) if isinstance(stored, str) else None
    return save_bundle(model, model.config, Path(folder), {**info, "conformal": record},
                       dtype if isinstance(dtype, torch.dtype) and dtype.is_floating_point else None)


def export_bundle(source: str | Path, target: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    """Copy a bundle with its weights stored as `dtype` (float16: half the size, for packaging)."""
    model, info = load_bundle(source)
    return save_bundle(model, model.config, target, {**info, "weights_dtype": str(dtype).removeprefix("torch.")}, dtype)


def bundle_config(folder: str | Path | None = None) -> tuple[Path, Config]:
    """A bundle's folder (a path, a packaged bundle's name, or None: the default) and its resolved
    config, without loading the weights."""
    folder = resolve_checkpoint(folder)
    if folder.is_file() and folder.name == WEIGHTS:
        folder = folder.parent
    if not folder.is_dir():
        raise InputFileError(folder, "checkpoint not found (expected a folder with model.safetensors and config.yaml)")
    for name in (WEIGHTS, CONFIG):
        if not (folder / name).is_file():
            raise InputFileError(folder / name, "missing from the checkpoint folder")
    try:
        return folder, config_from_dict(read_yaml_file(folder / CONFIG))
    except ConfigError as exc:
        raise InputFileError(folder / CONFIG, str(exc)) from None


def load_bundle(folder: str | Path | None = None, device: str | torch.device = "cpu"):
    """Load a bundle folder or a packaged bundle's name (default: the packaged frame model) ->
    (DiffPoseModel in eval mode, info)."""
    from diffpose3d.model import DiffPoseModel

    folder, config = bundle_config(folder)
    try:
        model = DiffPoseModel(config)
    except (ConfigError, ValueError) as exc:  # ValueError: e.g. a skeleton the model cannot lift to
        raise InputFileError(folder / CONFIG, str(exc)) from None
    try:
        state = load_file(str(folder / WEIGHTS), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputFileError(folder / WEIGHTS, f"not a readable safetensors file ({exc})") from None
    bad = next((name for name, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())), None)
    if bad is not None:
        raise InputFileError(folder / WEIGHTS, f"tensor '{bad}' holds NaN or infinite values")
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if k not in OPTIONAL_BUFFERS]  # bundles made before them: defaults
    except RuntimeError as exc:
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), "shape mismatch")
        raise InputFileError(folder / WEIGHTS, f"weights do not match the config ({first})") from None
    if missing or unexpected:
        raise InputFileError(
            folder / WEIGHTS,
            f"weights do not match the config (missing {len(missing)}, unexpected {len(unexpected)} tensors)",
        )
    info = {}
    if (folder / INFO).is_file():
        try:  # information only (how the bundle was made): an unreadable one is ignored
            info = json.loads((folder / INFO).read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):
            info = {}
        info = info if isinstance(info, dict) else {}
    model.out_of_domain = _load_out_of_domain(folder)
    for layout, tolerance in (model.out_of_domain.miss_tolerance.items() if model.out_of_domain else ()):
        if len(tolerance) != model.skeleton.num_joints:
            raise InputFileError(folder / "out_of_domain.npz", f"miss tolerance for '{layout}' has {len(tolerance)} "
                                 f"values; the model has {model.skeleton.num_joints} joints")
    model.to(device).eval()
    return model, info


def _load_out_of_domain(folder: Path):
    """The bundle's out-of-domain model (`uncertainty.ood`), or None where it has none."""
    from diffpose3d.uncertainty.ood import FILE, OutOfDomain

    path = folder / FILE
    if not path.is_file():
        return None
    try:
        ood = OutOfDomain.load(path)
    except ValueError as exc:
        raise InputFileError(path, str(exc).removeprefix(f"{path}: ")) from None
    return ood
