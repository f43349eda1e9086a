"""Training data as a table: world poses, each sequence's real cameras, and detections where the data
has them. Batches are drawn from it on the fly (`training/batches.py`): a real camera's view (with
its lens distortion) or a random virtual one, so a data set of 1.46 M 2D-3D pairs costs one copy of
its 3D poses in memory, not one per camera and evidence draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diffpose3d.cameras import distorted_projection, normalize_screen_coordinates
from diffpose3d.data.base import PoseSequence
from diffpose3d.skeleton import get_skeleton, map_keypoints


@dataclass
class PoseTable:
    """`world (F, J, 3)` metres (one row per mocap frame), `up (3,)` the world's up axis, and per
    row its sequence; per sequence its cameras' extrinsics and intrinsics; optionally per row and
    camera the 2D of a real detector, in uv `(F, C, J, 2)` (NaN where the detector lacks a joint)."""

    world: torch.Tensor
    up: torch.Tensor
    sequence: torch.Tensor  # (F,) long
    rotation: torch.Tensor  # (S, C, 3, 3) world -> camera
    centre: torch.Tensor  # (S, C, 3) camera centres, world metres
    intrinsics: torch.Tensor  # (S, C, 9): focal (2), principal point (2) px, radial (3), tangential (2)
    image_size: torch.Tensor  # (S, C, 2) pixels
    detections: torch.Tensor | None = None  # (F, C, J, 2) uv

    def __post_init__(self) -> None:
        self.num_cameras = int(self.rotation.shape[1])
        self.focal = self.intrinsics[..., 0] / (self.image_size[..., 0] / 2.0)  # (S, C): f / (w / 2)

    def __len__(self) -> int:
        return int(self.world.shape[0])

    def real_views(self, rows: torch.Tensor, cams: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`rows` seen by their sequence's camera `cams`: root-relative camera-frame 3D `(B, J, 3)`
        and the 2D (lens distortion included, as the data's own 2D) in uv `(B, J, 2)`."""
        seq = self.sequence[rows]
        rot, centre = self.rotation[seq, cams], self.centre[seq, cams]
        cam_xyz = torch.einsum("bij,bkj->bki", rot, self.world[rows] - centre[:, None])
        k = self.intrinsics[seq, cams][:, None]  # (B, 1, 9)
        px = distorted_projection(cam_xyz, k[..., 0:2], k[..., 2:4], k[..., 4:7], k[..., 7:9])
        size = self.image_size[seq, cams].to(px.dtype)
        uv = px * (2.0 / size[:, None, :1]) - torch.stack([torch.ones_like(size[:, 0]), size[:, 1] / size[:, 0]], -1)[:, None]
        return cam_xyz - cam_xyz[:, :1], uv


def _world_poses(seq: PoseSequence) -> np.ndarray:
    return seq.camera.camera_to_world(seq.pose_3d).astype(np.float32)


def build_pose_table(sequences: list[PoseSequence], detections: list[PoseSequence] | None = None,
                     layout: str = "h36m17") -> PoseTable:
    """A table from a reader's per-camera sequences (`pose_3d` and `camera` set): every take once,
    with all its cameras; `detections`, the same takes read with a detector's 2D file, give the
    detector's keypoints (mapped to `layout`, missing joints NaN)."""
    takes: dict[tuple[str, str], dict[int, PoseSequence]] = {}
    for seq in sequences:
        if seq.pose_3d is None or seq.camera is None:
            raise ValueError(f"{seq.key}: a pose table needs 3D poses and calibrated cameras")
        takes.setdefault((seq.subject, seq.name), {})[seq.camera_index] = seq
    found = {}
    for seq in detections or []:
        found[(seq.subject, seq.name, seq.camera_index)] = seq
    num_cams = max(len(v) for v in takes.values())
    worlds, seq_index, rotations, centres, intrinsics, sizes, dets = [], [], [], [], [], [], []
    for s, ((subject, name), views) in enumerate(sorted(takes.items())):
        first = views[min(views)]
        worlds.append(_world_poses(first))
        seq_index.append(np.full(len(first), s))
        cams = [views.get(c, first).camera for c in range(num_cams)]
        rotations.append([_rotation_matrix(c.orientation) for c in cams])
        centres.append([np.asarray(c.translation, np.float64) for c in cams])
        intrinsics.append([np.concatenate([c.focal, c.center, c.radial_distortion, c.tangential_distortion]) for c in cams])
        sizes.append([[c.res_w, c.res_h] for c in cams])
        if detections is not None:
            per_cam = []
            for c in range(num_cams):
                det = found.get((subject, name, c))
                if det is None or len(det) != len(first):
                    per_cam.append(np.full((len(first), get_skeleton(layout).num_joints, 2), np.nan, np.float32))
                    continue
                kp = det.keypoints_2d.astype(np.float32)
                conf = det.confidence if det.confidence is not None else np.ones(kp.shape[:2])
                kp = np.where(conf[..., None] > 0, kp, np.nan)
                if det.skeleton != layout:
                    kp = map_keypoints(kp, det.skeleton, layout, confidence=False)
                w, h = det.image_size
                per_cam.append(normalize_screen_coordinates(kp, w, h).astype(np.float32))
            dets.append(np.stack(per_cam, 1))
    world = torch.as_tensor(np.concatenate(worlds))
    rel = world - world[:, :1]
    return PoseTable(
        world=world,
        up=_up_axis(rel, layout),
        sequence=torch.as_tensor(np.concatenate(seq_index)),
        rotation=torch.as_tensor(np.array(rotations), dtype=torch.float32),
        centre=torch.as_tensor(np.array(centres), dtype=torch.float32),
        intrinsics=torch.as_tensor(np.array(intrinsics), dtype=torch.float32),
        image_size=torch.as_tensor(np.array(sizes)),
        detections=torch.as_tensor(np.concatenate(dets)) if detections is not None else None,
    )


def _rotation_matrix(q: np.ndarray) -> np.ndarray:
    """World -> camera rotation of a camera with orientation quaternion `q` (w, x, y, z):
    camera = rotate(conj(q), X - t)."""
    w, x, y, z = (float(v) for v in q)
    r = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    return r.T  # rotating by conj(q) is the transpose


def _up_axis(rel: torch.Tensor, layout: str) -> torch.Tensor:
    """The world's up axis: the mean direction from the pelvis to the head (or thorax) over all poses,
    snapped to the nearest coordinate axis when it is within 15 degrees of one."""
    names = get_skeleton(layout).joint_names
    top = names.index("head") if "head" in names else names.index("thorax")
    v = rel[:, top].double().mean(0)
    v = v / v.norm()
    axis = torch.zeros(3, dtype=torch.float64)
    i = int(v.abs().argmax())
    axis[i] = float(torch.sign(v[i]))
    return (axis if float(v @ axis) > np.cos(np.deg2rad(15)) else v).float()
