"""glTF export: read back by an independent reader (pygltflib), forward kinematics of the animated
nodes gives our 3D joints back, the spread is in `extras`; the Khronos validator finds no error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _motion import scene_joints, two_people
from scipy.spatial.transform import Rotation

pygltflib = pytest.importorskip("pygltflib", reason="the independent glTF reader is in the test extra (pip install pygltflib)")

REPO = Path(__file__).resolve().parents[2]
VALIDATOR = Path(os.environ.get("DIFFPOSE3D_GLTF_VALIDATOR", REPO / ".ci-node" / "node_modules" / "gltf-validator"))


def read_accessor(gltf, index: int) -> np.ndarray:
    accessor = gltf.accessors[index]
    view = gltf.bufferViews[accessor.bufferView]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[accessor.type]
    assert accessor.componentType == pygltflib.FLOAT
    data = gltf.binary_blob()[view.byteOffset + (accessor.byteOffset or 0):][: accessor.count * width * 4]
    return np.frombuffer(data, "<f4").reshape(accessor.count, width).astype(np.float64)


def node_forward_kinematics(gltf, top: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The times and every joint node's position per key under the person node `top` (TRS: a node
    is translation * rotation of its parent's frame; unanimated properties keep the node's)."""
    animation = gltf.animations[0]
    tracks: dict[tuple[int, str], np.ndarray] = {}
    times = None
    for channel in animation.channels:
        sampler = animation.samplers[channel.sampler]
        tracks[(channel.target.node, channel.target.path)] = read_accessor(gltf, sampler.output)
        keys = read_accessor(gltf, sampler.input)[:, 0]
        if channel.target.node in gltf.nodes[top].children:
            times = keys
    out: dict[str, np.ndarray] = {}

    def walk(index: int, rot: np.ndarray, pos: np.ndarray) -> None:
        node = gltf.nodes[index]
        t = tracks.get((index, "translation"), np.tile(node.translation or [0, 0, 0], (len(times), 1)))
        q = tracks.get((index, "rotation"), np.tile(node.rotation or [0, 0, 0, 1], (len(times), 1)))
        here = pos + np.einsum("tij,tj->ti", rot, t)
        out[node.name] = here
        turn = rot @ Rotation.from_quat(q).as_matrix()
        for child in node.children or []:
            walk(child, turn, here)

    for child in gltf.nodes[top].children:
        walk(child, np.tile(np.eye(3), (len(times), 1, 1)), np.zeros((len(times), 3)))
    return times, out


@pytest.fixture(scope="module")
def glb(tmp_path_factory):
    result = two_people()
    path = result.export(tmp_path_factory.mktemp("glb"), "gltf", name="walk")[0]
    return result, path


def test_forward_kinematics_of_every_person_gives_our_joints_within_a_millimetre(glb):
    result, path = glb
    gltf = pygltflib.GLTF2().load(str(path))
    people = gltf.scenes[gltf.scene].nodes
    assert [gltf.nodes[p].name for p in people] == ["person0", "person1"]
    for pid, top in zip(result.people, people):
        times, joints = node_forward_kinematics(gltf, top)
        frames, truth = scene_joints(result, pid)
        np.testing.assert_allclose(times[frames - frames.min()], frames / 25.0, atol=1e-6)  # one clock, the video's
        got = np.stack([joints[f"person{pid}_{n}"] for n in result.joint_names], 1)[frames - frames.min()]
        assert np.abs(got - truth).max() < 1e-3


def test_the_spread_of_the_hypotheses_is_in_extras(glb):
    result, path = glb
    gltf = pygltflib.GLTF2().load(str(path))
    extras = gltf.nodes[gltf.scenes[0].nodes[1]].extras["diffpose3d"]
    rows = np.flatnonzero(result.person_ids == 1)
    frames = result.frame_indices[rows]
    spread = np.array(extras["spread_m"], dtype=float)[frames - extras["first_frame"]]
    np.testing.assert_allclose(spread, result.uncertainty[rows], atol=1e-5)
    assert extras["joint_names"] == result.joint_names and len(extras["root_std_m"]) == len(spread) + 1  # frame 20 filled
    assert np.array(extras["root_std_m"], dtype=float)[:, 2].mean() > 0.1  # the depth spread of the roots


def test_the_khronos_validator_finds_no_error(glb):
    node = shutil.which("node")
    if node is None or not (VALIDATOR / "package.json").is_file():
        pytest.skip(f"node or the Khronos glTF validator not found (npm install --prefix .ci-node gltf-validator; "
                    f"looked in {VALIDATOR})")
    run = subprocess.run([node, str(Path(__file__).with_name("validate_gltf.js")), str(VALIDATOR), str(glb[1])],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    issues = json.loads(run.stdout)["issues"]
    assert issues["numErrors"] == 0, issues["messages"]
    assert issues["numWarnings"] == 0, issues["messages"]


def test_a_photo_of_one_frame_and_a_result_without_roots_export_too(tmp_path):
    result = two_people()
    photo = result.select(result.frame_indices == 12)
    photo.root = photo.root_hypotheses = None  # root-relative: each person at the origin
    bvh_path, glb_path = photo.export(tmp_path, "bvh,glb", name="photo")[1:]
    gltf = pygltflib.GLTF2().load(str(glb_path))
    times, joints = node_forward_kinematics(gltf, gltf.scenes[0].nodes[1])
    assert len(times) == 1 and np.allclose(joints["person1_pelvis"], 0.0)
    assert gltf.nodes[gltf.scenes[0].nodes[1]].extras["diffpose3d"]["placed_in_scene"] is False
    l_wrist = photo.pose_3d[1, photo.joint_names.index("l_wrist")]
    np.testing.assert_allclose(joints["person1_l_wrist"][0], l_wrist * [1, -1, -1], atol=1e-6)
    assert bvh_path.read_text().count("Frames: 1\n") == 1
    if shutil.which("node") and (VALIDATOR / "package.json").is_file():
        run = subprocess.run([shutil.which("node"), str(Path(__file__).with_name("validate_gltf.js")), str(VALIDATOR),
                              str(glb_path)], capture_output=True, text=True, timeout=120)
        assert json.loads(run.stdout)["issues"]["numErrors"] == 0
