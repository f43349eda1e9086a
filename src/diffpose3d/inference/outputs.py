"""Write a `PoseResult` as `<name>.npz` and `<name>.json` (schema: `assets/prediction.schema.json`),
as one unit with the result's other files (`io.results`: a lock per output folder, staged files, a
manifest written last), and read it back.

The npz holds one row per person per frame (`frame_indices`, `person_ids`); the JSON groups the
same rows by frame: `frames[k] = {"index": frame, "people": [{"id": person, "pose_3d": ...}]}`.
Numbers that are not finite are written as `null` (never a bare `NaN`, which is not JSON).
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import numpy as np

from diffpose3d.errors import InputFileError, OutputFileError
from diffpose3d.inference.result import PoseResult
from diffpose3d.io.results import OutputFolder, Staging, verify_result
from diffpose3d.scene.trajectory import ROOT_FRAME, root_std

SCHEMA_ID = "diffpose3d.prediction/2"
COORDINATE_FRAME = "camera frame, root-relative (joint 0 at the origin): x right, y down, z forward"
DETECTOR_WORLD_FRAME = "metres, origin mid-hip, x right, y down, z away from the camera (MediaPipe's pose_world_landmarks)"
MAX_RESULT_BYTES = 1 << 30


def prediction_schema() -> dict:
    path = resources.files("diffpose3d") / "assets" / "prediction.schema.json"
    return json.loads(path.read_text())


def _round(a: np.ndarray, digits: int = 5) -> list:
    """Nested lists of rounded floats, `None` where a value is not finite."""
    values = np.round(np.asarray(a, dtype=np.float64), digits)
    if np.isfinite(values).all():
        return values.tolist()
    return np.where(np.isfinite(values), values, None).tolist()


def json_safe(obj):
    """`obj` with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    return obj


def _dumps(obj) -> str:
    return json.dumps(json_safe(obj), allow_nan=False)


def person_to_json(result: PoseResult, r: int) -> dict:
    """Row `r` (one person in one frame) as JSON."""
    entry = {
        "id": int(result.person_ids[r]),
        "pose_3d": _round(result.pose_3d[r]),
        "uncertainty": _round(result.uncertainty[r]),
        "covariance": _round(result.covariance[r], 7),
        "hypotheses": _round(result.hypotheses[r]),
        "keypoints_2d": _round(result.keypoints_2d[r], 2),
        "confidence": _round(np.clip(result.confidence[r], 0.0, 1.0), 3),
        "missing": [bool(m) for m in result.missing[r]],
    }
    if result.root is not None:
        entry["root"] = _round(result.root[r])
        entry["root_std"] = _round(root_std(result.root_hypotheses[r]))
        entry["root_hypotheses"] = _round(result.root_hypotheses[r])
    if result.detector_world_3d is not None:
        world = result.detector_world_3d[r]
        entry["detector_world_3d"] = _round(world, 4) if np.isfinite(world).all() else None
        entry["detector_score"] = round(float(result.detector_score[r]), 4)
    if result.out_of_domain is not None:
        entry["out_of_domain"] = round(float(result.out_of_domain[r]), 4)
    if result.reprojection_miss is not None:
        entry["reprojection_miss"] = _round(result.reprojection_miss[r], 4)
    return entry


def _header(result: PoseResult) -> dict:
    people = []
    for pid in result.people:
        frames = result.frame_indices[result.person_ids == pid]
        people.append({"id": pid, "num_frames": len(frames), "first_frame": int(frames.min()),
                       "last_frame": int(frames.max())})
    head = {
        "schema": SCHEMA_ID,
        "units": "m",
        "coordinate_frame": COORDINATE_FRAME,
        "joint_names": list(result.joint_names),
        "parents": [int(p) for p in result.parents],
        "image_size": [int(v) for v in result.image_size],
        "num_frames": result.num_frames,
        "num_people": len(people),
        "people": people,
        "num_hypotheses": result.num_hypotheses,
        "meta": result.meta,
    }
    if result.detector_world_3d is not None:
        head["detector_world_frame"] = DETECTOR_WORLD_FRAME
    if result.root is not None:
        head["root_frame"] = ROOT_FRAME
    return head


def write_result(result: PoseResult, out_dir: str | Path, name: str) -> tuple[Path, Path]:
    """Write `out_dir/name.npz` and `out_dir/name.json` as one unit (`io.results`); returns both
    paths. Unwritable targets raise `OutputFileError` naming the folder or file."""
    with OutputFolder(out_dir) as out, out.result(name) as stage:
        stage_result(result, stage, name, out.run_id)
    return Path(out_dir) / f"{name}.npz", Path(out_dir) / f"{name}.json"


def stage_result(result: PoseResult, stage: Staging, name: str, run_id: str) -> list[str]:
    """Write the npz and the JSON of `result` into a staging folder; returns their file names."""
    result.meta["run"] = run_id
    names = [f"{name}.npz", f"{name}.json"]
    try:
        _write_npz(result, stage.path(names[0]))
        _write_json(result, stage.path(names[1]))
    except OSError as exc:
        raise OutputFileError(Path(stage.folder).parent / name, f"cannot write ({exc.strerror or exc})") from None
    return names


def _write_npz(result: PoseResult, npz_path: Path) -> None:
    arrays = dict(
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
        person_ids=np.asarray(result.person_ids, dtype=np.int64),
        meta=np.asarray(_dumps(result.meta)),
    )
    if result.detector_world_3d is not None:
        arrays["detector_world_3d"] = result.detector_world_3d.astype(np.float32)
        arrays["detector_score"] = result.detector_score.astype(np.float32)
    if result.root is not None:
        arrays["root"] = result.root.astype(np.float32)
        arrays["root_hypotheses"] = result.root_hypotheses.astype(np.float32)
    if result.out_of_domain is not None:
        arrays["out_of_domain"] = result.out_of_domain.astype(np.float32)
    if result.reprojection_miss is not None:
        arrays["reprojection_miss"] = result.reprojection_miss.astype(np.float32)
    with open(npz_path, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def _write_json(result: PoseResult, json_path: Path) -> None:
    with open(json_path, "w", encoding="utf-8") as handle:
        # Streamed frame by frame, so memory does not grow with the length of a video.
        head = _dumps(_header(result))
        handle.write(head[:-1] + ', "frames": [')
        starts = np.flatnonzero(np.r_[True, np.diff(result.frame_indices) != 0])
        ends = np.r_[starts[1:], len(result)]
        for k, (a, b) in enumerate(zip(starts, ends)):
            frame = {"index": int(result.frame_indices[a]), "people": [person_to_json(result, r) for r in range(a, b)]}
            handle.write(("," if k else "") + _dumps(frame))
        handle.write("]}")


def load_result_npz(path: str | Path) -> PoseResult:
    """Read back a prediction npz written by `write_result` (no pickles; checked against the
    result's manifest when there is one)."""
    from diffpose3d.io.arrays import load_npz

    verify_result(path)
    f = load_npz(path, max_bytes=MAX_RESULT_BYTES)
    try:
        result = PoseResult(
            joint_names=[str(n) for n in f["joint_names"]],
            parents=[int(p) for p in f["parents"]],
            pose_3d=f["pose_3d"], hypotheses=f["hypotheses"], covariance=f["covariance"],
            uncertainty=f["uncertainty"], keypoints_2d=f["keypoints_2d"], confidence=f["confidence"],
            missing=f["missing"], lifter_3d=f["lifter_3d"],
            image_size=tuple(int(v) for v in f["image_size"]),
            frame_indices=f["frame_indices"],
            meta=json.loads(str(f["meta"])),
            person_ids=f.get("person_ids"),
            detector_world_3d=f.get("detector_world_3d"),
            detector_score=f.get("detector_score"),
            root=f.get("root"),
            root_hypotheses=f.get("root_hypotheses"),
            out_of_domain=f.get("out_of_domain"),
            reprojection_miss=f.get("reprojection_miss"),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise InputFileError(path, f"not a diffpose3d prediction npz ({exc.__class__.__name__}: {exc})") from None
    return result
