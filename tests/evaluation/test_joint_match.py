"""Cross-dataset scoring: the joints a model layout and a data layout share, and `evaluate
--checkpoint` of a bundle on another dataset's layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffpose3d.evaluation.joint_match import match_joints, restrict_sequence
from diffpose3d.skeleton import get_skeleton

LIMBS_AND_HIPS = {"pelvis", "l_hip", "l_knee", "l_ankle", "r_hip", "r_knee", "r_ankle",
                  "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist"}


def test_h36m_model_on_humaneva_scores_the_13_common_joints_by_name():
    match = match_joints("h36m17", "humaneva15")
    assert set(match.names) == LIMBS_AND_HIPS and match.names[0] == "pelvis"
    model, data = get_skeleton("h36m17"), get_skeleton("humaneva15")
    for name, m, d in zip(match.names, match.model_index, match.data_index):
        assert model.joint_names[m] == name == data.joint_names[d]
    assert not match.identity
    back = match_joints("humaneva15", "h36m17")
    assert set(back.names) == LIMBS_AND_HIPS


def test_stacked_hourglass_16_joints_drop_neck_nose_and_one_layout_is_identity():
    match = match_joints("h36m17", "h36m16")
    assert "neck_nose" not in match.names and len(match.names) == 16
    assert match_joints("h36m17", "h36m17").identity
    # 3DHP's neck/head/head_top are Human3.6M's thorax/neck_nose/head by the keypoint mapping
    assert match_joints("h36m17", "mpi3dhp17").identity


def test_no_shared_root_is_refused():
    with pytest.raises(ValueError, match="root"):
        match_joints("h36m17", "coco17")


def test_restrict_sequence_keeps_the_shared_joints_in_order():
    from diffpose3d.data.base import PoseSequence

    rng = np.random.default_rng(0)
    seq = PoseSequence("humaneva", "S1", "Walk", "Walking 1 chunk0", 0, "humaneva15",
                       rng.normal(size=(3, 15, 2)).astype(np.float32), (640, 480),
                       pose_3d=rng.normal(size=(3, 15, 3)).astype(np.float32))
    match = match_joints("h36m17", "humaneva15")
    cut = restrict_sequence(seq, match)
    assert cut.pose_3d.shape == (3, 13, 3)
    np.testing.assert_array_equal(cut.pose_3d[:, 1], seq.pose_3d[:, match.data_index[1]])


@pytest.mark.parametrize("evidence", ["keypoints", "synthetic"])
def test_evaluate_a_bundle_on_another_layout(tmp_path, tiny_bundle, evidence, capsys):
    """The tiny bundle lifts humaneva15; Human3.6M's 17 joints are converted to its layout (2D in,
    13 shared joints scored), with the calibration tables."""
    from diffpose3d.cli import main

    rng = np.random.default_rng(0)
    drift = np.linspace(0, 0.3, 12)[:, None, None]
    positions = {s: {a: (np.array([0.0, 0.0, 0.9]) + rng.normal(scale=0.3, size=(1, 32, 3)) + drift).astype(np.float32)
                     for a in ("Walking 1", "Eating 2")} for s in ("S9", "S11")}
    data = tmp_path / "data_3d_h36m.npz"
    np.savez(data, positions_3d=positions)
    out = tmp_path / "r.json"
    code = main(["evaluate", "--checkpoint", str(tiny_bundle), "--dataset", "h36m", "--data-3d", str(data),
                 "--cameras", "0", "--evidence", evidence, "--calibration-samples", "4",
                 "--calibration-frames", "10", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "13 shared joints scored" in text
    report = json.loads(out.read_text())
    diff = report["diffpose"]
    assert set(diff["joints"]["joints"]) == LIMBS_AND_HIPS
    assert diff["joints"]["model_layout"] == "humaneva15" and diff["joints"]["data_layout"] == "h36m17"
    assert np.isfinite(diff["summary"]["mpjpe"]) and "quantile_calibration" in diff["calibration"]
