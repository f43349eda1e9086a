"""Custom 2D inputs: COCO-style keypoint JSON (as MMPose / RTMPose tools write) and plain npz arrays.

JSON: a list (or ``{"annotations": [...]}``) of ``{"image_id" | "frame": id, "keypoints": [x, y, c] * J,
"score": s}``; the highest-scoring person per frame is kept. Integer frame ids leave gaps as missing
frames (confidence 0); other ids are sorted. The image size is not in this format: pass it.

npz: ``keypoints`` (or the only array) of shape (T, J, 2|3), optional ``image_size`` (w, h) and
``layout`` (a skeleton name; 17 joints without one are taken as COCO).

Either way the keypoints are mapped to ``layout`` with ``skeleton.map_keypoints``; NaN / inf joints, and
joints absurdly far outside the image (beyond ``FAR_OUTSIDE`` image sizes), get confidence 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputFileError
from ..skeleton import SKELETON_NAMES, get_skeleton
from .base import PoseSequence, map_2d, split_confidence

_DEFAULT_SOURCE = {17: "coco17", 33: "blazepose33", 16: "mpii16", 15: "humaneva15", 32: "h36m32"}
_MAX_JSON_FRAMES = 1_000_000  # integer frame ids are filled in between: refuse absurd spans
_MAX_IMAGE_SIDE = 1 << 20
FAR_OUTSIDE = 100  # a coordinate beyond this many image sizes is garbage: the joint counts as missing


def _known_layout(name: str, path: Path) -> str:
    if name not in SKELETON_NAMES:
        raise InputFileError(path, f"unknown layout '{name}' (known: {', '.join(SKELETON_NAMES)})")
    return name


def _source_layout(num_joints: int, declared: str | None, path: Path) -> str:
    if declared:
        expected = get_skeleton(_known_layout(declared, path)).num_joints
        if expected != num_joints:
            raise InputFileError(path, f"layout '{declared}' has {expected} joints, data has {num_joints}")
        return declared
    if num_joints not in _DEFAULT_SOURCE:
        raise InputFileError(path, f"cannot tell the layout of {num_joints} joints: pass src_layout")
    return _DEFAULT_SOURCE[num_joints]


def check_image_size(size: Any, path: str | Path) -> tuple[int, int]:
    """``size`` as a positive ``(width, height)`` pair of ints, or an InputFileError naming ``path``."""
    try:
        w, h = (int(v) for v in np.asarray(size).reshape(-1))
    except (TypeError, ValueError, OverflowError):
        raise InputFileError(path, f"image_size must be (width, height), got {size!r}") from None
    if w <= 0 or h <= 0:
        raise InputFileError(path, f"image_size must be positive, got {(w, h)}")
    if max(w, h) > _MAX_IMAGE_SIDE:
        raise InputFileError(path, f"image_size {(w, h)} is absurdly large (at most {_MAX_IMAGE_SIDE} pixels a side)")
    return w, h


def drop_far_outside(keypoints: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixels ``(..., 2)`` with every coordinate beyond ``FAR_OUTSIDE`` image sizes set to NaN, so the
    joint counts as missing like any non-finite one."""
    return np.where(np.abs(keypoints) <= FAR_OUTSIDE * max(size), keypoints, np.nan)


def _build(points: np.ndarray, path: Path, src: str, layout: str, size: tuple[int, int],
           frames: np.ndarray, name: str) -> PoseSequence:
    with np.errstate(over="ignore", invalid="ignore"):  # too large for float32: inf, then missing
        kp, conf = split_confidence(points.astype(np.float32))
    kp = drop_far_outside(kp, size)
    try:
        kp, conf = map_2d(kp, conf, src, layout)
    except ValueError as exc:
        raise InputFileError(path, str(exc)) from None
    if conf is None:
        conf = np.ones(kp.shape[:2], np.float32)
    return PoseSequence(
        dataset="custom", subject="", action="", name=name, camera_index=0, skeleton=layout,
        keypoints_2d=kp, image_size=size, confidence=conf, frame_indices=frames,
    )


def load_keypoints_npz(path: str | Path, *, layout: str = "h36m17", image_size: tuple[int, int] | None = None,
                       src_layout: str | None = None) -> PoseSequence:
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "file not found")
    try:
        with np.load(p, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # a damaged file fails in many ways: zip, zlib, npy header, absurd sizes
        raise InputFileError(p, f"not a readable .npz of plain arrays ({exc.__class__.__name__}: {exc})") from None
    if "keypoints" in arrays:
        points = arrays["keypoints"]
    else:
        candidates = [k for k in arrays if k not in ("image_size", "layout")]
        if len(candidates) != 1:
            raise InputFileError(p, f"needs a 'keypoints' array (found: {', '.join(arrays) or 'none'})")
        points = arrays[candidates[0]]
    if points.ndim != 3 or points.shape[-1] not in (2, 3) or points.dtype.kind not in "iuf":
        raise InputFileError(p, f"keypoints must be numeric (T, J, 2|3), got {points.dtype} {points.shape}")
    if len(points) == 0:
        raise InputFileError(p, "keypoints hold no frames")
    declared = src_layout or (str(arrays["layout"]) if "layout" in arrays else None)
    size = image_size if image_size is not None else arrays.get("image_size")
    if size is None:
        raise InputFileError(p, "no 'image_size' array in the file: pass image_size=(w, h)")
    src = _source_layout(points.shape[1], declared, p)
    return _build(points, p, src, layout, check_image_size(size, p), np.arange(len(points)), p.stem)


def _frame_id(rec: dict, path: Path, i: int) -> Any:
    for k in ("frame", "image_id", "frame_id"):
        if k in rec:
            return rec[k]
    raise InputFileError(path, f"record {i} has no 'frame' or 'image_id'")


def load_keypoints_json(path: str | Path, *, layout: str = "h36m17", image_size: tuple[int, int] | None = None,
                        src_layout: str = "coco17") -> PoseSequence:
    p = Path(path)
    try:
        records = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(p, "file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputFileError(p, f"not valid JSON ({exc.__class__.__name__}: {exc})") from None
    if isinstance(records, dict):
        records = records.get("annotations")
    if not isinstance(records, list) or not records:
        raise InputFileError(p, "expected a non-empty list of keypoint records")
    if image_size is None:
        raise InputFileError(p, "keypoint JSON carries no image size: pass image_size=(w, h)")
    j = get_skeleton(_known_layout(src_layout, p)).num_joints
    best: dict[Any, tuple[float, np.ndarray]] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or "keypoints" not in rec:
            raise InputFileError(p, f"record {i} has no 'keypoints'")
        try:
            kp = np.asarray(rec["keypoints"], dtype=np.float64).reshape(j, 3)
        except (TypeError, ValueError, OverflowError):
            raise InputFileError(p, f"record {i}: 'keypoints' must be {3 * j} numbers (x, y, score) * {j}") from None
        try:
            score = float(rec["score"]) if "score" in rec else float(np.nanmean(kp[:, 2]))
        except (TypeError, ValueError, OverflowError):
            raise InputFileError(p, f"record {i}: 'score' must be a number, got {rec['score']!r:.40}") from None
        frame = _frame_id(rec, p, i)
        if isinstance(frame, (list, dict)):
            raise InputFileError(p, f"record {i}: the frame id must be a number or a string, got {frame!r:.40}")
        if frame not in best or score > best[frame][0]:
            best[frame] = (score, kp)
    ids = list(best)
    if all(isinstance(f, int) for f in ids):
        if max(ids) - min(ids) >= _MAX_JSON_FRAMES:
            raise InputFileError(p, f"frame ids {min(ids)} to {max(ids)} span more than {_MAX_JSON_FRAMES} frames")
        frames = np.arange(min(ids), max(ids) + 1)
    else:
        frames = np.array(sorted(ids, key=str))
    points = np.full((len(frames), j, 3), np.nan)
    for t, f in enumerate(frames.tolist()):
        if f in best:
            points[t] = best[f][1]
    frame_numbers = frames if np.issubdtype(frames.dtype, np.integer) else np.arange(len(frames))
    return _build(points, p, src_layout, layout, check_image_size(image_size, p), frame_numbers, p.stem)


def load_keypoints(path: str | Path, *, layout: str = "h36m17", image_size: tuple[int, int] | None = None,
                   src_layout: str | None = None) -> PoseSequence:
    """Dispatch on the suffix: ``.json`` -> ``load_keypoints_json``, otherwise ``load_keypoints_npz``."""
    if Path(path).suffix.lower() == ".json":
        return load_keypoints_json(path, layout=layout, image_size=image_size, src_layout=src_layout or "coco17")
    return load_keypoints_npz(path, layout=layout, image_size=image_size, src_layout=src_layout)
