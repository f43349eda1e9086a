"""Write a `PoseResult` as `<name>.npz` and `<name>.json` (schema: `assets/prediction.schema.json`)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

from diffpose3d.errors import OutputFileError
from diffpose3d.io.atomic import atomic_write, save_npz_atomic
from diffpose3d.inference.result import PoseResult

SCHEMA_ID = "diffpose3d.prediction/1"
COORDINATE_FRAME = "camera frame, root-relative (joint 0 at the origin): x right, y down, z forward"


def prediction_schema() -> dict:
    path = resources.files("diffpose3d") / "assets" / "prediction.schema.json"
    return json.loads(path.read_text())


def _round(a: np.ndarray, digits: int = 5) -> list:
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()


def frame_to_json(result: PoseResult, t: int) -> dict:
    return {
        "index": int(result.frame_indices[t]),
        "pose_3d": _round(result.pose_3d[t]),
        "uncertainty": _round(result.uncertainty[t]),
        "covariance": _round(result.covariance[t], 7),
        "hypotheses": _round(result.hypotheses[t]),
        "keypoints_2d": _round(result.keypoints_2d[t], 2),
        "confidence": _round(result.confidence[t], 3),
        "missing": [bool(m) for m in result.missing[t]],
    }


def _header(result: PoseResult) -> dict:
    return {
        "schema": SCHEMA_ID,
        "units": "m",
        "coordinate_frame": COORDINATE_FRAME,
        "joint_names": list(result.joint_names),
        "parents": [int(p) for p in result.parents],
        "image_size": [int(v) for v in result.image_size],
        "num_frames": len(result),
        "num_hypotheses": result.num_hypotheses,
        "meta": result.meta,
    }


def write_result(result: PoseResult, out_dir: str | Path, name: str) -> tuple[Path, Path]:
    """Atomically write `out_dir/name.npz` and `out_dir/name.json`; returns both paths.

    The pair is written together or not at all: if the JSON fails, the new npz is removed.
    Unwritable targets raise `OutputFileError` naming the folder or file.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFileError(out_dir, f"cannot create the output folder ({exc.strerror or exc})") from None
    npz_path = out_dir / f"{name}.npz"
    json_path = out_dir / f"{name}.json"
    try:
        _write_npz(result, npz_path)
    except OSError as exc:
        raise OutputFileError(npz_path, f"cannot write ({exc.strerror or exc})") from None
    try:
        _write_json(result, json_path)
    except BaseException as exc:
        npz_path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputFileError(json_path, f"cannot write ({exc.strerror or exc})") from None
        raise
    return npz_path, json_path


def _write_npz(result: PoseResult, npz_path: Path) -> None:
    save_npz_atomic(
        npz_path,
        pose_3d=result.pose_3d.astype(np.float32),
        hypotheses=result.hypotheses.astype(np.float32),
        covariance=result.covariance.astype(np.float32),
        uncertainty=result.uncertainty.astype(np.float32),
        keypoints_2d=result.keypoints_2d.astype(np.float32),
        confidence=result.confidence.astype(np.float32),
        missing=result.missing.astype(bool),
        lifter_3d=result.lifter_3d.astype(np.float32),
        joint_names=np.asarray(result.joint_names),
        parents=np.asarray(result.parents, dtype=np.int64),
        image_size=np.asarray(result.image_size, dtype=np.int64),
        frame_indices=np.asarray(result.frame_indices, dtype=np.int64),
        meta=np.asarray(json.dumps(result.meta)),
    )


def _write_json(result: PoseResult, json_path: Path) -> None:
    with atomic_write(json_path, "w") as handle:
        # Streamed frame by frame, so memory does not grow with the length of a video.
        head = json.dumps(_header(result))
        handle.write(head[:-1] + ', "frames": [')
        for t in range(len(result)):
            handle.write(("," if t else "") + json.dumps(frame_to_json(result, t)))
        handle.write("]}")


def load_result_npz(path: str | Path) -> PoseResult:
    """Read back a prediction npz written by `write_result` (no pickles)."""
    with np.load(path, allow_pickle=False) as f:
        return PoseResult(
            joint_names=[str(n) for n in f["joint_names"]],
            parents=[int(p) for p in f["parents"]],
            pose_3d=f["pose_3d"],
            hypotheses=f["hypotheses"],
            covariance=f["covariance"],
            uncertainty=f["uncertainty"],
            keypoints_2d=f["keypoints_2d"],
            confidence=f["confidence"],
            missing=f["missing"],
            lifter_3d=f["lifter_3d"],
            image_size=tuple(int(v) for v in f["image_size"]),
            frame_indices=f["frame_indices"],
            meta=json.loads(str(f["meta"])),
        )
