"""MPI-INF-3DHP in the layout of public lifting code (P-STMO style ``data_train_3dhp.npz`` / ``data_test_3dhp.npz``).

Both files hold a pickled dict under ``data``:

- train: ``data['S1 Seq1'] = [ {camera: {'data_3d': (T, 17, 3), 'data_2d': (T, 17, 2)}} ]``,
  images 2048 x 2048;
- test: ``data['TS1'] = {'data_3d', 'data_2d', 'valid'}``, TS1-TS4 at 2048 x 2048, TS5-TS6 at 1920 x 1080.

Joints come in the raw 3DHP order (pelvis at 14) and are reordered to ``mpi3dhp17`` (pelvis first,
``MPI3DHP_RAW_TO_17``); 3D is camera-frame millimetres and becomes metres. No calibration is shipped,
so ``camera`` is None.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ..io.unpickle import load_pickled_npz
from ..skeleton import MPI3DHP_RAW_TO_17
from .base import PoseSequence, as_filter, as_float_array, mark_missing, require_dict

LAYOUT = "mpi3dhp17"
TRAIN_IMAGE_SIZE = (2048, 2048)
TEST_IMAGE_SIZES = {"TS1": (2048, 2048), "TS2": (2048, 2048), "TS3": (2048, 2048),
                    "TS4": (2048, 2048), "TS5": (1920, 1080), "TS6": (1920, 1080)}


def load_3dhp(
    path: str | Path,
    *,
    sequences: str | Iterable[str] | None = None,
    stride: int = 1,
) -> list[PoseSequence]:
    """Read a train or test file (detected from its structure); ``sequences`` filters by key
    ("S1 Seq1", "TS3") or by subject ("S1")."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    data = require_dict(load_pickled_npz(path, "data"), path, "data")
    wanted = as_filter(sequences)
    out: list[PoseSequence] = []
    for key in sorted(data, key=str):
        key_s = str(key)
        subject = key_s.split(" ", 1)[0]
        if wanted is not None and key_s not in wanted and subject not in wanted:
            continue
        entry = data[key]
        if isinstance(entry, dict) and "data_3d" in entry:
            out.append(_test_sequence(key_s, entry, path))
        elif isinstance(entry, (list, tuple)) and entry and isinstance(entry[0], dict):
            for cam in sorted(entry[0], key=str):
                anim = require_dict(entry[0][cam], path, f"'{key_s}' camera {cam}")
                out.append(_train_sequence(key_s, subject, cam, anim, path))
        else:
            raise InputFileError(path, f"entry '{key_s}' is neither a test dict nor a [{{camera: arrays}}] train list")
    if stride > 1:
        out = [s.slice(step=stride) for s in out]
    return out


def _arrays(anim: dict, path: str | Path, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    for k in ("data_3d", "data_2d"):
        if k not in anim:
            raise InputFileError(path, f"{what}: missing '{k}'")
    pose = as_float_array(anim["data_3d"], path, f"{what} data_3d", (17, 3))
    kp = as_float_array(anim["data_2d"], path, f"{what} data_2d", (17, -1))
    if kp.shape[-1] not in (2, 3) or len(kp) != len(pose):
        raise InputFileError(path, f"{what}: data_2d {kp.shape} does not match data_3d {pose.shape}")
    conf = kp[..., 2] if kp.shape[-1] == 3 else None
    kp, conf = mark_missing(kp[..., :2][:, MPI3DHP_RAW_TO_17], None if conf is None else conf[:, MPI3DHP_RAW_TO_17])
    return kp, pose[:, MPI3DHP_RAW_TO_17] / 1000.0, conf


def _camera_index(cam: object) -> int:
    try:
        return int(cam)
    except (TypeError, ValueError, OverflowError):
        digits = "".join(ch for ch in str(cam) if ch.isdigit())
        return int(digits) if digits else 0


def _train_sequence(key: str, subject: str, cam: object, anim: dict, path: str | Path) -> PoseSequence:
    kp, pose, conf = _arrays(anim, path, f"'{key}' camera {cam}")
    return PoseSequence(
        dataset="3dhp", subject=subject, action=key.split(" ", 1)[-1], name=key,
        camera_index=_camera_index(cam), skeleton=LAYOUT, keypoints_2d=kp, image_size=TRAIN_IMAGE_SIZE,
        confidence=conf, pose_3d=pose.astype(np.float32), split="Train", frame_indices=np.arange(len(kp)),
    )


def _test_sequence(key: str, anim: dict, path: str | Path) -> PoseSequence:
    kp, pose, conf = _arrays(anim, path, f"'{key}'")
    valid = None
    if "valid" in anim:
        valid = np.asarray(anim["valid"]).reshape(-1)
        if valid.shape != (len(kp),):
            raise InputFileError(path, f"'{key}': valid has {valid.size} entries for {len(kp)} frames")
        valid = valid.astype(bool)
    if key not in TEST_IMAGE_SIZES:
        raise InputFileError(path, f"unknown test sequence '{key}' (expected TS1-TS6)")
    return PoseSequence(
        dataset="3dhp", subject=key, action=key, name=key, camera_index=0, skeleton=LAYOUT,
        keypoints_2d=kp, image_size=TEST_IMAGE_SIZES[key], confidence=conf, pose_3d=pose.astype(np.float32),
        split="Test", valid=valid, frame_indices=np.arange(len(kp)),
    )
