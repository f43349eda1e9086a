"""Random training cameras (the default bundle's virtual views) checked by independent geometry:
the 3D is a rigid motion of the pose, and the 2D its pinhole projection."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from diffpose3d.config import VirtualCameraConfig
from diffpose3d.data.virtual_cameras import look_rotations, random_views


def _poses(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    world = rng.normal(scale=0.3, size=(n, 17, 3))
    world[:, 0] = rng.normal(scale=2.0, size=(n, 3))
    return torch.tensor(world)


def test_views_are_rigid_motions_and_pinhole_projections() -> None:
    world = _poses(32)
    gen = torch.Generator().manual_seed(0)
    views = random_views(world, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), VirtualCameraConfig(share=1.0), gen)
    rel = (world - world[:, :1]).numpy()
    for b in range(32):
        # rigid: the best rotation (Kabsch, via scipy) maps the pose onto the view exactly, det +1
        rot, rssd = Rotation.align_vectors(views.xyz[b].numpy(), rel[b])
        assert rssd < 1e-6 and np.linalg.det(rot.as_matrix()) > 0
        # pinhole: some root position T (z > 0) gives uv = f * (x + T)_xy / (z + T_z); solve T linearly
        x, f, uv = views.xyz[b].numpy(), float(views.focal[b]), views.uv[b].numpy()
        rows = [[f, 0.0, -uv[j, 0]] for j in range(17)] + [[0.0, f, -uv[j, 1]] for j in range(17)]
        rhs = [uv[j, 0] * x[j, 2] - f * x[j, 0] for j in range(17)] + [uv[j, 1] * x[j, 2] - f * x[j, 1] for j in range(17)]
        t, *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
        assert t[2] > 0
        np.testing.assert_allclose(np.array(rows) @ t, rhs, atol=1e-9)


def test_a_level_unrolled_camera_keeps_the_world_upright() -> None:
    cfg = VirtualCameraConfig(share=1.0, elevation=[0.0, 0.0], roll=0.0, offset=0.0)
    world = _poses(8, seed=1)
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    world[:, 1] = world[:, 0] + up  # joint 1 straight above the root
    views = random_views(world, up, cfg, torch.Generator().manual_seed(3))
    d = views.xyz[:, 1].numpy()
    np.testing.assert_allclose(d, np.tile([0.0, -1.0, 0.0], (8, 1)), atol=1e-9)  # image up is -y


def test_look_rotations_are_rotations() -> None:
    n = 16
    g = torch.Generator().manual_seed(5)
    def uniform() -> torch.Tensor:
        return torch.rand(n, generator=g, dtype=torch.float64)

    rot = look_rotations(torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), uniform() * 6, uniform() - 0.5, uniform() - 0.5)
    r = rot.numpy()
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
