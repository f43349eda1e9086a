from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffpose3d.data.loading import load_dataset
from diffpose3d.data.mpi3dhp import load_3dhp
from diffpose3d.errors import InputFileError
from diffpose3d.skeleton import MPI3DHP_RAW_TO_17, get_skeleton

RAW_PELVIS = 14


def _anim(frames: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"data_3d": rng.normal(0, 300, (frames, 17, 3)).astype(np.float32) + [0, 0, 4000],
            "data_2d": rng.uniform(0, 2048, (frames, 17, 2)).astype(np.float32)}


def test_train_layout(tmp_path: Path, write_npz) -> None:
    rng = np.random.default_rng(0)
    data = {"S1 Seq1": [{0: _anim(6, rng), 8: _anim(6, rng)}], "S2 Seq2": [{0: _anim(4, rng)}]}
    path = write_npz(tmp_path / "data_train_3dhp.npz", data=data)
    seqs = load_3dhp(path)
    assert [s.key for s in seqs] == [("S1", "S1 Seq1", 0), ("S1", "S1 Seq1", 8), ("S2", "S2 Seq2", 0)]
    s = seqs[1]
    raw = data["S1 Seq1"][0][8]
    assert s.skeleton == "mpi3dhp17" and s.image_size == (2048, 2048) and s.split == "Train"
    assert s.action == "Seq1" and s.valid is None
    np.testing.assert_allclose(s.pose_3d[:, 0], raw["data_3d"][:, RAW_PELVIS] / 1000, rtol=1e-6)
    np.testing.assert_allclose(s.pose_3d, raw["data_3d"][:, MPI3DHP_RAW_TO_17] / 1000, rtol=1e-6)
    np.testing.assert_allclose(s.keypoints_2d, raw["data_2d"][:, MPI3DHP_RAW_TO_17])
    assert get_skeleton(s.skeleton).joint_names[10] == "head_top"
    assert [x.key for x in load_3dhp(path, sequences="S2", stride=2)] == [("S2", "S2 Seq2", 0)]
    assert len(load_3dhp(path, sequences="S2", stride=2)[0]) == 2


def test_test_layout(tmp_path: Path, write_npz) -> None:
    rng = np.random.default_rng(1)
    data = {f"TS{i}": {**_anim(5, rng), "valid": np.array([1, 1, 0, 1, 0], np.float32)} for i in (1, 5)}
    path = write_npz(tmp_path / "data_test_3dhp.npz", data=data)
    seqs = load_dataset("3dhp", path)
    assert [s.subject for s in seqs] == ["TS1", "TS5"]
    assert seqs[0].image_size == (2048, 2048) and seqs[1].image_size == (1920, 1080)
    np.testing.assert_array_equal(seqs[0].valid, [True, True, False, True, False])
    assert seqs[1].split == "Test" and seqs[1].pose_3d.shape == (5, 17, 3)


def test_malformed(tmp_path: Path, write_npz) -> None:
    rng = np.random.default_rng(2)
    anim = _anim(5, rng)
    anim["valid"] = np.ones(3)
    path = write_npz(tmp_path / "bad_valid.npz", data={"TS2": anim})
    with pytest.raises(InputFileError, match="bad_valid.npz: 'TS2': valid has 3 entries for 5 frames"):
        load_3dhp(path)
    sixteen = {"data_3d": np.zeros((5, 16, 3)), "data_2d": np.zeros((5, 16, 2))}
    path = write_npz(tmp_path / "bad_joints.npz", data={"TS2": sixteen})
    with pytest.raises(InputFileError, match="bad_joints.npz: 'TS2' data_3d: expected shape"):
        load_3dhp(path)
    path = write_npz(tmp_path / "bad_entry.npz", data={"S1 Seq1": 3})
    with pytest.raises(InputFileError, match="bad_entry.npz: entry 'S1 Seq1'"):
        load_3dhp(path)


def test_huge_numbers_and_odd_camera_keys(tmp_path: Path, write_npz) -> None:
    rng = np.random.default_rng(3)
    path = write_npz(tmp_path / "odd_cam.npz", data={"S1 Seq1": [{float("inf"): _anim(3, rng)}]})
    assert [s.camera_index for s in load_3dhp(path)] == [0]  # no digits in 'inf': camera 0
    anim = {"data_3d": [[[10**400] * 3] * 17], "data_2d": np.zeros((1, 17, 2))}
    path = write_npz(tmp_path / "huge.npz", data={"TS1": anim})
    with pytest.raises(InputFileError, match="huge.npz: 'TS1' data_3d: not a numeric array"):
        load_3dhp(path)
