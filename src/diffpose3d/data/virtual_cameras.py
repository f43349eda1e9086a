"""Random pinhole cameras around a 3D pose: the training views of camera-robust lifting.

A view is drawn per pose: a full turn of yaw around the world's up axis, an elevation (the camera
above or below the person), a roll, a focal length, an image aspect, the person's size in the image
and the root's position in it. The distance follows from the focal length and the size, and the
camera is turned so the root lands where it was drawn: a person anywhere in the frame, sometimes
cut by its border. Everything is torch, batched, and drawn from one generator (reproducible).

Units: 3D in metres; 2D in the field's normalised coordinates of a virtual image of width 2
(`uv = xy / w * 2 - [1, h / w]`), so a focal length is `f / (w / 2)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from diffpose3d.config import VirtualCameraConfig


@dataclass
class Views:
    """A batch of poses seen by their cameras: root-relative camera-frame 3D `(B, J, 3)` metres, 2D
    `(B, J, 2)` in uv, per-sample focal length `(B,)` (uv units) and image aspect `h / w` `(B,)`."""

    xyz: torch.Tensor
    uv: torch.Tensor
    focal: torch.Tensor
    aspect: torch.Tensor


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)


def _log_uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return torch.exp(_uniform(n, math.log(lo), math.log(hi), gen))


def _rotation_taking(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The smallest rotations `(B, 3, 3)` taking unit vectors `a (B, 3)` to `b (B, 3)` (Rodrigues)."""
    v = torch.cross(a, b, dim=-1)
    c = (a * b).sum(-1)
    vx = torch.zeros(a.shape[0], 3, 3, dtype=a.dtype)
    vx[:, 0, 1], vx[:, 0, 2], vx[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    vx = vx - vx.transpose(1, 2)
    eye = torch.eye(3, dtype=a.dtype).expand_as(vx)
    return eye + vx + (vx @ vx) / (1.0 + c).clamp_min(1e-9)[:, None, None]


def look_rotations(up: torch.Tensor, yaw: torch.Tensor, elevation: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """World -> camera rotations `(B, 3, 3)` of cameras looking at the person from `yaw` around `up`
    and `elevation` above the horizon (radians), rolled by `roll` about the optical axis. Camera
    axes: x right, y down, z forward."""
    up = up / up.norm()
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=up.dtype)
    if abs(float(up @ helper)) > 0.9:
        helper = torch.tensor([0.0, 1.0, 0.0], dtype=up.dtype)
    e1 = torch.linalg.cross(up, helper)
    e1 = e1 / e1.norm()
    e2 = torch.linalg.cross(up, e1)
    # direction from the person to the camera
    horizontal = torch.cos(yaw)[:, None] * e1 + torch.sin(yaw)[:, None] * e2
    to_camera = torch.cos(elevation)[:, None] * horizontal + torch.sin(elevation)[:, None] * up
    z = -to_camera  # the camera looks at the person
    x = torch.linalg.cross(z, up.expand_as(z))
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.linalg.cross(z, x)
    rot = torch.stack([x, y, z], dim=1)  # rows: camera axes in world coordinates
    cr, sr = torch.cos(roll), torch.sin(roll)
    roll_m = torch.zeros(roll.shape[0], 3, 3, dtype=up.dtype)
    roll_m[:, 0, 0], roll_m[:, 0, 1], roll_m[:, 1, 0], roll_m[:, 1, 1], roll_m[:, 2, 2] = cr, -sr, sr, cr, 1.0
    return roll_m @ rot


def random_views(world: torch.Tensor, up: torch.Tensor, cfg: VirtualCameraConfig, gen: torch.Generator) -> Views:
    """Poses `world (B, J, 3)` (joint 0 the root, metres, world frame with `up` its up axis) through
    one random camera each (`VirtualCameraConfig`)."""
    b = world.shape[0]
    w64 = world.to(torch.float64)
    rel = w64 - w64[:, :1]
    yaw = _uniform(b, 0.0, 2.0 * math.pi, gen)
    elevation = torch.deg2rad(_uniform(b, cfg.elevation[0], cfg.elevation[1], gen))
    roll = torch.deg2rad(torch.randn(b, generator=gen, dtype=torch.float64) * cfg.roll)
    focal = _log_uniform(b, cfg.focal[0], cfg.focal[1], gen)
    size = _log_uniform(b, cfg.size[0], cfg.size[1], gen)
    aspects = torch.tensor(cfg.aspects, dtype=torch.float64)
    aspect = aspects[torch.randint(len(cfg.aspects), (b,), generator=gen)]
    u0 = _uniform(b, -cfg.offset, cfg.offset, gen)
    v0 = _uniform(b, -cfg.offset, cfg.offset, gen) * aspect

    rot = look_rotations(up.to(torch.float64), yaw, elevation, roll)
    body = torch.einsum("bij,bkj->bki", rot, rel)  # root-relative, camera axes, camera on the optical axis
    # distance so that the body's RMS radius across the optical axis appears `size` large
    radius = body[..., :2].square().sum(-1).mean(-1).sqrt().clamp_min(0.05)
    distance = focal * radius / size
    # turn the camera so the root appears at (u0, v0)
    target = torch.stack([u0 / focal, v0 / focal, torch.ones_like(u0)], -1)
    target = target / target.norm(dim=-1, keepdim=True)
    turn = _rotation_taking(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(b, 3), target)
    root = distance[:, None] * target
    cam = root[:, None] + torch.einsum("bij,bkj->bki", turn, body)
    depth = cam[..., 2:].clamp_min(0.05)
    uv = focal[:, None, None] * cam[..., :2] / depth
    return Views(
        xyz=(cam - cam[:, :1]).to(world.dtype), uv=uv.to(world.dtype),
        focal=focal.to(world.dtype), aspect=aspect.to(world.dtype),
    )
