"""The sequence record every reader returns, and the helpers the readers share (the files' pickled
arrays are read by `io.unpickle.load_pickled_npz`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..cameras import Camera, normalize_screen_coordinates, project_to_2d
from ..errors import InputFileError
from ..io.unpickle import load_pickled_npz  # also what data/gmm_files.py imports from here
from ..skeleton import get_skeleton, map_keypoints


@dataclass(eq=False)
class PoseSequence:
    """One (subject, action chunk, camera) sequence.

    ``keypoints_2d`` is in pixels; ``pose_3d`` in the camera frame, metres, absolute (joint 0 is the
    root). Per-frame optional arrays (``confidence``, ``pose_3d``, ``gmm_2d``, ``valid``,
    ``frame_indices``) have the same length ``T`` as ``keypoints_2d``.
    """

    dataset: str
    subject: str
    action: str
    name: str
    camera_index: int
    skeleton: str
    keypoints_2d: np.ndarray
    image_size: tuple[int, int]
    confidence: np.ndarray | None = None
    pose_3d: np.ndarray | None = None
    camera: Camera | None = None
    gmm_2d: np.ndarray | None = None
    split: str = ""
    valid: np.ndarray | None = None
    frame_indices: np.ndarray | None = None

    def __post_init__(self) -> None:
        kp = self.keypoints_2d
        if kp.ndim != 3 or kp.shape[-1] != 2:
            raise ValueError(f"keypoints_2d must be (T, J, 2), got {kp.shape}")
        t, j = kp.shape[:2]
        expected = {
            "confidence": (t, j),
            "pose_3d": (t, j, 3),
            "valid": (t,),
            "frame_indices": (t,),
        }
        for name, shape in expected.items():
            arr = getattr(self, name)
            if arr is not None and arr.shape != shape:
                raise ValueError(f"{name} must be {shape}, got {arr.shape}")
        if self.gmm_2d is not None and (self.gmm_2d.ndim != 4 or self.gmm_2d.shape[:2] != (t, j)
                                        or self.gmm_2d.shape[-1] != 5):
            raise ValueError(f"gmm_2d must be ({t}, {j}, K, 5), got {self.gmm_2d.shape}")

    def __len__(self) -> int:
        return int(self.keypoints_2d.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.keypoints_2d.shape[1])

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.subject, self.name, self.camera_index)

    def keypoints_uv(self) -> np.ndarray:
        """2D keypoints in normalised screen coordinates (see ``cameras.normalize_screen_coordinates``)."""
        w, h = self.image_size
        return normalize_screen_coordinates(self.keypoints_2d, w, h)

    def pose_3d_root_relative(self) -> np.ndarray:
        """3D pose with joint 0 (the root) subtracted; the root row becomes zero."""
        if self.pose_3d is None:
            raise ValueError(f"sequence {self.key} has no 3D pose")
        return self.pose_3d - self.pose_3d[:, :1]

    def slice(self, start: int | None = None, stop: int | None = None, step: int | None = None) -> PoseSequence:
        """Frames ``[start:stop:step]`` of every per-frame array; ``frame_indices`` keeps the originals."""
        sl = slice(start, stop, step)
        frames = self.frame_indices if self.frame_indices is not None else np.arange(len(self))

        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[sl]

        return replace(
            self,
            keypoints_2d=self.keypoints_2d[sl],
            confidence=cut(self.confidence),
            pose_3d=cut(self.pose_3d),
            gmm_2d=cut(self.gmm_2d),
            valid=cut(self.valid),
            frame_indices=frames[sl],
        )


def require_dict(value: Any, path: str | Path, what: str) -> dict:
    if not isinstance(value, dict):
        raise InputFileError(path, f"{what} should be a dict, got {type(value).__name__}")
    return value


def sorted_names(value: Any, path: str | Path, what: str) -> list[str]:
    """The keys of a subject or action dict, sorted; it must be a dict, its keys strings (as in the
    community files)."""
    for key in require_dict(value, path, what):
        if not isinstance(key, str):
            raise InputFileError(path, f"{what}: names must be strings, got {key!r:.40}")
    return sorted(value)


def as_float_array(value: Any, path: str | Path, what: str, shape_tail: tuple[int, ...]) -> np.ndarray:
    """Check ``value`` is a numeric array ``(T, *shape_tail)`` (``-1`` = any size) and return float32."""
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        raise InputFileError(path, f"{what}: not a numeric array") from None
    tail_ok = arr.ndim == 1 + len(shape_tail) and all(
        want in (-1, got) for want, got in zip(shape_tail, arr.shape[1:])
    )
    if not tail_ok:
        want = ", ".join("T" if i == 0 else str(d) for i, d in enumerate((0, *shape_tail)))
        raise InputFileError(path, f"{what}: expected shape ({want}), got {tuple(arr.shape)}".replace("-1", "J"))
    return arr


def infer_2d_layout(num_joints: int, metadata: Any, path: str | Path) -> str:
    """Skeleton of a community 2D file from its joint count and ``metadata`` (COCO vs H36M at 17 joints)."""
    meta = metadata if isinstance(metadata, dict) else {}
    if num_joints == 17:
        layout = str(meta.get("layout_name", "")).lower()
        symmetry = meta.get("keypoints_symmetry")
        coco_left = list(get_skeleton("coco17").left)
        left = list(symmetry[0]) if isinstance(symmetry, (list, tuple)) and len(symmetry) == 2 else None
        if "coco" in layout or left == coco_left or (not layout and left is None and "coco" in Path(path).name):
            return "coco17"
        return "h36m17"
    by_count = {16: "mpii16", 15: "humaneva15", 33: "blazepose33"}
    if num_joints not in by_count:
        raise InputFileError(path, f"unsupported 2D joint count {num_joints} (expected 15, 16, 17 or 33)")
    return by_count[num_joints]


def split_confidence(points: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(T, J, 2|3)`` -> pixels ``(T, J, 2)`` and confidence ``(T, J)`` (None when there is no channel)."""
    if points.shape[-1] == 3:
        return points[..., :2], points[..., 2]
    return points, None


def mark_missing(keypoints: np.ndarray, confidence: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Give non-finite joints confidence 0 and a finite position (the frame's mean of finite joints).

    Models never see NaN; the zero confidence is what marks the joint as missing.
    """
    keypoints = np.asarray(keypoints, dtype=np.float32)
    bad = ~np.all(np.isfinite(keypoints), axis=-1)
    if confidence is not None:
        confidence = np.asarray(confidence, dtype=np.float32)
        bad |= ~np.isfinite(confidence)
    if not bad.any():
        return keypoints, confidence
    conf = np.ones(bad.shape, np.float32) if confidence is None else confidence.copy()
    conf[bad] = 0.0
    kp = np.where(bad[..., None], 0.0, keypoints)
    counts = (~bad).sum(axis=-1, keepdims=True)
    sums = kp.sum(axis=-2)
    frame_mean = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    kp = np.where(bad[..., None], frame_mean[..., None, :], kp).astype(np.float32)
    return kp, conf


def projected_keypoints(pose_3d: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray | None]:
    """2D of a dataset without a 2D file: the 3D projected through the camera. Joints whose 3D is
    NaN or absurd project to non-finite pixels; they come back marked missing (`mark_missing`)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        projected = project_to_2d(pose_3d, camera).astype(np.float32)
    return mark_missing(projected, None)


def read_2d_array(value: Any, path: str | Path, what: str, num_joints: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate one camera's ``(T, J, 2|3)`` array; returns pixels and confidence (or None)."""
    arr = as_float_array(value, path, what, (num_joints, -1))
    if arr.shape[-1] not in (2, 3):
        raise InputFileError(path, f"{what}: last axis must be 2 (x, y) or 3 (x, y, score), got {arr.shape[-1]}")
    return split_confidence(arr)


def map_2d(
    keypoints: np.ndarray, confidence: np.ndarray | None, src: str, dst: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Map pixels (+ confidence) between layouts, then mark non-finite joints as missing."""
    if src != dst:
        stacked = keypoints if confidence is None else np.concatenate([keypoints, confidence[..., None]], -1)
        mapped = map_keypoints(stacked, src, dst)
        keypoints, confidence = split_confidence(mapped)
    return mark_missing(keypoints, confidence)


def read_camera_2d(
    views: list, c: int, what: str, data_2d: str | Path | None, metadata: Any, target: dict[str, str] | str,
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Camera `c`'s 2D of one sequence in the layout `target` gives for the file's layout (a name,
    or a table from the file's layout to the reader's): pixels, confidence (or None), the layout."""
    raw = np.asarray(views[c])
    if raw.ndim != 3:
        raise InputFileError(data_2d, f"{what}: expected (T, J, 2), got shape {raw.shape}")
    src = infer_2d_layout(raw.shape[1], metadata, data_2d)
    dst = target if isinstance(target, str) else target.get(src)
    if dst is None:
        raise InputFileError(data_2d, f"{what}: {src} keypoints are not a 2D source of this dataset")
    kp, conf = read_2d_array(raw, data_2d, what, raw.shape[1])
    try:
        kp, conf = map_2d(kp, conf, src, dst)
    except ValueError:
        raise InputFileError(data_2d, f"{what}: {src} keypoints cannot be mapped to {dst}") from None
    return kp, conf, dst


def wanted(values: set[str] | None, *candidates: object) -> bool:
    """A reader's filter test: no filter, or one of the names a sequence goes by is in it."""
    return values is None or any(str(c) in values for c in candidates)


def as_filter(values: Any) -> set[str] | None:
    """Normalise a filter argument (None, one value or an iterable) to a set of strings."""
    if values is None:
        return None
    if isinstance(values, (str, int)):
        values = [values]
    return {str(v) for v in values}


def load_pose_files(data_3d: str | Path | None, data_2d: str | Path | None, reader: str) -> tuple[dict | None, dict | None, Any]:
    """A VideoPose3D-layout pair: (positions_3d, positions_2d, the 2D file's metadata); either file may be absent."""
    if data_3d is None and data_2d is None:
        raise ValueError(f"{reader} needs data_3d, data_2d or both")
    pos3d = require_dict(load_pickled_npz(data_3d, "positions_3d"), data_3d, "positions_3d") if data_3d else None
    pos2d, meta = None, None
    if data_2d is not None:
        pos2d = require_dict(load_pickled_npz(data_2d, "positions_2d"), data_2d, "positions_2d")
        meta = load_pickled_npz(data_2d, "metadata", optional=True)
    return pos3d, pos2d, meta


def camera_views(pos2d: dict | None, key: Any, name: str, data_2d: str | Path | None) -> list | None:
    """The per-camera 2D arrays of one sequence (None without a 2D file)."""
    if pos2d is None:
        return None
    sub = pos2d.get(key)
    views = sub.get(name) if isinstance(sub, dict) else None
    if not isinstance(views, (list, tuple)) or not views:
        raise InputFileError(data_2d, f"no per-camera 2D list for '{key}/{name}'")
    return list(views)


def trim_to_3d(kp: np.ndarray, conf: np.ndarray | None, frames_3d: int, path: str | Path | None, what: str):
    """2D sequences can be a few frames longer than the 3D ones: cut them to the 3D length."""
    if len(kp) < frames_3d:
        raise InputFileError(path, f"{what}: {len(kp)} 2D frames for {frames_3d} 3D frames")
    return kp[:frames_3d], None if conf is None else conf[:frames_3d]


def apply_stride(sequences: list[PoseSequence], stride: int) -> list[PoseSequence]:
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    return sequences if stride == 1 else [s.slice(step=stride) for s in sequences]
