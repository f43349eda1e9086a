"""A synthetic 17-joint standing pose (h36m17 order) shared by the viz tests."""

from __future__ import annotations

import numpy as np

PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]
NAMES = ["pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "thorax",
         "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist"]
LEFT = [4, 5, 6, 11, 12, 13]
RIGHT = [1, 2, 3, 14, 15, 16]
HEAD, R_ANKLE = 10, 3

# Camera frame: x right, y down, z forward; metres, root-relative.
POSE = np.array([[0, 0, 0], [-.13, 0, 0], [-.15, .45, .02], [-.16, .88, .08], [.13, 0, 0],
                 [.17, .44, -.05], [.2, .86, 0], [0, -.23, 0], [0, -.48, .02], [0, -.58, 0],
                 [0, -.70, -.02], [.17, -.47, 0], [.33, -.25, -.06], [.42, -.05, -.2],
                 [-.17, -.47, 0], [-.38, -.52, -.05], [-.58, -.6, -.1]], dtype=float)


def project(pose: np.ndarray, depth: float = 4.0, f: float = 500.0) -> np.ndarray:
    """Pixels in a 640x480 image of the pose placed `depth` metres in front of the camera."""
    cam = pose + np.array([0.0, 0.0, depth])
    return cam[:, :2] / cam[:, 2:] * f + np.array([320.0, 240.0])


def hypotheses(sigma: np.ndarray, n: int = 64, seed: int = 0) -> np.ndarray:
    """n hypotheses (n, J, 3) scattered around POSE with per-joint std `sigma` (m)."""
    rng = np.random.default_rng(seed)
    return POSE[None] + rng.normal(size=(n, len(POSE), 3)) * sigma[None, :, None]
