"""Human3.6M in the VideoPose3D npz layout (``data_3d_h36m.npz`` + ``data_2d_h36m_<source>.npz``).

3D: 32 mocap joints in world metres -> the 17-joint subset (``H36M32_TO_17``) -> each camera's frame
with the shipped calibration. Without a 2D file the 2D is the distorted projection of the 3D (what
the ``gt`` file holds).

2D sources and the resulting skeleton:

=======================================  ==========  =========================================
source                                   2D joints   sequence skeleton
=======================================  ==========  =========================================
gt, cpn_ft_h36m_dbb, detectron_ft_h36m   17 (H36M)   ``h36m17``
detectron_pt_coco                        17 (COCO)   ``h36m17`` (``map_keypoints`` coco17->h36m17)
sh_pt_mpii, sh_ft_h36m                   16 (MPII)   ``h36m16``
=======================================  ==========  =========================================

Stacked-Hourglass inputs have no neck/nose joint. Both the 2D (permuted from the MPII order) and the
3D (neck/nose dropped) are put in the ``h36m16`` layout, so joint 0 stays the pelvis as every model
expects and the 2D and 3D joints correspond one to one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..cameras import Camera, load_h36m_cameras
from ..errors import InputFileError
from ..skeleton import H36M32_TO_17, get_skeleton
from .base import PoseSequence, apply_stride, as_filter, as_float_array, camera_views, load_pose_files, sorted_names, wanted
from .camera_data import camera_frame_3d, camera_keypoints, camera_sequence

CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
IMAGE_SIZES = ((1000, 1002), (1000, 1000), (1000, 1000), (1000, 1002))
_TARGET = {"h36m17": "h36m17", "coco17": "h36m17", "mpii16": "h36m16"}
_H36M17_TO_16 = [get_skeleton("h36m17").index(n) for n in get_skeleton("h36m16").joint_names]


def canonical_h36m_action(name: str) -> str:
    """``'Discussion 2'`` -> ``'Discussion'`` (the part before the first space)."""
    return name.split(" ", 1)[0]


def _read_3d(value: object, path: str | Path, what: str) -> np.ndarray:
    arr = as_float_array(value, path, what, (-1, 3))
    if arr.shape[1] == 32:
        return arr[:, H36M32_TO_17]
    if arr.shape[1] == 17:
        return arr
    raise InputFileError(path, f"{what}: expected 32 (or 17) joints, got {arr.shape[1]}")


def load_h36m(
    data_3d: str | Path | None,
    data_2d: str | Path | None = None,
    *,
    subjects: str | Iterable[str] | None = None,
    actions: str | Iterable[str] | None = None,
    cameras: int | Iterable[int | str] | None = None,
    stride: int = 1,
) -> list[PoseSequence]:
    """Read Human3.6M sequences, one per (subject, action, camera).

    Filters: ``subjects`` ("S9"), ``actions`` (canonical "Directions" or full "Directions 1"),
    ``cameras`` (index 0-3 or id "54138969"). Actions absent from the 3D file (``S11 Directions``)
    are simply not produced.
    """
    pos3d, pos2d, meta = load_pose_files(data_3d, data_2d, "load_h36m")
    cams = load_h36m_cameras()
    subject_f, action_f, camera_f = as_filter(subjects), as_filter(actions), as_filter(cameras)

    base = pos3d if pos3d is not None else pos2d
    base_path = data_3d if pos3d is not None else data_2d
    out: list[PoseSequence] = []
    for subject in sorted(base, key=lambda s: (len(str(s)), str(s))):
        if not wanted(subject_f, subject):
            continue
        subject_cams = cams.get(str(subject))
        if pos3d is not None and subject_cams is None:
            raise InputFileError(data_3d, f"no calibration for subject '{subject}' (known: {', '.join(cams)})")
        what = f"subject '{subject}'"
        for name in sorted_names(base[subject], base_path, what):
            if not wanted(action_f, canonical_h36m_action(name), name):
                continue
            world = _read_3d(pos3d[subject][name], data_3d, f"'{subject}/{name}'") if pos3d is not None else None
            views = camera_views(pos2d, subject, name, data_2d)
            n_cams = len(views) if views is not None else len(subject_cams)
            for c in range(n_cams):
                if not wanted(camera_f, c, CAMERA_IDS[c] if c < len(CAMERA_IDS) else c):
                    continue
                camera = subject_cams[c] if subject_cams is not None and c < len(subject_cams) else None
                out.append(_sequence(str(subject), name, c, camera, world, views, data_2d, meta))
    return apply_stride(out, stride)


def _sequence(subject: str, name: str, c: int, camera: Camera | None, world: np.ndarray | None,
              views: list | None, data_2d: str | Path | None, meta: object) -> PoseSequence:
    pose_3d = camera_frame_3d(world, camera, data_2d or "", f"'{subject}/{name}': camera {c} has no Human3.6M calibration")
    what = f"'{subject}/{name}' camera {c}"
    kp, conf, layout = camera_keypoints(views, c, what, data_2d, meta, _TARGET, pose_3d, camera, "h36m17")
    if pose_3d is not None and layout == "h36m16":
        pose_3d = pose_3d[:, _H36M17_TO_16]
    size = camera.image_size if camera is not None else IMAGE_SIZES[min(c, len(IMAGE_SIZES) - 1)]
    return camera_sequence("h36m", subject, name, canonical_h36m_action(name), "", c, camera, size, layout, kp, conf, pose_3d)
