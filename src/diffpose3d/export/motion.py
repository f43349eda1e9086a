"""A person's motion for export: joint positions in a Y-up frame over every frame of their span.

The export frame turns the camera frame (x right, y down, z forward) half a turn about x: x right,
y up, z towards the camera (glTF's convention, and BVH's usual one), so a person facing the camera
faces +z and their left is +x. Units are metres. A joint's position is `pose_3d + root`; a person
without any root (too few joints seen in every frame) stays at the origin, root-relative. Frames of
the span without a row, and rows without a root, are filled by linear interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffpose3d.inference.result import PoseResult

CAMERA_TO_EXPORT = np.diag([1.0, -1.0, -1.0])
DEFAULT_FPS = 10.0  # frame sequences without a frame rate (as the renders)


@dataclass
class Motion:
    """One person's motion: `positions (T, J, 3)` in the export frame, metres, for the frames
    `first_frame .. first_frame + T - 1` at `fps`; `spread (T, J)` the hypotheses' per-joint spread,
    `root_std (T, 3)` the root's per-axis spread (export axes), NaN where unknown."""

    person_id: int
    joint_names: list[str]
    parents: list[int]
    positions: np.ndarray
    spread: np.ndarray
    root_std: np.ndarray
    first_frame: int
    fps: float
    placed: bool  # False: no root in any frame (root-relative)

    @property
    def num_frames(self) -> int:
        return int(self.positions.shape[0])

    def times(self) -> np.ndarray:
        """Seconds of each frame from the result's frame 0."""
        return (self.first_frame + np.arange(self.num_frames)) / self.fps


def result_fps(result: PoseResult) -> float:
    fps = (result.meta.get("source") or {}).get("fps") or 0.0
    return float(fps) if fps and np.isfinite(fps) and fps > 0 else DEFAULT_FPS


def _fill(frames: np.ndarray, values: np.ndarray, span: np.ndarray) -> np.ndarray:
    """`values (R, ...)` at `frames (R,)` on every frame of `span`, linear between rows (NaN rows skipped)."""
    flat = values.reshape(len(values), -1)
    out = np.empty((len(span), flat.shape[1]))
    for k in range(flat.shape[1]):
        ok = np.isfinite(flat[:, k])
        out[:, k] = np.interp(span, frames[ok], flat[ok, k]) if ok.any() else np.nan
    return out.reshape((len(span),) + values.shape[1:])


def person_motion(result: PoseResult, person_id: int, fps: float | None = None) -> Motion:
    """The motion of one person of `result` (its rows in frame order)."""
    from diffpose3d.scene.trajectory import root_std

    rows = np.flatnonzero(result.person_ids == person_id)
    if not len(rows):
        raise ValueError(f"no person {person_id} in the result (people: {result.people})")
    rows = rows[np.argsort(result.frame_indices[rows], kind="stable")]
    frames = result.frame_indices[rows].astype(np.int64)
    span = np.arange(frames.min(), frames.max() + 1)
    pose = result.pose_3d[rows].astype(np.float64)
    root = np.full((len(rows), 3), np.nan) if result.root is None else result.root[rows].astype(np.float64)
    placed = bool(np.isfinite(root).all(1).any())
    root = _fill(frames, root, span) if placed else np.zeros((len(span), 3))
    positions = _fill(frames, pose, span) + root[:, None]
    std = root_std(result.root_hypotheses[rows]) if result.root is not None else np.full((len(rows), 3), np.nan)
    return Motion(
        person_id=int(person_id), joint_names=list(result.joint_names), parents=[int(p) for p in result.parents],
        positions=positions @ CAMERA_TO_EXPORT.T, spread=_fill(frames, result.uncertainty[rows].astype(np.float64), span),
        root_std=_fill(frames, std, span), first_frame=int(span[0]), fps=float(fps or result_fps(result)), placed=placed,
    )
