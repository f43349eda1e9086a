"""The typed result of lifting: the pose, its hypotheses, its uncertainty and what it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PoseResult:
    """3D poses of T frames in metres, root-relative, camera frame (x right, y down, z forward)."""

    joint_names: list[str]
    parents: list[int]
    pose_3d: np.ndarray  # (T, J, 3) aggregated hypotheses
    hypotheses: np.ndarray  # (T, N, J, 3)
    covariance: np.ndarray  # (T, J, 3, 3) of the hypotheses
    uncertainty: np.ndarray  # (T, J) RMS standard deviation sqrt(trace(cov) / 3), metres
    keypoints_2d: np.ndarray  # (T, J, 2) pixels: the 2D evidence used (top mode), model layout
    confidence: np.ndarray  # (T, J) in [0, 1]
    missing: np.ndarray  # (T, J) bool: joints with no 2D evidence (broad H_K)
    lifter_3d: np.ndarray  # (T, J, 3) the context encoder's deterministic guess
    image_size: tuple[int, int]
    frame_indices: np.ndarray  # (T,)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.pose_3d.shape[0])

    @property
    def num_hypotheses(self) -> int:
        return int(self.hypotheses.shape[1])
