"""Small files in the exact public layouts, written by the tests (never copies of real data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffpose3d.cameras import load_h36m_cameras, project_to_2d, world_to_camera
from diffpose3d.skeleton import H36M32_TO_17, get_skeleton

H36M_ACTIONS = {"S1": {"Walking 1": 12, "Directions": 9}, "S9": {"Walking": 10, "Eating 2": 8},
                "S11": {"Discussion 1": 7}}  # no "S11 Directions", as in the real file
EXTRA_2D_FRAMES = 2
COCO_FROM_H36M17 = [9, 10, 10, 10, 10, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3]  # coarse, for tests only
MPII_FROM_H36M17 = [get_skeleton("h36m17").index(n) for n in get_skeleton("mpii16").joint_names]


def _save(path: Path, **objects: object) -> Path:
    np.savez(path, **{k: np.array(v, dtype=object) if isinstance(v, dict) else v for k, v in objects.items()})
    return path


def _h36m_world(frames: int, rng: np.random.Generator) -> np.ndarray:
    return (rng.normal(0, 0.3, size=(frames, 32, 3)) + [0.0, 0.0, 1.0]).astype(np.float32)


@pytest.fixture(scope="session")
def h36m_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``data_3d_h36m.npz`` plus 2D files gt, cpn (17), sh (16, MPII order), detectron_pt_coco (17, COCO)."""
    root = tmp_path_factory.mktemp("h36m")
    rng = np.random.default_rng(0)
    cams = load_h36m_cameras()
    pos3d: dict = {}
    gt: dict = {}
    for subject, actions in H36M_ACTIONS.items():
        pos3d[subject], gt[subject] = {}, {}
        for action, frames in actions.items():
            world = _h36m_world(frames + EXTRA_2D_FRAMES, rng)
            pos3d[subject][action] = world[:frames]
            joints = world[:, H36M32_TO_17]
            gt[subject][action] = [
                project_to_2d(world_to_camera(joints, c.orientation, c.translation), c).astype(np.float32)
                for c in cams[subject]
            ]

    def derive(fn) -> dict:
        return {s: {a: [fn(v) for v in views] for a, views in acts.items()} for s, acts in gt.items()}

    h36m_meta = {"layout_name": "h36m", "num_joints": 17,
                 "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    mpii_meta = {"num_joints": 16, "keypoints_symmetry": [[3, 4, 5, 13, 14, 15], [0, 1, 2, 10, 11, 12]]}
    coco_meta = {"layout_name": "coco", "num_joints": 17,
                 "keypoints_symmetry": [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]]}
    return {
        "3d": _save(root / "data_3d_h36m.npz", positions_3d=pos3d),
        "gt": _save(root / "data_2d_h36m_gt.npz", positions_2d=gt, metadata=h36m_meta),
        "cpn": _save(root / "data_2d_h36m_cpn_ft_h36m_dbb.npz",
                     positions_2d=derive(lambda v: v + 1.0), metadata=h36m_meta),
        "sh": _save(root / "data_2d_h36m_sh_pt_mpii.npz",
                    positions_2d=derive(lambda v: v[:, MPII_FROM_H36M17]), metadata=mpii_meta),
        "coco": _save(root / "data_2d_h36m_detectron_pt_coco.npz",
                      positions_2d=derive(lambda v: v[:, COCO_FROM_H36M17]), metadata=coco_meta),
    }


@pytest.fixture(scope="session")
def humaneva_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic HumanEva files: Train/S1, Validate/S2 in 3D and 2D, plus Unlabeled/S1 in 2D only."""
    from diffpose3d.cameras import load_humaneva_cameras

    root = tmp_path_factory.mktemp("humaneva")
    rng = np.random.default_rng(1)
    cams = load_humaneva_cameras()
    layout = {"Train/S1": {"Walking 1 chunk0": 15, "Box 1 chunk1": 6}, "Validate/S2": {"Jog 1 chunk2": 9}}
    pos3d: dict = {}
    pos2d: dict = {}
    for key, actions in layout.items():
        subject = key.split("/")[1]
        pos3d[key], pos2d[key] = {}, {}
        for action, frames in actions.items():
            world = (rng.normal(0, 0.3, size=(frames + 1, 15, 3)) + [0.0, 0.0, 1.0]).astype(np.float32)
            pos3d[key][action] = world[:frames]
            pos2d[key][action] = [
                project_to_2d(world_to_camera(world, c.orientation, c.translation), c).astype(np.float32)
                for c in cams[subject]
            ]
    pos2d["Unlabeled/S1"] = {"Walking 1 chunk0": [np.zeros((4, 15, 2), np.float32)] * 3}
    meta = {"layout_name": "humaneva15", "num_joints": 15,
            "keypoints_symmetry": [[2, 3, 4, 8, 9, 10], [5, 6, 7, 11, 12, 13]]}
    return {
        "3d": _save(root / "data_3d_humaneva15.npz", positions_3d=pos3d),
        "2d": _save(root / "data_2d_humaneva15_gt.npz", positions_2d=pos2d, metadata=meta),
    }


@pytest.fixture
def write_npz():
    """``write_npz(path, **objects)``: dict values become pickled 0-d object arrays, as in the community files."""
    return _save
