"""One camera's view of a motion-capture sequence: its 3D in the camera frame and its 2D.

Shared by the dataset readers (`data.h36m`, `data.humaneva`): the 2D comes from the 2D file when
there is one (trimmed to the 3D's frames), else it is the 3D projected through the calibration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..cameras import Camera, world_to_camera
from ..errors import InputFileError
from .base import PoseSequence, projected_keypoints, read_camera_2d, trim_to_3d


def camera_frame_3d(world: np.ndarray | None, camera: Camera | None, source: str | Path,
                    no_camera: str) -> np.ndarray | None:
    """World 3D `(T, J, 3)` in `camera`'s frame (float32), None without 3D; a sequence with 3D but
    no calibration is refused in one line (`no_camera`, naming `source`)."""
    if world is None:
        return None
    if camera is None:
        raise InputFileError(source, no_camera)
    return world_to_camera(world, camera.orientation, camera.translation).astype(np.float32)


def camera_keypoints(
    views: list | None, c: int, what: str, data_2d: str | Path | None, metadata: Any,
    target: dict[str, str] | str, pose_3d: np.ndarray | None, camera: Camera | None, layout: str,
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Camera `c`'s 2D (pixels, confidence or None, layout): read from `views` in the layout `target`
    gives (`base.read_camera_2d`) and trimmed to the 3D's frames, or without views the projection of
    `pose_3d` through `camera` in `layout`."""
    if views is None:
        kp, conf = projected_keypoints(pose_3d, camera)
        return kp, conf, layout
    kp, conf, layout = read_camera_2d(views, c, what, data_2d, metadata, target)
    if pose_3d is not None:
        kp, conf = trim_to_3d(kp, conf, len(pose_3d), data_2d, what)
    return kp, conf, layout


def camera_sequence(dataset: str, subject: str, name: str, action: str, split: str, c: int, camera: Camera | None,
                    image_size: tuple[int, int], layout: str, keypoints: np.ndarray, confidence: np.ndarray | None,
                    pose_3d: np.ndarray | None) -> PoseSequence:
    """Camera `c`'s `PoseSequence` of one take, every frame kept (`frame_indices` 0..T-1)."""
    return PoseSequence(dataset=dataset, subject=subject, action=action, name=name, camera_index=c, skeleton=layout,
                        keypoints_2d=keypoints, image_size=image_size, confidence=confidence, pose_3d=pose_3d,
                        camera=camera, split=split, frame_indices=np.arange(len(keypoints)))
