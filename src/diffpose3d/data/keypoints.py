"""Custom 2D inputs: COCO-style keypoint JSON (as MMPose / RTMPose tools write) and plain npz arrays.
The formats, with a minimal example each, are documented in `docs/INPUTS.md`.

JSON: a list (or ``{"annotations": [...]}``) of ``{"image_id" | "frame" | "frame_id": id,
"keypoints": [x, y, c] * J, "score": s}``, any number of people per image, optionally with an
integer ``"track_id"`` (or ``"person_id"``) per record. Frame ids are all integers >= 0 (frames of
a video; gaps between them are frames without a detection) or all strings (names of photos).

npz: ``keypoints`` (or the only array) of shape (T, J, 2|3), or (P, T, J, 2|3) for P people,
optional ``image_size`` (w, h) and ``layout`` (a skeleton name; 17 joints without one are COCO).

Keypoints are mapped to ``layout`` with ``skeleton.map_keypoints``; NaN / inf joints, and joints
absurdly far outside the image (beyond ``FAR_OUTSIDE`` image sizes), get confidence 0.
Confidences outside [0, 1] are clamped into it, with an ``InputWarning``.

``load_keypoints`` gives one sequence (the best-scoring person of each frame: what the dataset
readers use); ``load_keypoint_people`` gives every person, with a stable id.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputFileError
from ..io.arrays import load_npz
from ..io.limits import InputWarning, read_bytes_bounded
from ..skeleton import SKELETON_NAMES, get_skeleton
from .base import PoseSequence, map_2d, split_confidence

_DEFAULT_SOURCE = {17: "coco17", 33: "blazepose33", 16: "mpii16", 15: "humaneva15", 32: "h36m32"}
_MAX_JSON_FRAMES = 1_000_000  # integer frame ids are filled in between: refuse absurd spans
_MAX_IMAGE_SIDE = 1 << 20
FAR_OUTSIDE = 100  # a coordinate beyond this many image sizes is garbage: the joint counts as missing
NO_IMAGE_SIZE = "carries no image size: give it (--image-size W H; in Python image_size=(w, h))"
_FRAME_KEYS = ("frame", "image_id", "frame_id")
_TRACK_KEYS = ("track_id", "person_id")
MAX_ID = 2**31 - 1  # frame and track ids: what every integer array downstream holds without overflow


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
        raise InputFileError(path, f"cannot tell the layout of {num_joints} joints: name it (--layout)")
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


def clamp_confidence(conf: np.ndarray | None, path: Path) -> np.ndarray | None:
    """Finite confidences outside [0, 1] clamped into it, with one `InputWarning` saying how many."""
    if conf is None:
        return None
    with np.errstate(invalid="ignore"):
        outside = np.isfinite(conf) & ((conf < 0) | (conf > 1))
    if outside.any():
        warnings.warn(InputWarning(path, f"{int(outside.sum())} confidence(s) outside [0, 1] clamped into it"),
                      stacklevel=3)
        conf = np.where(outside, np.clip(conf, 0.0, 1.0), conf)
    return conf


def _build(points: np.ndarray, path: Path, src: str, layout: str, size: tuple[int, int],
           frames: np.ndarray, name: str) -> PoseSequence:
    with np.errstate(over="ignore", invalid="ignore"):  # too large for float32: inf, then missing
        kp, conf = split_confidence(points.astype(np.float32))
    kp = drop_far_outside(kp, size)
    conf = clamp_confidence(conf, path)
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


def _npz_people(path: str | Path, image_size, src_layout) -> tuple[np.ndarray, str, tuple[int, int]]:
    """(P, T, J, C) points of an npz, their layout and the image size."""
    p = Path(path)
    arrays = load_npz(p)
    if "keypoints" in arrays:
        points = arrays["keypoints"]
    else:
        candidates = [k for k in arrays if k not in ("image_size", "layout")]
        if len(candidates) != 1:
            raise InputFileError(p, f"needs a 'keypoints' array (found: {', '.join(arrays) or 'none'})")
        points = arrays[candidates[0]]
    if points.ndim not in (3, 4) or points.shape[-1] not in (2, 3) or points.dtype.kind not in "iuf":
        raise InputFileError(p, f"keypoints must be numeric (T, J, 2|3) or (P, T, J, 2|3), got {points.dtype} {points.shape}")
    points = points if points.ndim == 4 else points[None]
    if 0 in points.shape[:2]:
        raise InputFileError(p, "keypoints hold no frames")
    declared = src_layout or (str(arrays["layout"]) if "layout" in arrays else None)
    size = image_size if image_size is not None else arrays.get("image_size")
    if size is None:
        raise InputFileError(p, NO_IMAGE_SIZE)
    return points, _source_layout(points.shape[2], declared, p), check_image_size(size, p)


def load_keypoints_npz(path: str | Path, *, layout: str = "h36m17", image_size: tuple[int, int] | None = None,
                       src_layout: str | None = None) -> PoseSequence:
    points, src, size = _npz_people(path, image_size, src_layout)
    return _build(points[0], Path(path), src, layout, size, np.arange(points.shape[1]), Path(path).stem)


def _frame_id(rec: dict, path: Path, i: int) -> int | str:
    """A record's frame id: an integer >= 0 (an integral float counts) or a string."""
    key = next((k for k in _FRAME_KEYS if k in rec), None)
    if key is None:
        raise InputFileError(path, f"record {i} has no 'frame' or 'image_id'")
    frame = rec[key]
    if isinstance(frame, float) and frame.is_integer() and abs(frame) <= MAX_ID:
        frame = int(frame)
    if isinstance(frame, bool) or not isinstance(frame, (int, str)):
        raise InputFileError(path, f"record {i}: the frame id must be an integer or a string, got {frame!r:.40}")
    if isinstance(frame, int) and frame < 0:
        raise InputFileError(path, f"record {i}: frame id {frame} is negative")
    if isinstance(frame, int) and frame > MAX_ID:
        raise InputFileError(path, f"record {i}: frame id {str(frame)[:20]} is larger than {MAX_ID}")
    return frame


class _DuplicateKey(ValueError):
    """A JSON object names one key twice (JSON readers keep the last, silently)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _json_records(p: Path, src_layout: str, image_size) -> tuple[dict[Any, list[tuple[float, np.ndarray, int | None]]], int]:
    """{frame id: [(score, (J, 3) points, track id or None)]} of a keypoint JSON file, and J."""
    try:
        records = json.loads(read_bytes_bounded(p).decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputFileError(p, f"not valid JSON ({exc.__class__.__name__}: {exc})") from None
    except _DuplicateKey as exc:
        raise InputFileError(p, f"one object names the key '{exc.args[0]:.40}' twice (which is meant?)") from None
    if isinstance(records, dict):
        records = records.get("annotations")
    if not isinstance(records, list) or not records:
        raise InputFileError(p, "expected a non-empty list of keypoint records")
    if image_size is None:
        raise InputFileError(p, f"keypoint JSON {NO_IMAGE_SIZE}")
    j = get_skeleton(_known_layout(src_layout, p)).num_joints
    frames: dict[Any, list] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or "keypoints" not in rec:
            raise InputFileError(p, f"record {i} has no 'keypoints'")
        try:
            kp = np.asarray(rec["keypoints"], dtype=np.float64).reshape(j, 3)
        except (TypeError, ValueError, OverflowError):
            raise InputFileError(p, f"record {i}: 'keypoints' must be {3 * j} numbers (x, y, score) * {j}") from None
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN record's mean
                score = float(rec["score"]) if "score" in rec else float(np.nanmean(kp[:, 2]))
        except (TypeError, ValueError, OverflowError):
            raise InputFileError(p, f"record {i}: 'score' must be a number, got {rec['score']!r:.40}") from None
        track = next((rec[k] for k in _TRACK_KEYS if k in rec), None)
        if track is not None and (isinstance(track, bool) or not isinstance(track, int) or not 0 <= track <= MAX_ID):
            raise InputFileError(p, f"record {i}: a track id must be an integer from 0 to {MAX_ID}, got {track!r:.40}")
        frames.setdefault(_frame_id(rec, p, i), []).append((score if np.isfinite(score) else -np.inf, kp, track))
    kinds = {type(f) for f in frames}
    if len(kinds) > 1:
        raise InputFileError(p, "frame ids mix integers and strings: use one kind for the whole file")
    if kinds == {int} and max(frames) - min(frames) >= _MAX_JSON_FRAMES:
        raise InputFileError(p, f"frame ids {min(frames)} to {max(frames)} span more than {_MAX_JSON_FRAMES} frames")
    return frames, j


def load_keypoints_json(path: str | Path, *, layout: str = "h36m17", image_size: tuple[int, int] | None = None,
                        src_layout: str = "coco17") -> PoseSequence:
    """The best-scoring person of every frame (integer ids: every frame between the first and the
    last, frames without a record missing; string ids: sorted by name)."""
    p = Path(path)
    frames, j = _json_records(p, src_layout, image_size)
    ids = list(frames)
    numbered = isinstance(ids[0], int)
    order = np.arange(min(ids), max(ids) + 1) if numbered else sorted(ids)
    points = np.full((len(order), j, 3), np.nan)
    for t, f in enumerate(order.tolist() if numbered else order):
        if f in frames:
            points[t] = max(frames[f], key=lambda r: r[0])[1]
    numbers = order if numbered else np.arange(len(order))
    return _build(points, p, src_layout, layout, check_image_size(image_size, p), numbers, p.stem)


def load_keypoints(path: str | Path, *, layout: str = "h36m17", image_size: tuple[int, int] | None = None,
                   src_layout: str | None = None) -> PoseSequence:
    """Dispatch on the suffix: ``.json`` -> ``load_keypoints_json``, otherwise ``load_keypoints_npz``."""
    if Path(path).suffix.lower() == ".json":
        return load_keypoints_json(path, layout=layout, image_size=image_size, src_layout=src_layout or "coco17")
    return load_keypoints_npz(path, layout=layout, image_size=image_size, src_layout=src_layout)


def load_keypoint_people(path: str | Path, *, layout: str, image_size: tuple[int, int] | None = None,
                         src_layout: str | None = None) -> tuple[list[tuple[int, PoseSequence]], list[str] | None]:
    """Every person of a keypoints file as ``[(person id, their PoseSequence)]``, and the frame
    names (string frame ids, else None). A person's sequence covers the frames from their first to
    their last with any evidence (frames between without it: every joint missing); with named frames
    (photos), exactly the photos they are in. People without any evidence are left out."""
    p = Path(path)
    if p.suffix.lower() != ".json":
        points, src, size = _npz_people(p, image_size, src_layout)
        people = [(i, _build(pts, p, src, layout, size, np.arange(len(pts)), p.stem)) for i, pts in enumerate(points)]
        return [(i, s) for i, s in ((i, _trim(s)) for i, s in people) if s is not None], None
    src = src_layout or "coco17"
    frames, j = _json_records(p, src, image_size)
    size = check_image_size(image_size, p)
    numbered = isinstance(next(iter(frames)), int)
    names = None if numbered else [str(f) for f in sorted(frames)]
    position = {f: i for i, f in enumerate(sorted(frames))}
    frames = {f: [r for r in recs if _has_evidence(r[1], size)] for f, recs in frames.items()}  # a record
    order = sorted(f for f, recs in frames.items() if recs)  # without any usable joint is nobody
    tracks = _person_ids(p, frames, order, numbered)
    seen: dict[int, dict[Any, np.ndarray]] = {}
    for f in order:
        for (_, kp, _), pid in zip(frames[f], tracks[f]):
            seen.setdefault(pid, {})[f] = kp
    people = []
    for pid, at in sorted(seen.items()):
        span = np.arange(min(at), max(at) + 1) if numbered else np.array([position[f] for f in at])
        points = np.full((len(span), j, 3), np.nan)
        for t, f in enumerate(span.tolist() if numbered else list(at)):
            if f in at:
                points[t] = at[f]
        seq = _trim(_build(points, p, src, layout, size, span, p.stem))
        if seq is not None:
            people.append((pid, seq))
    return people, names


def _has_evidence(points: np.ndarray, size: tuple[int, int]) -> bool:
    """Whether a record's (J, 3) points hold one joint a reader keeps (finite, near the image,
    confidence > 0)."""
    with np.errstate(invalid="ignore"):
        near = (np.abs(points[:, :2]) <= FAR_OUTSIDE * max(size)).all(-1)
        return bool((near & (np.nan_to_num(points[:, 2], nan=0.0) > 0)).any())


def _person_ids(path: Path, frames: dict, order: list, numbered: bool) -> dict[Any, list[int]]:
    """Each record's person id: its track id when every record has one; for numbered frames the
    tracker's ids; for named frames (unrelated photos) 0, 1, ... by score within each photo."""
    records = [r for f in order for r in frames[f]]
    if all(r[2] is not None for r in records):
        ids = {f: [r[2] for r in frames[f]] for f in order}
        if any(len(set(v)) != len(v) for v in ids.values()):
            raise InputFileError(path, "a track id appears twice in one frame")
        return ids
    if not numbered:
        ranks = {f: list(np.argsort([-r[0] for r in frames[f]], kind="stable")) for f in order}
        return {f: [int(ranks[f].index(k)) for k in range(len(frames[f]))] for f in order}
    from diffpose3d.detect.people import PersonTracker

    tracker = PersonTracker()
    with np.errstate(all="ignore"):
        return {f: tracker.update(int(f), [r[1][:, :2] for r in frames[f]],
                                  [np.nan_to_num(r[1][:, 2], nan=0.0) for r in frames[f]]) for f in order}


def _trim(seq: PoseSequence) -> PoseSequence | None:
    """`seq` without its leading and trailing frames that hold no evidence (None when none does)."""
    has = (seq.confidence > 0).any(axis=1)
    if not has.any():
        return None
    rows = np.arange(np.argmax(has), len(has) - np.argmax(has[::-1]))
    if len(rows) == len(seq):
        return seq
    return PoseSequence(
        dataset=seq.dataset, subject="", action="", name=seq.name, camera_index=0, skeleton=seq.skeleton,
        keypoints_2d=seq.keypoints_2d[rows], image_size=seq.image_size, confidence=seq.confidence[rows],
        frame_indices=seq.frame_indices[rows],
    )
