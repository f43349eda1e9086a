from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffpose3d.cameras import (
    Camera,
    camera_to_world,
    image_coordinates,
    load_h36m_cameras,
    load_humaneva_cameras,
    normalize_screen_coordinates,
    project_to_2d,
    project_to_2d_linear,
    qrot,
    world_to_camera,
)
from diffpose3d.errors import InputFileError


def _random_quaternions(n: int, rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def test_qrot_preserves_length_and_matches_axis_rotation() -> None:
    rng = np.random.default_rng(0)
    q, v = _random_quaternions(50, rng), rng.normal(size=(50, 3))
    np.testing.assert_allclose(np.linalg.norm(qrot(q, v), axis=-1), np.linalg.norm(v, axis=-1))
    quarter_turn_z = np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])
    np.testing.assert_allclose(qrot(quarter_turn_z, np.array([1.0, 0, 0])), [0, 1, 0], atol=1e-12)


def test_world_camera_round_trip_broadcasts() -> None:
    rng = np.random.default_rng(1)
    cam = load_h36m_cameras()["S9"][2]
    X = rng.normal(size=(7, 17, 3))
    Xc = world_to_camera(X, cam.orientation, cam.translation)
    assert Xc.shape == X.shape
    np.testing.assert_allclose(camera_to_world(Xc, cam.orientation, cam.translation), X, atol=1e-12)
    # the camera centre maps to the origin of the camera frame
    np.testing.assert_allclose(world_to_camera(cam.translation, cam.orientation, cam.translation), 0, atol=1e-12)


def test_shipped_h36m_calibration() -> None:
    cams = load_h36m_cameras()
    assert list(cams) == ["S1", "S5", "S6", "S7", "S8", "S9", "S11"]
    for subject_cams in cams.values():
        assert [c.id for c in subject_cams] == ["54138969", "55011271", "58860488", "60457274"]
        assert [c.image_size for c in subject_cams] == [(1000, 1002), (1000, 1000), (1000, 1000), (1000, 1002)]
        for c in subject_cams:
            # metres: the cameras stand a few metres from the capture volume centre
            assert 3.0 < np.linalg.norm(c.translation) < 7.0
    s1 = cams["S1"][0]
    np.testing.assert_allclose(s1.translation, [1.8411070556640625, 4.95528466796875, 1.5634454345703125], atol=1e-9)
    np.testing.assert_allclose(s1.focal, [1145.0494384765625, 1143.7811279296875])
    np.testing.assert_allclose(s1.radial_distortion[0], -0.20709891617298126)


def test_distortion_free_projection_equals_linear() -> None:
    rng = np.random.default_rng(2)
    cam = Camera("c", 640, 480, focal=np.array([700.0, 710.0]), center=np.array([320.0, 240.0]))
    X = rng.uniform(-0.5, 0.5, size=(20, 3)) + [0, 0, 4.0]
    np.testing.assert_allclose(project_to_2d(X, cam), project_to_2d_linear(X, cam))


def test_distortion_moves_points_away_from_the_centre() -> None:
    cam = load_h36m_cameras()["S1"][0]
    X = np.array([[0.0, 0.0, 5.0], [1.0, 1.0, 5.0]])
    d, lin = project_to_2d(X, cam), project_to_2d_linear(X, cam)
    np.testing.assert_allclose(d[0], cam.center)  # the optical axis is not distorted
    assert np.linalg.norm(d[1] - lin[1]) > 1.0  # radial distortion acts off-axis


def test_normalisation_round_trip() -> None:
    xy = np.random.default_rng(3).uniform(0, 1000, size=(5, 17, 2)).astype(np.float32)
    uv = normalize_screen_coordinates(xy, 1000, 1002)
    assert uv.dtype == np.float32
    np.testing.assert_allclose(normalize_screen_coordinates(np.array([0.0, 0.0]), 1000, 1002), [-1, -1.002])
    np.testing.assert_allclose(normalize_screen_coordinates(np.array([1000.0, 1002.0]), 1000, 1002), [1, 1.002])
    np.testing.assert_allclose(image_coordinates(uv, 1000, 1002), xy, rtol=1e-5)


def test_humaneva_projection_matches_real_2d(humaneva_dir: Path) -> None:
    cams = load_humaneva_cameras()
    pos3d = np.load(humaneva_dir / "data_3d_humaneva15_train.npz", allow_pickle=True)["positions_3d"].item()
    pos2d = np.load(humaneva_dir / "data_2d_humaneva15_gt_train.npz", allow_pickle=True)["positions_2d"].item()
    errors = []
    for key in ("Train/S1", "Train/S2", "Train/S3"):
        subject = key.split("/")[1]
        for action in pos3d[key]:
            for c, cam in enumerate(cams[subject]):
                Xc = world_to_camera(pos3d[key][action], cam.orientation, cam.translation)
                assert (Xc[..., 2] > 0).all()
                errors.append(np.abs(project_to_2d(Xc, cam) - pos2d[key][action][c]).reshape(-1))
    err = np.concatenate(errors)
    assert np.median(err) < 1.5 and err.mean() < 2.5


def test_user_camera_file(tmp_path: Path) -> None:
    good = tmp_path / "cams.json"
    good.write_text(json.dumps({"image_size": [640, 480], "subjects": {"S1": [
        {"id": "C1", "orientation": [1, 0, 0, 0], "translation": [0, 0, -3], "focal": [500, 500], "center": [320, 240]}
    ]}}))
    cam = load_humaneva_cameras(good)["S1"][0]
    assert cam.image_size == (640, 480)
    np.testing.assert_allclose(project_to_2d(np.array([0.0, 0.0, 0.0]) - cam.translation, cam), [320, 240])

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"subjects": {"S1": [{"id": "C1", "orientation": [1, 0, 0],
                                                    "translation": [0, 0, 0], "focal": [1, 1], "center": [0, 0]}]}}))
    with pytest.raises(InputFileError, match="bad.json"):
        load_humaneva_cameras(bad)
    with pytest.raises(InputFileError, match="not found"):
        load_humaneva_cameras(tmp_path / "missing.json")
