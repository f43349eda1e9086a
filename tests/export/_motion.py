"""A result of two people moving through a scene, made by forward kinematics of random smooth joint
rotations on a Human3.6M skeleton, with bone lengths that vary a little from frame to frame."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from diffpose3d.export.motion import CAMERA_TO_EXPORT
from diffpose3d.export.rotations import forward_kinematics, rest_direction
from diffpose3d.inference.result import PoseResult
from diffpose3d.skeleton import get_skeleton

LENGTHS = {"r_hip": 0.13, "l_hip": 0.13, "r_knee": 0.45, "l_knee": 0.45, "r_ankle": 0.44, "l_ankle": 0.44,
           "spine": 0.23, "thorax": 0.25, "neck_nose": 0.11, "head": 0.12, "l_shoulder": 0.15, "r_shoulder": 0.15,
           "l_elbow": 0.28, "r_elbow": 0.28, "l_wrist": 0.25, "r_wrist": 0.25}


def person_positions(frames: int, seed: int) -> np.ndarray:
    """(T, 17, 3) camera-frame joint positions of one moving person."""
    sk = get_skeleton("h36m17")
    rng = np.random.default_rng(seed)
    j = sk.num_joints
    phase = rng.uniform(0, 2 * np.pi, (j, 3))
    amp = rng.uniform(0.1, 0.7, (j, 3))
    t = np.arange(frames)[:, None, None] / 25.0
    rotvec = amp * np.sin(2 * np.pi * 0.7 * t + phase)  # (T, J, 3) smooth local rotations
    local = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(frames, j, 3, 3)
    offsets = np.stack([rest_direction(n) * LENGTHS.get(n, 0.0) for n in sk.joint_names])
    trans = np.repeat(offsets[None], frames, 0) * rng.normal(1.0, 0.02, (frames, j, 1))  # bone lengths jitter
    trans[:, 0] = np.c_[np.linspace(-1.0, 1.0, frames) + seed, np.full(frames, 0.1), -np.linspace(4.0, 5.0, frames)]
    export = forward_kinematics(local, trans, list(sk.parents))
    return export @ CAMERA_TO_EXPORT  # the export frame back to the camera frame (its own inverse)


def two_people(frames: int = 40, hypotheses: int = 3) -> PoseResult:
    """Person 0 in frames 0..frames-1, person 1 from frame 10 with frame 20 missing; rows sorted."""
    sk = get_skeleton("h36m17")
    rows = []
    for pid, span in ((0, np.arange(frames)), (1, np.setdiff1d(np.arange(10, 10 + frames), [20]))):
        pos = person_positions(len(span), pid + 1)
        rows += [(f, pid, pos[k]) for k, f in enumerate(span)]
    rows.sort(key=lambda r: (r[0], r[1]))
    world = np.stack([r[2] for r in rows])
    rng = np.random.default_rng(9)
    pose = world - world[:, :1]
    hyp = pose[:, None] + rng.normal(0, 0.02, (len(rows), hypotheses, 17, 3))
    hyp -= hyp[:, :, :1]
    root = world[:, 0]
    r = len(rows)
    return PoseResult(
        joint_names=list(sk.joint_names), parents=list(sk.parents), pose_3d=pose, hypotheses=hyp,
        covariance=np.zeros((r, 17, 3, 3)), uncertainty=rng.uniform(0.01, 0.1, (r, 17)),
        keypoints_2d=np.zeros((r, 17, 2)), confidence=np.ones((r, 17)), missing=np.zeros((r, 17), bool),
        lifter_3d=pose, image_size=(1000, 1000), frame_indices=np.array([x[0] for x in rows]),
        person_ids=np.array([x[1] for x in rows]), meta={"source": {"fps": 25.0}},
        root=root, root_hypotheses=root[:, None] + rng.normal(0, [0.02, 0.02, 0.2], (r, hypotheses, 3)),
    )


def scene_joints(result: PoseResult, person: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames, joints in the export frame) of one person's rows: what a file's FK must give back."""
    rows = np.flatnonzero(result.person_ids == person)
    return result.frame_indices[rows], result.pose_in_scene[rows] @ CAMERA_TO_EXPORT.T
