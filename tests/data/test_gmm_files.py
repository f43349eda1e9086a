from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffpose3d.data.gmm_files import attach_gmm, read_gmm_file, write_gmm_file
from diffpose3d.data.h36m import load_h36m
from diffpose3d.errors import InputFileError


def _gmm_like_authors(kp: np.ndarray, k: int = 3) -> np.ndarray:
    """(T, J, 2) -> (T, J, K, 5) with weights (1, 0, ...), means at the keypoints, variance 4 px^2."""
    t, j = kp.shape[:2]
    out = np.zeros((t, j, k, 5), np.float32)
    out[..., 0, 0] = 1.0
    out[..., 1:3] = kp[:, :, None, :]
    out[..., 3:] = 4.0
    return out


def test_write_read_attach(tmp_path: Path, h36m_files: dict[str, Path]) -> None:
    gt = np.load(h36m_files["gt"], allow_pickle=True)["positions_2d"].item()
    data = {s: {a: [_gmm_like_authors(v) for v in views] for a, views in acts.items()} for s, acts in gt.items()}
    path = tmp_path / "data_2d_h36m_gt_gmm.npz"
    write_gmm_file(path, data, {"num_joints": 17, "kernels": 3})
    back, meta = read_gmm_file(path)
    assert meta == {"num_joints": 17, "kernels": 3}
    np.testing.assert_array_equal(back["S9"]["Walking"][2], data["S9"]["Walking"][2])

    seqs = attach_gmm(load_h36m(h36m_files["3d"], h36m_files["gt"], subjects="S1", stride=2), path)
    for s in seqs:
        assert s.gmm_2d.shape == (len(s), 17, 3, 5)
        np.testing.assert_allclose(s.gmm_2d[:, :, 0, 1:3], s.keypoints_2d)  # same frames after stride


def test_validation(tmp_path: Path, h36m_files: dict[str, Path], write_npz) -> None:
    bad = np.zeros((4, 17, 3, 5), np.float32)
    bad[..., 0] = 0.5  # weights sum to 1.5
    with pytest.raises(InputFileError, match="out.npz: 'S1/Walking' camera 0: kernel weights"):
        write_gmm_file(tmp_path / "out.npz", {"S1": {"Walking": [bad]}})
    assert not (tmp_path / "out.npz").exists()
    path = write_npz(tmp_path / "shape.npz", positions_2d={"S1": {"Walking": [np.zeros((4, 17, 2))]}})
    with pytest.raises(InputFileError, match=r"shape.npz: 'S1/Walking' camera 0: expected \(T, J, K, 5\)"):
        read_gmm_file(path)
    good = np.zeros((2, 17, 1, 5), np.float32)
    good[..., 0] = 1
    path = tmp_path / "partial.npz"
    write_gmm_file(path, {"S1": {"Walking 1": [good] * 4}})
    seqs = load_h36m(h36m_files["3d"], subjects="S1")
    with pytest.raises(InputFileError, match="partial.npz: S1 'Walking 1': 2 frames, sequence needs 12"):
        attach_gmm([s for s in seqs if s.name == "Walking 1"], path)
    with pytest.raises(InputFileError, match="partial.npz: no mixture for S1 'Directions' camera 0"):
        attach_gmm(seqs, path)


def test_numbers_too_large_for_float(tmp_path: Path, write_npz) -> None:
    path = write_npz(tmp_path / "huge.npz", positions_2d={"S1": {"Walking": [[10**400, 1]]}})
    with pytest.raises(InputFileError, match="huge.npz: 'S1/Walking' camera 0: not a numeric array"):
        read_gmm_file(path)


def test_training_splits_attach_the_configs_gmm_file(tmp_path: Path, h36m_files: dict[str, Path]) -> None:
    from diffpose3d.config import load_config
    from diffpose3d.data.splits import training_splits
    from diffpose3d.errors import ConfigError

    gt = np.load(h36m_files["gt"], allow_pickle=True)["positions_2d"].item()
    data = {s: {a: [_gmm_like_authors(v) for v in views] for a, views in acts.items()} for s, acts in gt.items()}
    path = tmp_path / "gmm.npz"
    write_gmm_file(path, data)
    common = ["data.dataset=h36m", f"data.data_3d={h36m_files['3d']}", f"data.data_2d={h36m_files['gt']}",
              "data.actions=[]", "data.train_split=", "data.holdout=false", "data.holdout_gap_frames=0", "data.stride=2",
              "model.skeleton=h36m17", "evidence.source=gmm_file"]
    splits = training_splits(load_config(None, common + [f"evidence.gmm_file={path}"]))
    assert splits["train"] and splits["test"]
    for part in ("train", "val", "test"):
        for s in splits[part]:  # the file's frames follow every split and stride
            np.testing.assert_allclose(s.gmm_2d[:, :, 0, 1:3], s.keypoints_2d)
    with pytest.raises(ConfigError, match="evidence.gmm_file is not set"):
        training_splits(load_config(None, common))


def test_encode_decode_round_trip_in_the_authors_layout() -> None:
    import torch

    from diffpose3d.data.gmm_files import decode_gmm, encode_gmm
    from diffpose3d.mixtures.gmm import GaussianMixture

    w = torch.tensor([[[0.7, 0.3, 0.0]]])
    mu = torch.tensor([[[[10.0, 20.0], [30.0, 40.0], [0.0, 0.0]]]])
    cov = torch.tensor([[[[[4.0, 1.0], [1.0, 9.0]], [[2.0, 0.0], [0.0, 3.0]], [[1.0, 0.0], [0.0, 1.0]]]]])
    rows, xy = encode_gmm(GaussianMixture(w, mu, cov))
    assert rows.shape == (1, 1, 3, 5) and rows.dtype == np.float32
    np.testing.assert_array_equal(rows[0, 0, 0], np.float32([0.7, 10.0, 20.0, 4.0, 9.0]))
    np.testing.assert_array_equal(xy[0, 0], [1.0, 0.0, 0.0])
    back = decode_gmm(rows)
    assert torch.equal(back.weights, w) and torch.equal(back.means, mu)
    assert torch.equal(back.covariances.diagonal(dim1=-2, dim2=-1), cov.diagonal(dim1=-2, dim2=-1))
