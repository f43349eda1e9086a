"""The 2D detector backend protocol: one person's keypoints (and, when the backend has them,
per-joint heatmaps) from one RGB image.

A backend returns a `Detection` in **image pixels** (see `docs/DESIGN.md`); the heatmaps stay in
their own grid and `heatmap_to_image` maps a heatmap cell to the image, so a consumer can turn them
into any image-space evidence (a Gaussian mixture, samples, ...) without knowing the backend's crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from diffpose3d.errors import DiffPoseError


@dataclass
class Detection:
    """One person found in one image.

    keypoints: (J, 2) float32, image pixels (x right, y down). Joints outside the image keep the
        model's extrapolated position (they may lie outside `[0, w) x [0, h)`).
    confidence: (J,) float32 in [0, 1]; low for joints that are occluded or out of frame.
    heatmaps: (J, H, W) float32 or None. Each map is a non-negative probability map over its grid
        (sums to 1), the joint's location evidence.
    heatmap_to_image: (2, 3) float64 affine or None: `[x, y] = A @ [col, row, 1]` maps a heatmap
        cell (column, row index) to image pixels.
    layout: the keypoint layout name ("blazepose33").
    image_size: (w, h) of the image in pixels.
    score: the backend's confidence that a person is there at all, in [0, 1].
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    heatmaps: np.ndarray | None
    heatmap_to_image: np.ndarray | None
    layout: str
    image_size: tuple[int, int]
    score: float = 1.0

    @property
    def num_joints(self) -> int:
        return int(self.keypoints.shape[0])


@runtime_checkable
class PoseDetector(Protocol):
    """A single-person 2D pose detector."""

    layout: str

    def detect(self, image: np.ndarray) -> Detection | None:
        """`image` is (H, W, 3) uint8 RGB; returns None when no person is found."""
        ...

    def close(self) -> None:
        ...


def check_image(image: np.ndarray) -> np.ndarray:
    """The image as a C-contiguous (H, W, 3) uint8 array, or a DiffPoseError."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise DiffPoseError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise DiffPoseError(f"expected a uint8 RGB image, got dtype {image.dtype}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise DiffPoseError(f"image too small: {image.shape[1]}x{image.shape[0]}")
    return np.ascontiguousarray(image)
