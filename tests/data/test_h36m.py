from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffpose3d.cameras import load_h36m_cameras, project_to_2d, world_to_camera
from diffpose3d.data.h36m import load_h36m
from diffpose3d.data.loading import load_dataset
from diffpose3d.errors import InputFileError
from diffpose3d.skeleton import H36M32_TO_17, map_keypoints

N_ACTIONS = 5  # in the fixture: S1 x2, S9 x2, S11 x1


def test_gt_sequences_match_the_3d(h36m_files: dict[str, Path]) -> None:
    seqs = load_h36m(h36m_files["3d"], h36m_files["gt"])
    assert len(seqs) == N_ACTIONS * 4
    raw = np.load(h36m_files["3d"], allow_pickle=True)["positions_3d"].item()
    cams = load_h36m_cameras()
    for s in seqs:
        assert s.skeleton == "h36m17" and s.dataset == "h36m"
        world = raw[s.subject][s.name]
        assert len(s) == len(world)  # 2D trimmed to the 3D length
        cam = cams[s.subject][s.camera_index]
        assert s.camera is not None and s.camera.id == cam.id and s.image_size == cam.image_size
        expected = world_to_camera(world[:, H36M32_TO_17], cam.orientation, cam.translation)
        np.testing.assert_allclose(s.pose_3d, expected, atol=1e-5)
        np.testing.assert_allclose(s.keypoints_2d, project_to_2d(s.pose_3d, cam), atol=1e-2)
    by_key = {s.key: s for s in seqs}
    assert by_key[("S9", "Eating 2", 3)].action == "Eating"
    assert not any(s.subject == "S11" and s.action == "Directions" for s in seqs)


def test_3d_only_projects_like_gt(h36m_files: dict[str, Path]) -> None:
    a = load_h36m(h36m_files["3d"], subjects="S1", cameras=[1])
    b = load_h36m(h36m_files["3d"], h36m_files["gt"], subjects="S1", cameras=[1])
    assert [s.key for s in a] == [s.key for s in b]
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.keypoints_2d, y.keypoints_2d, atol=1e-2)


def test_filters_and_stride(h36m_files: dict[str, Path]) -> None:
    seqs = load_h36m(h36m_files["3d"], h36m_files["cpn"], subjects=["S1", "S9"], actions="Walking",
                     cameras=[0, "58860488"], stride=3)
    assert sorted(s.key for s in seqs) == [("S1", "Walking 1", 0), ("S1", "Walking 1", 2),
                                           ("S9", "Walking", 0), ("S9", "Walking", 2)]
    s = next(x for x in seqs if x.subject == "S1")
    np.testing.assert_array_equal(s.frame_indices, [0, 3, 6, 9])
    assert s.pose_3d.shape == (4, 17, 3) and s.keypoints_2d.shape == (4, 17, 2)


def test_stacked_hourglass_gives_h36m16(h36m_files: dict[str, Path]) -> None:
    sh = load_h36m(h36m_files["3d"], h36m_files["sh"], subjects="S9")
    gt = {s.key: s for s in load_h36m(h36m_files["3d"], h36m_files["gt"], subjects="S9")}
    keep = [j for j in range(17) if j != 9]  # drop neck/nose
    for s in sh:
        assert s.skeleton == "h36m16" and s.keypoints_2d.shape[1] == 16 and s.pose_3d.shape[1] == 16
        ref = gt[s.key]
        np.testing.assert_allclose(s.keypoints_2d, ref.keypoints_2d[:, keep])
        np.testing.assert_allclose(s.pose_3d, ref.pose_3d[:, keep])


def test_coco_detections_are_mapped(h36m_files: dict[str, Path]) -> None:
    coco = load_h36m(h36m_files["3d"], h36m_files["coco"], subjects="S11")
    gt = {s.key: s for s in load_h36m(h36m_files["3d"], h36m_files["gt"], subjects="S11")}
    raw = np.load(h36m_files["coco"], allow_pickle=True)["positions_2d"].item()
    for s in coco:
        ref = gt[s.key].keypoints_2d
        assert s.skeleton == "h36m17"
        detected = np.asarray(raw[s.subject][s.name][s.camera_index])[: len(s)]
        # the detector-to-mocap correction of skeleton.map_keypoints (tested there)
        np.testing.assert_allclose(s.keypoints_2d, map_keypoints(detected, "coco17", "h36m17"), rtol=1e-5)
        np.testing.assert_allclose(s.keypoints_2d[:, 16], ref[:, 16])  # r_wrist copied


def test_2d_only_and_load_dataset(h36m_files: dict[str, Path]) -> None:
    seqs = load_dataset("h36m", None, h36m_files["gt"], subjects="S1")
    assert len(seqs) == 2 * 4 and all(s.pose_3d is None for s in seqs)
    assert len(seqs[0]) == 9 + 2  # untrimmed without 3D


def test_malformed_files(tmp_path: Path, h36m_files: dict[str, Path], write_npz) -> None:
    with pytest.raises(InputFileError, match="missing.npz: file not found"):
        load_h36m(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(InputFileError, match="junk.npz"):
        load_h36m(junk)
    wrong_key = write_npz(tmp_path / "wrong_key.npz", poses={"S1": {}})
    with pytest.raises(InputFileError, match="missing array 'positions_3d'"):
        load_h36m(wrong_key)
    bad_joints = write_npz(tmp_path / "bad_joints.npz", positions_3d={"S1": {"Walking": np.zeros((5, 20, 3))}})
    with pytest.raises(InputFileError, match="bad_joints.npz: 'S1/Walking'"):
        load_h36m(bad_joints)
    short_2d = write_npz(tmp_path / "short.npz", positions_2d={"S1": {"Walking 1": [np.zeros((3, 17, 2))] * 4,
                                                                       "Directions": [np.zeros((30, 17, 2))] * 4}})
    with pytest.raises(InputFileError, match="short.npz: 'S1/Walking 1' camera 0: 3 2D frames for 12 3D frames"):
        load_h36m(h36m_files["3d"], short_2d, subjects="S1")
    with pytest.raises(InputFileError, match="short.npz: no per-camera 2D list for 'S9/"):
        load_h36m(h36m_files["3d"], short_2d, subjects="S9")


def test_action_names_must_be_strings(tmp_path: Path, write_npz) -> None:
    views = [np.zeros((3, 17, 2))] * 4
    path = write_npz(tmp_path / "mixed.npz", positions_2d={"S1": {"Walking 1": views, 0: views}})
    with pytest.raises(InputFileError, match="mixed.npz: subject 'S1': names must be strings, got 0"):
        load_h36m(None, path)
