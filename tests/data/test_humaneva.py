from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffpose3d.cameras import load_humaneva_cameras, project_to_2d
from diffpose3d.data.humaneva import canonical_humaneva_action, load_humaneva
from diffpose3d.errors import InputFileError


@pytest.mark.parametrize(("name", "action"), [("Walking 1 chunk0", "Walk"), ("Jog 1 chunk2", "Jog"),
                                              ("Box 1 chunk4", "Box"), ("Gestures 1 chunk1", "Gestures"),
                                              ("ThrowCatch 1 chunk3", "ThrowCatch")])
def test_action_names(name: str, action: str) -> None:
    assert canonical_humaneva_action(name) == action


def test_synthetic_files(humaneva_files: dict[str, Path]) -> None:
    seqs = load_humaneva(humaneva_files["3d"], humaneva_files["2d"])
    assert len(seqs) == 3 * 3  # Unlabeled skipped
    by_key = {(s.split, *s.key): s for s in seqs}
    walk = by_key[("Train", "S1", "Walking 1 chunk0", 1)]
    assert walk.action == "Walk" and walk.skeleton == "humaneva15" and walk.image_size == (640, 480)
    assert len(walk) == 15  # 2D had one frame more
    np.testing.assert_allclose(walk.keypoints_2d, project_to_2d(walk.pose_3d, walk.camera), atol=1e-2)
    assert by_key[("Validate", "S2", "Jog 1 chunk2", 0)].camera.id == "C1"

    only_val = load_humaneva(humaneva_files["3d"], humaneva_files["2d"], split="Validate", cameras=["C3"])
    assert [s.key for s in only_val] == [("S2", "Jog 1 chunk2", 2)]
    boxes = load_humaneva(humaneva_files["3d"], actions=["Box"], subjects="Train/S1")
    assert [s.name for s in boxes] == ["Box 1 chunk1"] * 3 and boxes[0].keypoints_2d.shape == (6, 15, 2)


def test_2d_only_with_unlabeled(humaneva_files: dict[str, Path]) -> None:
    seqs = load_humaneva(None, humaneva_files["2d"], split=["Unlabeled"])
    assert [s.key for s in seqs] == [("S1", "Walking 1 chunk0", c) for c in range(3)]
    assert all(s.pose_3d is None and s.split == "Unlabeled" for s in seqs)


def test_user_cameras_file_without_subject(tmp_path: Path, humaneva_files: dict[str, Path]) -> None:
    cams = tmp_path / "cams.json"
    cams.write_text(json.dumps({"image_size": [640, 480], "subjects": {"S1": [
        {"id": "C1", "orientation": [1, 0, 0, 0], "translation": [0, 0, -5],
         "focal": [500, 500], "center": [320, 240]}]}}))
    with pytest.raises(InputFileError, match="cams.json: no calibration for subject S2"):
        load_humaneva(humaneva_files["3d"], cameras_file=cams, split="Validate")


def test_real_train_split(humaneva_dir: Path) -> None:
    seqs = load_humaneva(humaneva_dir / "data_3d_humaneva15_train.npz",
                         humaneva_dir / "data_2d_humaneva15_gt_train.npz")
    assert {s.camera_index for s in seqs} == {0, 1, 2}
    for c in range(3):
        assert sum(len(s) for s in seqs if s.camera_index == c) == 4729
    assert {s.action for s in seqs} == {"Walk", "Jog", "Box", "Gestures", "ThrowCatch"}
    assert {s.subject for s in seqs} == {"S1", "S2", "S3"} and {s.split for s in seqs} == {"Train"}
    cams = load_humaneva_cameras()
    for s in seqs:
        assert s.pose_3d.dtype == np.float32 and (s.pose_3d[..., 2] > 1.0).all()  # in front of the camera
        assert s.camera.id == cams[s.subject][s.camera_index].id
    walk = next(s for s in seqs if s.key == ("S1", "Walking 1 chunk0", 0))
    err = np.abs(project_to_2d(walk.pose_3d, walk.camera) - walk.keypoints_2d)
    assert np.median(err) < 1.5


def test_malformed_names_and_unmappable_2d(tmp_path: Path, write_npz) -> None:
    kp = np.zeros((4, 15, 2), np.float32)
    path = write_npz(tmp_path / "names.npz", positions_2d={"Train/S1": {"Walking 1 chunk0": [kp], 3: [kp]}})
    with pytest.raises(InputFileError, match="names.npz: entry 'Train/S1': names must be strings, got 3"):
        load_humaneva(None, path)
    path = write_npz(tmp_path / "keys.npz", positions_2d={"Train/S1": {}, 7: {}})
    with pytest.raises(InputFileError, match="keys.npz: positions_2d: names must be strings, got 7"):
        load_humaneva(None, path)
    path = write_npz(tmp_path / "mpii.npz", positions_2d={"Train/S1": {"Walking 1 chunk0": [np.zeros((4, 16, 2))]}})
    with pytest.raises(InputFileError, match="mpii.npz: 'Train/S1/Walking 1 chunk0' camera 0: mpii16 keypoints cannot"):
        load_humaneva(None, path)


def test_nan_3d_without_a_2d_file_projects_to_missing_joints(tmp_path: Path) -> None:
    world = np.random.default_rng(0).normal(0, 0.3, size=(5, 15, 3)).astype(np.float32) + [0.0, 0.0, 1.0]
    world[2, 4] = np.nan
    world[3, 7] = np.inf
    path = tmp_path / "data_3d_humaneva15.npz"
    np.savez(path, positions_3d=np.array({"Train/S1": {"Walking 1 chunk0": world.astype(np.float32)}}, dtype=object))
    with np.errstate(invalid="ignore"):  # the world-to-camera rotation of inf
        seq = load_humaneva(path, cameras=["C1"])[0]
    assert np.isfinite(seq.keypoints_2d).all()
    missing = np.argwhere(seq.confidence == 0).tolist()
    assert missing == [[2, 4], [3, 7]]
