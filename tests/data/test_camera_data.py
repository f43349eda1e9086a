"""data.camera_data: one camera's 3D and 2D of a sequence, shared by the dataset readers."""

import numpy as np
import pytest

from diffpose3d.cameras import load_humaneva_cameras, world_to_camera
from diffpose3d.data.base import projected_keypoints
from diffpose3d.data.camera_data import camera_frame_3d, camera_keypoints
from diffpose3d.errors import InputFileError


def _camera():
    cams = load_humaneva_cameras()
    return next(iter(cams.values()))[0]


def test_camera_frame_3d_moves_world_to_the_camera_and_refuses_a_missing_calibration() -> None:
    cam = _camera()
    world = np.random.default_rng(0).normal(size=(4, 15, 3))
    got = camera_frame_3d(world, cam, "x.npz", "no calibration")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, world_to_camera(world, cam.orientation, cam.translation).astype(np.float32))
    assert camera_frame_3d(None, None, "x.npz", "no calibration") is None
    with pytest.raises(InputFileError, match="no calibration"):
        camera_frame_3d(world, None, "x.npz", "no calibration")


def test_camera_keypoints_without_views_projects_the_3d() -> None:
    cam = _camera()
    pose = camera_frame_3d(np.random.default_rng(1).normal(size=(3, 15, 3)) + [0, 0, 5], cam, "x", "-")
    kp, conf, layout = camera_keypoints(None, 0, "seq", None, None, "humaneva15", pose, cam, "humaneva15")
    ref_kp, ref_conf = projected_keypoints(pose, cam)
    np.testing.assert_array_equal(kp, ref_kp)
    assert layout == "humaneva15" and (conf is None) == (ref_conf is None)
