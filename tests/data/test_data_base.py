from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffpose3d.data.base import PoseSequence
from diffpose3d.errors import InputFileError
from diffpose3d.io.unpickle import load_pickled_npz


def _seq(t: int = 10) -> PoseSequence:
    rng = np.random.default_rng(0)
    return PoseSequence(dataset="h36m", subject="S1", action="Walking", name="Walking 1", camera_index=2,
                        skeleton="h36m17", keypoints_2d=rng.uniform(0, 1000, (t, 17, 2)).astype(np.float32),
                        image_size=(1000, 1002), confidence=np.ones((t, 17), np.float32),
                        pose_3d=rng.normal(size=(t, 17, 3)).astype(np.float32),
                        gmm_2d=np.zeros((t, 17, 3, 5), np.float32), valid=np.ones(t, bool))


def test_sequence_views() -> None:
    s = _seq()
    assert len(s) == 10 and s.key == ("S1", "Walking 1", 2)
    uv = s.keypoints_uv()
    np.testing.assert_allclose(uv, s.keypoints_2d / 1000 * 2 - [1, 1.002], rtol=1e-5)
    rel = s.pose_3d_root_relative()
    assert (rel[:, 0] == 0).all()
    np.testing.assert_allclose(rel[:, 5], s.pose_3d[:, 5] - s.pose_3d[:, 0])


def test_slice_keeps_original_frame_numbers() -> None:
    s = _seq().slice(2, 9, 3)
    np.testing.assert_array_equal(s.frame_indices, [2, 5, 8])
    assert s.pose_3d.shape == (3, 17, 3) and s.gmm_2d.shape[0] == 3 and s.valid.shape == (3,)
    np.testing.assert_array_equal(s.slice(1).frame_indices, [5, 8])


def test_shape_checks() -> None:
    with pytest.raises(ValueError, match="pose_3d"):
        PoseSequence("custom", "", "", "", 0, "h36m17", np.zeros((4, 17, 2)), (10, 10), pose_3d=np.zeros((4, 16, 3)))


def test_load_pickled_npz_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="nope.npz: file not found"):
        load_pickled_npz(tmp_path / "nope.npz", "positions_3d")
    with pytest.raises(InputFileError, match="not a file"):
        load_pickled_npz(tmp_path, "positions_3d")
    p = tmp_path / "x.npz"
    np.savez(p, positions_2d=np.array({"S1": {}}, dtype=object))
    assert load_pickled_npz(p, "positions_2d") == {"S1": {}}
    assert load_pickled_npz(p, "metadata", optional=True) is None
    with pytest.raises(InputFileError, match=r"x.npz: missing array 'positions_3d' \(found: positions_2d\)"):
        load_pickled_npz(p, "positions_3d")
