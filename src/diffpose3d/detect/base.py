"""The 2D detector backend protocol: every person's keypoints (and, when the backend has them,
per-joint heatmaps and the backend's own 3D landmarks) from one RGB image.

A backend returns `Detection`s in **image pixels** (see `docs/DESIGN.md`); the heatmaps stay in
their own grid and `heatmap_to_image` maps a heatmap cell to the image, so a consumer can turn them
into any image-space evidence (a Gaussian mixture, samples, ...) without knowing the backend's crop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from diffpose3d.errors import DiffPoseError

# Sides the pipeline can handle: MediaPipe's crops go through OpenCV, whose warps abort the
# process (not an exception) from 32767 px a side on (`io.limits`, checked from every header).
from diffpose3d.io.limits import MAX_IMAGE_SIDE


@dataclass
class Detection:
    """One person found in one image.

    keypoints: (J, 2) float32, image pixels (x right, y down). Joints outside the image keep the
        model's extrapolated position (they may lie outside `[0, w) x [0, h)`).
    confidence: (J,) float32 in [0, 1]; low for joints that are occluded or out of frame, 0 for a
        joint another person in the image holds at the same place (see `detect.people`).
    heatmaps: (J, H, W) float32 or None. Each map is a non-negative probability map over its grid
        (sums to 1), the joint's location evidence.
    heatmap_to_image: (2, 3) float64 affine or None: `[x, y] = A @ [col, row, 1]` maps a heatmap
        cell (column, row index) to image pixels.
    layout: the keypoint layout name ("blazepose33").
    image_size: (w, h) of the image in pixels.
    score: the backend's confidence that a person is there at all, in [0, 1].
    world_landmarks: (J, 3) float32 or None: the backend's own 3D guess (MediaPipe's
        `pose_world_landmarks`): metres, origin mid-hip, x right, y down, z away from the camera.
    roi: (5,) float64 or None: the crop the landmark model saw, `(x_centre, y_centre, width,
        height, rotation)` in normalised image units and radians.
    notes: what the one-body checks (`detect.plausibility`) changed, one line each.
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    heatmaps: np.ndarray | None
    heatmap_to_image: np.ndarray | None
    layout: str
    image_size: tuple[int, int]
    score: float = 1.0
    world_landmarks: np.ndarray | None = None
    roi: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def num_joints(self) -> int:
        return int(self.keypoints.shape[0])


@runtime_checkable
class PoseDetector(Protocol):
    """A 2D pose detector: `detect` finds the most confident person, `detect_people` everyone."""

    layout: str

    def detect(self, image: np.ndarray) -> Detection | None:
        """`image` is (H, W, 3) uint8 RGB; returns None when no person is found."""
        ...

    def close(self) -> None:
        ...


def detect_people(detector, image: np.ndarray, max_people: int) -> list[Detection]:
    """Every person `detector` finds in `image` (at most `max_people`, most confident first); a
    backend without `detect_people` gives its one `detect` result."""
    if hasattr(detector, "detect_people"):
        return list(detector.detect_people(image, max_people=max_people))
    found = detector.detect(image)
    return [] if found is None else [found]


def check_image(image: np.ndarray) -> np.ndarray:
    """The image as a C-contiguous (H, W, 3) uint8 array, or a DiffPoseError."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise DiffPoseError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise DiffPoseError(f"expected a uint8 RGB image, got dtype {image.dtype}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise DiffPoseError(f"image too small: {image.shape[1]}x{image.shape[0]}")
    if max(image.shape[:2]) > MAX_IMAGE_SIDE:
        raise DiffPoseError(f"image too large for the detector: {image.shape[1]}x{image.shape[0]} "
                            f"(at most {MAX_IMAGE_SIDE} pixels a side)")
    return np.ascontiguousarray(image)
