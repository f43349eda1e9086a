"""The typed result of lifting: the poses, their hypotheses, their uncertainty and what they came from.

A result is a table of rows, one per person per frame, sorted by frame then person
(`frame_indices`, `person_ids`); a single person's result has one row per frame, as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

# Per-row arrays (the first axis is the row), in the order they are written.
ROW_ARRAYS = ("pose_3d", "hypotheses", "covariance", "uncertainty", "keypoints_2d", "confidence", "missing",
              "lifter_3d", "frame_indices", "person_ids")
OPTIONAL_ROW_ARRAYS = ("detector_world_3d", "detector_score", "root", "root_hypotheses", "out_of_domain",
                       "reprojection_miss")


@dataclass
class PoseResult:
    """3D poses in metres, root-relative, camera frame (x right, y down, z forward)."""

    joint_names: list[str]
    parents: list[int]
    pose_3d: np.ndarray  # (R, J, 3) aggregated hypotheses
    hypotheses: np.ndarray  # (R, N, J, 3)
    covariance: np.ndarray  # (R, J, 3, 3) of the hypotheses
    uncertainty: np.ndarray  # (R, J) RMS standard deviation sqrt(trace(cov) / 3), metres
    keypoints_2d: np.ndarray  # (R, J, 2) pixels: the 2D evidence used (top mode), model layout
    confidence: np.ndarray  # (R, J) in [0, 1]
    missing: np.ndarray  # (R, J) bool: joints with no 2D evidence (broad H_K)
    lifter_3d: np.ndarray  # (R, J, 3) the context encoder's deterministic guess
    image_size: tuple[int, int]
    frame_indices: np.ndarray  # (R,)
    meta: dict = field(default_factory=dict)
    person_ids: np.ndarray | None = None  # (R,); None: one person, id 0
    detector_world_3d: np.ndarray | None = None  # (R, 33, 3) the detector's own 3D landmarks (NaN: none)
    detector_score: np.ndarray | None = None  # (R,) the detector's confidence in the person
    root: np.ndarray | None = None  # (R, 3) the root joint's camera-frame position, metres (scene.trajectory)
    root_hypotheses: np.ndarray | None = None  # (R, N, 3) each hypothesis' root
    # (R,) how unlike the bundle's training input each row is (`uncertainty.ood`; 0 = a typical
    # held-out frame, `meta["out_of_domain_warn_at"]` = the 1 % most unusual); None: the bundle has none
    out_of_domain: np.ndarray | None = None
    # (R, J) metres by which each joint's 3D misses its 2D beyond the evidence's noise, which widened
    # its spread (`uncertainty.reprojection`); None: the bundle does not widen for it
    reprojection_miss: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.person_ids is None:
            self.person_ids = np.zeros(len(self.pose_3d), np.int64)

    def __len__(self) -> int:
        return len(self.pose_3d)

    @property
    def num_hypotheses(self) -> int:
        return int(self.hypotheses.shape[1])

    @property
    def people(self) -> list[int]:
        """The person ids present, ascending."""
        return [int(p) for p in np.unique(self.person_ids)]

    @property
    def num_frames(self) -> int:
        """Frames that hold at least one person."""
        return len(np.unique(self.frame_indices))

    @property
    def pose_in_scene(self) -> np.ndarray:
        """(R, J, 3) every joint in the camera frame (`pose_3d + root`); NaN where there is no root."""
        if self.root is None:
            return np.full(self.pose_3d.shape, np.nan, np.float32)
        return self.pose_3d + self.root[:, None, :]

    def export(self, folder: str | Path, formats: str | Iterable[str] = ("bvh", "gltf"), *, name: str = "result",
               fps: float | None = None) -> list[Path]:
        """Write the people's motion as BVH (`<name>_person<ID>.bvh`) and/or glTF 2.0 binary
        (`<name>.glb`) into `folder`; returns the paths (`export.files.export_result`)."""
        from diffpose3d.export.files import export_result
        from diffpose3d.export.formats import parse_formats

        return export_result(self, parse_formats(formats), name=name, folder=folder, fps=fps)

    def select(self, rows: np.ndarray) -> PoseResult:
        """The result restricted to `rows` (indices or a boolean mask)."""
        rows = np.asarray(rows)
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in (*ROW_ARRAYS, *OPTIONAL_ROW_ARRAYS):
            if values[name] is not None:
                values[name] = values[name][rows]
        values["meta"] = dict(self.meta)
        return PoseResult(**values)

    def person(self, person_id: int) -> PoseResult:
        """One person's rows, in frame order."""
        return self.select(self.person_ids == person_id)


def concat_results(results: list[PoseResult]) -> PoseResult:
    """Rows of several results of one model and input (e.g. one per person), sorted by frame then
    person. Optional per-row arrays are kept when every part has them."""
    first = results[0]
    values = {f.name: getattr(first, f.name) for f in fields(first)}
    for name in (*ROW_ARRAYS, *OPTIONAL_ROW_ARRAYS):
        parts = [getattr(r, name) for r in results]
        values[name] = None if any(p is None for p in parts) else np.concatenate(parts)
    values["meta"] = dict(first.meta)
    merged = PoseResult(**values)
    return merged.select(np.lexsort((merged.person_ids, merged.frame_indices)))
