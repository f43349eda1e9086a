"""BVH export: read back by an independent parser (the `bvh` package from PyPI), forward kinematics
over what it parsed (our own, with Rz * Rx * Ry from the channel order) gives our 3D joints back."""

from __future__ import annotations

import numpy as np
import pytest
from _motion import scene_joints, two_people

from diffpose3d.export.motion import person_motion
from diffpose3d.export.rotations import solve_rotations

bvh = pytest.importorskip("bvh", reason="the independent BVH reader is in the test extra (pip install 'bvh')")


def axis_rotation(axis: str, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    return {"X": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "Y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "Z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def bvh_forward_kinematics(mocap) -> dict[str, np.ndarray]:
    """Each joint's position per frame: a joint's position channels (else its OFFSET) in its
    parent's frame, its rotation the product of its rotation channels in their order."""
    names = mocap.get_joints_names()
    out: dict[str, np.ndarray] = {}
    for f in range(mocap.nframes):
        rot: dict[str, np.ndarray] = {}
        pos: dict[str, np.ndarray] = {}
        for name in names:  # depth-first: parents first
            channels = mocap.joint_channels(name)
            values = dict(zip(channels, mocap.frame_joint_channels(f, name, channels)))
            local_t = np.array([values[c] for c in ("Xposition", "Yposition", "Zposition")]) \
                if "Xposition" in values else np.array(mocap.joint_offset(name))
            local_r = np.eye(3)
            for c in channels:
                if c.endswith("rotation"):
                    local_r = local_r @ axis_rotation(c[0], values[c])
            parent = mocap.joint_parent(name)
            if parent is None:
                rot[name], pos[name] = local_r, local_t
            else:
                rot[name] = rot[parent.name] @ local_r
                pos[name] = pos[parent.name] + rot[parent.name] @ local_t
            out.setdefault(name, np.zeros((mocap.nframes, 3)))[f] = pos[name]
    return out


@pytest.fixture(scope="module")
def result():
    return two_people()


@pytest.mark.parametrize("person", [0, 1])
def test_forward_kinematics_of_the_written_bvh_gives_our_joints_within_a_millimetre(result, tmp_path, person):
    path = result.export(tmp_path, "bvh", name="walk")[person]
    assert path.name == f"walk_person{person}.bvh"
    mocap = bvh.Bvh(path.read_text())
    assert mocap.frame_time == pytest.approx(1 / 25.0)
    frames, truth = scene_joints(result, person)
    assert mocap.nframes == frames.max() - frames.min() + 1  # the span, gaps filled
    fk = bvh_forward_kinematics(mocap)
    got = np.stack([fk[n] for n in result.joint_names], 1)[frames - frames.min()]
    assert np.abs(got - truth).max() < 1e-3


def test_offsets_are_the_persons_own_bone_lengths(result, tmp_path):
    path = result.export(tmp_path, ["bvh"], name="walk")[0]
    mocap = bvh.Bvh(path.read_text())
    _, truth = scene_joints(result, 0)
    parents = result.parents
    for j, name in enumerate(result.joint_names):
        if parents[j] >= 0:
            median = np.median(np.linalg.norm(truth[:, j] - truth[:, parents[j]], axis=-1))
            assert np.linalg.norm(mocap.joint_offset(name)) == pytest.approx(median, abs=1e-5)


def test_one_child_joints_have_zero_twist_relative_to_their_parent(result):
    """The stated convention: a joint with one child turns about an axis normal to its rest bone."""
    motion = person_motion(result, 0)
    solved = solve_rotations(motion.positions, motion.parents, motion.joint_names)
    for j in range(len(motion.parents)):
        kids = [c for c, p in enumerate(motion.parents) if p == j]
        if len(kids) == 1:
            bone = solved.offsets[kids[0]] / np.linalg.norm(solved.offsets[kids[0]])
            assert np.abs(solved.local[j].as_rotvec() @ bone).max() < 1e-9
