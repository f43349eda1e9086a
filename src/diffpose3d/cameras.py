"""Camera model (VideoPose3D conventions), projection and the shipped Human3.6M / HumanEva-I calibrations.

Extrinsics: ``orientation`` is a unit quaternion (w, x, y, z) and ``translation`` the camera centre in
world coordinates, metres; camera coordinates are ``rotate(conj(q), X - t)``. Intrinsics are in pixels.
All functions are numpy and broadcast over leading dimensions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputFileError

if TYPE_CHECKING:
    import torch


def _keep_float(result: np.ndarray, like: np.ndarray) -> np.ndarray:
    return result.astype(like.dtype) if like.dtype.kind == "f" else result


def _vec(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.float64)


@dataclass(eq=False)
class Camera:
    """One calibrated camera; ``translation`` is the camera centre in world coordinates, metres.

    Equality is identity (the fields are arrays).
    """

    id: str
    res_w: int
    res_h: int
    focal: np.ndarray = field(default_factory=lambda: np.ones(2))
    center: np.ndarray = field(default_factory=lambda: _vec(2))
    radial_distortion: np.ndarray = field(default_factory=lambda: _vec(3))
    tangential_distortion: np.ndarray = field(default_factory=lambda: _vec(2))
    orientation: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0, 0.0]))
    translation: np.ndarray = field(default_factory=lambda: _vec(3))

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.res_w, self.res_h)

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        return world_to_camera(points, self.orientation, self.translation)

    def camera_to_world(self, points: np.ndarray) -> np.ndarray:
        return camera_to_world(points, self.orientation, self.translation)

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        return project_to_2d(points_cam, self)


def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v (..., 3)`` by unit quaternions ``q (..., 4)`` (w, x, y, z)."""
    q = np.asarray(q, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    w, qv = q[..., :1], q[..., 1:]
    uv = np.cross(qv, v)
    uuv = np.cross(qv, uv)
    return v + 2.0 * (w * uv + uuv)


def qinverse(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return np.concatenate([q[..., :1], -q[..., 1:]], axis=-1)


def world_to_camera(points: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """World ``(..., 3)`` -> camera frame, with orientation quaternion ``R`` and camera centre ``t``."""
    points = np.asarray(points)
    return _keep_float(qrot(qinverse(R), points - np.asarray(t)), points)


def camera_to_world(points: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    points = np.asarray(points)
    return _keep_float(qrot(R, points) + np.asarray(t), points)


def project_to_2d(points_cam: np.ndarray, camera: Camera) -> np.ndarray:
    """Pixels of camera-frame points with radial + tangential distortion, as VideoPose3D computes it.

    The normalised image coordinates are clamped to [-1, 1] before distortion (as there), which keeps
    the polynomial from blowing up for points far outside the field of view.
    """
    X = np.asarray(points_cam, dtype=np.float64)
    return distorted_projection(X, *(np.asarray(a, dtype=np.float64) for a in (
        camera.focal, camera.center, camera.radial_distortion, camera.tangential_distortion)))


def distorted_projection(X, focal, center, radial, tangential):
    """`project_to_2d` with the intrinsics as arrays that broadcast against the points `X (..., 3)`:
    focal, center `(..., 2)`, radial `(..., 3)`, tangential `(..., 2)`; numpy arrays or torch tensors
    (per-sample cameras of a training batch)."""
    xy = (X[..., :2] / X[..., 2:3]).clip(-1.0, 1.0)
    r2 = xy[..., :1] ** 2 + xy[..., 1:2] ** 2
    k, p = radial, tangential
    radial_term = 1.0 + k[..., 0:1] * r2 + k[..., 1:2] * r2**2 + k[..., 2:3] * r2**3
    tangential_term = p[..., 0:1] * xy[..., 0:1] + p[..., 1:2] * xy[..., 1:2]
    distorted = xy * (radial_term + tangential_term) + p * r2
    return focal * distorted + center


def project_to_2d_linear(points_cam: np.ndarray, camera: Camera) -> np.ndarray:
    """Pinhole projection without distortion (and without clamping)."""
    X = np.asarray(points_cam, dtype=np.float64)
    return np.asarray(camera.focal) * X[..., :2] / X[..., 2:3] + np.asarray(camera.center)


def normalize_screen_coordinates(xy, w: int, h: int):
    """Pixels -> ``uv = xy / w * 2 - [1, h / w]`` (u in [-1, 1], aspect ratio kept).

    The one pixel <-> normalised-coordinate conversion: numpy arrays or torch tensors, ``(..., 2)``.
    """
    if hasattr(xy, "new_tensor"):  # a torch tensor
        return xy * (2.0 / w) - xy.new_tensor([1.0, h / w])
    xy = np.asarray(xy)
    return _keep_float(xy / w * 2 - np.array([1.0, h / w]), xy)


def image_coordinates(uv, w: int, h: int):
    """Inverse of ``normalize_screen_coordinates`` (numpy arrays or torch tensors)."""
    if hasattr(uv, "new_tensor"):
        return (uv + uv.new_tensor([1.0, h / w])) * (w / 2.0)
    uv = np.asarray(uv)
    return _keep_float((uv + np.array([1.0, h / w])) * w / 2, uv)


def uv_per_pixel(w: int) -> float:
    """Normalised units per image pixel (both axes): scales lengths and standard deviations."""
    return 2.0 / w


def _array(entry: dict[str, Any], key: str, n: int, path: str, default: list[float] | None = None) -> np.ndarray:
    value = entry.get(key, default)
    arr = np.asarray(value, dtype=np.float64) if value is not None else None
    if arr is None or arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise InputFileError(path, f"camera {entry.get('id', '?')}: '{key}' must be {n} finite numbers")
    return arr


def cameras_from_dict(data: Any, path: str) -> dict[str, list[Camera]]:
    """Parse ``{"subjects": {S: [camera entries]}, "image_size": [w, h]?}`` (the shipped layout)."""
    if not isinstance(data, dict) or not isinstance(data.get("subjects"), dict):
        raise InputFileError(path, "camera file needs a 'subjects' object mapping subject -> list of cameras")
    default_size = data.get("image_size")
    out: dict[str, list[Camera]] = {}
    for subject, entries in data["subjects"].items():
        if not isinstance(entries, list) or not entries:
            raise InputFileError(path, f"subject {subject}: expected a non-empty list of cameras")
        cams = []
        for i, e in enumerate(entries):
            if not isinstance(e, dict):
                raise InputFileError(path, f"subject {subject}: camera {i} is not an object")
            size = (e.get("res_w"), e.get("res_h")) if "res_w" in e else tuple(default_size or (None, None))
            if not all(isinstance(s, int) and s > 0 for s in size):
                raise InputFileError(path, f"subject {subject}: camera {i} has no valid image size")
            q = _array(e, "orientation", 4, path)
            cams.append(
                Camera(
                    id=str(e.get("id", i)),
                    res_w=int(size[0]),
                    res_h=int(size[1]),
                    focal=_array(e, "focal", 2, path),
                    center=_array(e, "center", 2, path),
                    radial_distortion=_array(e, "radial_distortion", 3, path, [0.0, 0.0, 0.0]),
                    tangential_distortion=_array(e, "tangential_distortion", 2, path, [0.0, 0.0]),
                    orientation=q / np.linalg.norm(q),
                    translation=_array(e, "translation", 3, path),
                )
            )
        out[str(subject)] = cams
    return out


def load_cameras_json(path: str | Path) -> dict[str, list[Camera]]:
    """Read a camera file in the shipped layout (see ``assets/cameras/*.json``)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(p, "camera file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(p, f"cannot read camera JSON ({exc.__class__.__name__}: {exc})") from None
    return cameras_from_dict(data, str(p))


def _packaged(name: str) -> dict[str, list[Camera]]:
    resource = resources.files("diffpose3d").joinpath("assets", "cameras", name)
    return cameras_from_dict(json.loads(resource.read_text(encoding="utf-8")), f"diffpose3d/assets/cameras/{name}")


def load_h36m_cameras() -> dict[str, list[Camera]]:
    """Human3.6M: subject (S1, S5, S6, S7, S8, S9, S11) -> 4 cameras (54138969, 55011271, 58860488, 60457274)."""
    return _packaged("h36m.json")


def load_humaneva_cameras(path: str | Path | None = None) -> dict[str, list[Camera]]:
    """HumanEva-I: subject (S1-S3) -> cameras C1-C3; the shipped file unless ``path`` is given."""
    return _packaged("humaneva.json") if path is None else load_cameras_json(path)


def inside_image(uv: torch.Tensor, aspect: torch.Tensor) -> torch.Tensor:
    """Which joints `(B, J)` lie inside the image `u in [-1, 1]`, `v in [-aspect, aspect]` (aspect
    `(B,)`: the image's height / width), the uv of `normalize_screen_coordinates`."""
    return (uv[..., 0].abs() <= 1.0) & (uv[..., 1].abs() <= aspect[:, None])
