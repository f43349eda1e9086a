"""The pose table's real-camera views against OpenCV's projection and scipy's quaternions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from diffpose3d.data.pose_table import PoseTable, _rotation_matrix

cv2 = pytest.importorskip("cv2")


def test_quaternion_rotation_matches_scipy() -> None:
    q = Rotation.random(10, random_state=0).as_quat()  # x, y, z, w
    for x, y, z, w in q:
        expected = Rotation.from_quat([x, y, z, w]).as_matrix().T  # world -> camera: the inverse
        np.testing.assert_allclose(_rotation_matrix(np.array([w, x, y, z])), expected, atol=1e-12)


def test_real_views_match_opencv_projection() -> None:
    rng = np.random.default_rng(0)
    f, c = 2, 2  # frames, cameras
    world = torch.tensor(rng.normal(scale=0.4, size=(f, 17, 3)) + [0.0, 0.0, 1.0])
    rot = Rotation.random(c, random_state=1).as_matrix()
    centre = np.stack([-(r.T @ [0.1, -0.2, 5.0]) for r in rot])  # the person about 5 m in front
    intrinsics = np.array([[1145.0, 1143.8, 512.5, 515.4, -0.207, 0.247, -0.003, 0.0, 0.0],
                           [1149.7, 1147.6, 508.8, 508.1, -0.194, 0.240, 0.007, 0.0, 0.0]])
    table = PoseTable(
        world=world, up=torch.tensor([0.0, 0.0, 1.0]), sequence=torch.zeros(f, dtype=torch.long),
        rotation=torch.tensor(rot[None]), centre=torch.tensor(centre[None]), intrinsics=torch.tensor(intrinsics[None]),
        image_size=torch.tensor([[[1000, 1002], [1000, 1000]]]),
    )
    rows, cams = torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1])
    xyz, uv = table.real_views(rows, cams)
    for i, (r, k) in enumerate(zip(rows.tolist(), cams.tolist())):
        cam = (world[r].numpy() - centre[k]) @ rot[k].T
        np.testing.assert_allclose(xyz[i].numpy(), cam - cam[:1], atol=1e-9)
        fx, fy, cx, cy, k1, k2, k3 = intrinsics[k][:7]
        matrix = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
        px, _ = cv2.projectPoints(cam, np.zeros(3), np.zeros(3), matrix, np.array([k1, k2, 0.0, 0.0, k3]))
        w, h = table.image_size[0, k].tolist()
        expected = px[:, 0] / w * 2 - [1.0, h / w]
        np.testing.assert_allclose(uv[i].numpy(), expected, atol=1e-6)
