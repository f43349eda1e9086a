"""Every row of a result gets a root in the camera frame, per hypothesis, written and read back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffpose3d.inference.outputs import load_result_npz, prediction_schema, write_result
from diffpose3d.inference.result import PoseResult
from diffpose3d.scene.intrinsics import camera_for
from diffpose3d.scene.trajectory import add_trajectory, root_std

FOCAL = 1000.0


def placed_result(frames: int = 30, hyps: int = 3) -> tuple[PoseResult, np.ndarray]:
    """A walking person whose 2D is the exact projection of hypothesis 0 (the mean pose too)."""
    rng = np.random.default_rng(0)
    pose = rng.normal(0, 0.3, (17, 3))
    pose -= pose[0]
    roots = np.c_[np.linspace(-1, 1, frames), np.full(frames, 0.2), np.linspace(4, 6, frames)]
    hyp = np.repeat(np.repeat(pose[None, None], frames, 0), hyps, 1) * np.linspace(0.9, 1.1, hyps)[None, :, None, None]
    hyp[:, 0] = pose
    cam = camera_for((800, 600), FOCAL)
    world = pose + roots[:, None]
    kp = FOCAL * world[..., :2] / world[..., 2:] + np.asarray(cam.center)
    result = PoseResult(
        joint_names=[f"j{i}" for i in range(17)], parents=[-1] + [0] * 16, pose_3d=np.repeat(pose[None], frames, 0),
        hypotheses=hyp, covariance=np.zeros((frames, 17, 3, 3)), uncertainty=np.zeros((frames, 17)),
        keypoints_2d=kp.astype(np.float32), confidence=np.ones((frames, 17)), missing=np.zeros((frames, 17), bool),
        lifter_3d=np.repeat(pose[None], frames, 0), image_size=(800, 600), frame_indices=np.arange(frames),
    )
    return result, roots


def test_roots_follow_the_person_and_hypotheses_of_other_sizes_sit_deeper_or_nearer():
    result, roots = placed_result()
    add_trajectory(result, camera_for((800, 600), FOCAL), fps=25.0)
    np.testing.assert_allclose(result.root, roots, atol=2e-3)  # a straight walk survives smoothing
    z = result.root_hypotheses[..., 2] / result.root[:, None, 2]
    np.testing.assert_allclose(z[:, 1:], np.broadcast_to([1.0, 1.1], z[:, 1:].shape), atol=1e-3)
    std = root_std(result.root_hypotheses)
    assert (std[:, 2] > std[:, 0]).all()  # the uncertainty is in depth
    np.testing.assert_allclose(result.pose_in_scene[:, 0], result.root, atol=1e-6)
    assert result.meta["camera"]["focal_px"] == FOCAL and result.meta["camera"]["focal_source"] == "given"


def test_the_trajectory_is_written_to_the_npz_and_the_json(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    result, _ = placed_result(5)
    add_trajectory(result, camera_for((800, 600)), fps=None)
    npz, js = write_result(result, tmp_path, "walk")
    back = load_result_npz(npz)
    np.testing.assert_allclose(back.root, result.root)
    np.testing.assert_allclose(back.root_hypotheses, result.root_hypotheses)
    doc = json.loads(js.read_text())
    jsonschema.validate(doc, prediction_schema())
    person = doc["frames"][2]["people"][0]
    np.testing.assert_allclose(person["root"], result.root[2], atol=1e-5)
    assert len(person["root_hypotheses"]) == 3 and len(person["root_std"]) == 3
    assert doc["meta"]["camera"]["focal_source"] == "default" and "root_frame" in doc


def test_the_api_places_every_row(tiny_bundle):
    from diffpose3d.inference.api import DiffPose

    model = DiffPose.load(str(tiny_bundle))
    result, _ = placed_result(4)
    kp = result.keypoints_2d[:, :15]  # the tiny bundle's layout is humaneva15
    res = model.from_keypoints(kp, image_size=(800, 600), focal=FOCAL)
    assert res.root.shape == (4, 3) and res.root_hypotheses.shape == (4, res.num_hypotheses, 3)
    placed = np.isfinite(res.root).all(1)  # an untrained model's pose may fit no camera: NaN, never behind it
    assert (res.root[placed, 2] > 0).all() and np.isfinite(res.root_hypotheses).any()
    assert res.meta["camera"]["focal_px"] == FOCAL
