from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffpose3d.data import load_dataset, load_keypoints
from diffpose3d.errors import InputFileError


def _person(rng: np.random.Generator, score: float, frame: int) -> dict:
    kp = np.concatenate([rng.uniform(0, 600, (17, 2)), rng.uniform(0.5, 1, (17, 1))], -1)
    return {"image_id": frame, "keypoints": kp.reshape(-1).tolist(), "score": score, "category_id": 1}


def test_coco_json_best_person_and_gaps(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    records = [_person(rng, 0.9, 0), _person(rng, 0.95, 0), _person(rng, 0.4, 1), _person(rng, 0.8, 3)]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(records))
    seq = load_keypoints(path, image_size=(640, 480))
    assert seq.dataset == "custom" and seq.skeleton == "h36m17" and seq.image_size == (640, 480)
    np.testing.assert_array_equal(seq.frame_indices, [0, 1, 2, 3])
    best = np.asarray(records[1]["keypoints"]).reshape(17, 3)
    np.testing.assert_allclose(seq.keypoints_2d[0, 0], best[[11, 12], :2].mean(0), rtol=1e-5)  # pelvis
    np.testing.assert_allclose(seq.confidence[0, 0], best[[11, 12], 2].min(), rtol=1e-6)
    assert (seq.confidence[2] == 0).all() and np.isfinite(seq.keypoints_2d).all()  # frame 2 has no detection
    he = load_keypoints(path, image_size=(640, 480), layout="humaneva15")
    assert he.keypoints_2d.shape == (4, 15, 2)


def test_npz_layouts_and_nan(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    kp = rng.uniform(0, 500, (6, 33, 3)).astype(np.float32)
    kp[2, 23, 0] = np.nan  # l_hip missing in frame 2
    path = tmp_path / "blaze.npz"
    np.savez(path, keypoints=kp, image_size=np.array([1280, 720]), layout=np.array("blazepose33"))
    seq = load_dataset("custom", None, path)[0]
    assert seq.image_size == (1280, 720) and seq.keypoints_2d.shape == (6, 17, 2)
    assert seq.confidence[2, 0] == 0 and seq.confidence[2, 4] == 0  # pelvis and l_hip lose confidence
    assert seq.confidence[1, 0] > 0 and np.isfinite(seq.keypoints_2d).all()

    plain = tmp_path / "plain.npz"
    np.savez(plain, poses=rng.uniform(0, 500, (3, 17, 2)))
    seq = load_keypoints(plain, image_size=(500, 500), layout="h36m17")
    assert (seq.confidence == 1).all()


def test_bad_inputs(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps([{"image_id": 0, "keypoints": [1, 2, 3]}]))
    with pytest.raises(InputFileError, match="k.json: record 0: 'keypoints' must be 51 numbers"):
        load_keypoints(path, image_size=(10, 10))
    with pytest.raises(InputFileError, match="k.json: keypoint JSON carries no image size"):
        load_keypoints(path)
    path.write_text("{not json")
    with pytest.raises(InputFileError, match="k.json: not valid JSON"):
        load_keypoints(path, image_size=(10, 10))
    npz = tmp_path / "k.npz"
    np.savez(npz, keypoints=np.zeros((3, 17, 2)))
    with pytest.raises(InputFileError, match="k.npz: no 'image_size'"):
        load_keypoints(npz)
    np.savez(npz, keypoints=np.zeros((3, 12, 2)), image_size=np.array([10, 10]))
    with pytest.raises(InputFileError, match="k.npz: cannot tell the layout of 12 joints"):
        load_keypoints(npz)
    np.savez(npz, keypoints=np.zeros((3, 17, 2)), image_size=np.array([10, 10]), layout=np.array("humaneva15"))
    with pytest.raises(InputFileError, match="k.npz: layout 'humaneva15' has 15 joints, data has 17"):
        load_keypoints(npz)
