"""HumanEva-I in the VideoPose3D npz layout (see docs: keys ``Train/S1``, chunked action names).

3D (world, metres) is moved to each camera's frame with the calibration (the shipped one by default).
Without a 2D file the 2D is the projection of the 3D through that calibration. 2D files with 17
(COCO) or 33 (BlazePose) joints are mapped to ``humaneva15``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..cameras import Camera, load_humaneva_cameras
from ..errors import InputFileError
from .base import PoseSequence, apply_stride, as_filter, as_float_array, camera_views, load_pose_files, sorted_names, wanted
from .camera_data import camera_frame_3d, camera_keypoints, camera_sequence

LAYOUT = "humaneva15"
IMAGE_SIZE = (640, 480)
DEFAULT_SPLITS = ("Train", "Validate")
_ACTION_ALIASES = {"walking": "Walk", "walk": "Walk", "jog": "Jog", "box": "Box",
                   "gestures": "Gestures", "throwcatch": "ThrowCatch"}


def canonical_humaneva_action(name: str) -> str:
    """``'Walking 1 chunk0'`` -> ``'Walk'``, ``'Jog 1 chunk2'`` -> ``'Jog'``, ``'Box 1 chunk4'`` -> ``'Box'``."""
    first = name.split(" ", 1)[0]
    return _ACTION_ALIASES.get(first.lower(), first)


def _camera_for(cams: dict[str, list[Camera]], subject: str, index: int) -> Camera | None:
    group = cams.get(subject)
    return group[index] if group is not None and index < len(group) else None


def load_humaneva(
    data_3d: str | Path | None,
    data_2d: str | Path | None = None,
    *,
    split: str | Iterable[str] | None = None,
    subjects: str | Iterable[str] | None = None,
    actions: str | Iterable[str] | None = None,
    cameras: int | Iterable[int | str] | None = None,
    stride: int = 1,
    cameras_file: str | Path | None = None,
) -> list[PoseSequence]:
    """Read HumanEva-I sequences, one per (split/subject, action chunk, camera).

    Filters: ``split`` (default Train and Validate, so detector files' ``Unlabeled/...`` keys are
    skipped unless asked for), ``subjects`` ("S1" or "Train/S1"), ``actions`` (canonical "Walk" or
    the full chunk name), ``cameras`` (index 0-2 or id "C1").
    """
    pos3d, pos2d, meta = load_pose_files(data_3d, data_2d, "load_humaneva")
    cams = load_humaneva_cameras(cameras_file)
    cam_source = cameras_file or "diffpose3d/assets/cameras/humaneva.json"
    splits = as_filter(split) or set(DEFAULT_SPLITS)
    subject_f, action_f, camera_f = as_filter(subjects), as_filter(actions), as_filter(cameras)

    base = pos3d if pos3d is not None else pos2d
    base_path = data_3d if pos3d is not None else data_2d
    out: list[PoseSequence] = []
    for key in sorted_names(base, base_path, "positions_3d" if pos3d is not None else "positions_2d"):
        split_name, _, subject = str(key).rpartition("/")
        if split_name not in splits or not wanted(subject_f, subject, key):
            continue
        if pos3d is not None and subject not in cams:
            raise InputFileError(cam_source, f"no calibration for subject {subject} (needed by '{key}')")
        for name in sorted_names(base[key], base_path, f"entry '{key}'"):
            action = canonical_humaneva_action(name)
            if not wanted(action_f, action, name):
                continue
            world = None
            if pos3d is not None:
                world = as_float_array(pos3d[key][name], data_3d, f"'{key}/{name}'", (15, 3))
            views = camera_views(pos2d, key, name, data_2d)
            n_cams = len(views) if views is not None else len(cams.get(subject, []))
            for c in range(n_cams):
                camera = _camera_for(cams, subject, c)
                if not wanted(camera_f, c, camera.id if camera else c):
                    continue
                out.append(_sequence(key, subject, split_name, name, action, c, camera, world, views,
                                     data_2d, meta, cam_source))
    return apply_stride(out, stride)


def _sequence(key: str, subject: str, split_name: str, name: str, action: str, c: int,
              camera: Camera | None, world: np.ndarray | None, views: list | None,
              data_2d: str | Path | None, meta: object, cam_source: str | Path) -> PoseSequence:
    pose_3d = camera_frame_3d(world, camera, cam_source, f"no calibration for subject {subject} camera {c}")
    kp, conf, _ = camera_keypoints(views, c, f"'{key}/{name}' camera {c}", data_2d, meta, LAYOUT, pose_3d, camera, LAYOUT)
    size = camera.image_size if camera is not None else IMAGE_SIZE
    return camera_sequence("humaneva", subject, name, action, split_name, c, camera, size, LAYOUT, kp, conf, pose_3d)
