"""evaluate_sequences on synthetic sequences: exact zeros, analytical offsets, protocol tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffpose3d.data.base import PoseSequence
from diffpose3d.errors import InputFileError
from diffpose3d.evaluation.tables import evaluate_sequences


def _sequence(subject: str, action: str, name: str, cam: int, joints: int, frames: int = 12,
              seed: int = 0, skeleton: str = "h36m17", valid: np.ndarray | None = None) -> PoseSequence:
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=0.3, size=(frames, joints, 3)) + np.array([0.0, 0.0, 5.0])
    return PoseSequence(
        dataset="test", subject=subject, action=action, name=name, camera_index=cam, skeleton=skeleton,
        keypoints_2d=rng.normal(size=(frames, joints, 2)), image_size=(1000, 1000),
        pose_3d=pose.astype(np.float32), valid=valid,
    )


def _h36m_sequences() -> list[PoseSequence]:
    return [_sequence(s, a, f"{a} {i}".strip(), c, 17, seed=hash((s, a, i, c)) % 1000)
            for s in ("S9", "S11") for a in ("Walking", "Eating") for i in ("", "1") for c in (0, 1)]


def _truth(sequences: list[PoseSequence]) -> dict:
    return {s.key: s.pose_3d.astype(np.float64) for s in sequences}


def test_perfect_predictions_score_zero_everywhere():
    sequences = _h36m_sequences()
    report = evaluate_sequences(sequences, _truth(sequences), protocol="h36m")
    data = report.to_dict()
    json.dumps(data)
    for table in data["tables"].values():
        for row in table["rows"].values():
            for metric, value in row.items():
                expected = {"pck": 100.0, "auc": 100.0 * 30 / 31}.get(metric, 0.0)  # AUC's 0 mm step
                assert value == pytest.approx(expected, abs=1e-6), (metric, value)
    assert report.summary["mpjpe"] == pytest.approx(0.0, abs=1e-9)
    assert report.frames == 16 * 12
    assert list(data["tables"]["per_action"]["rows"]) == ["Eating", "Walking", "Average"]


def test_constant_offset_on_non_root_joints_gives_analytical_errors():
    sequences = _h36m_sequences()
    offset = np.array([0.01, -0.02, 0.02])  # 30 mm
    predictions = {}
    for s in sequences:
        pred = s.pose_3d.astype(np.float64).copy()
        pred[:, 1:] += offset
        predictions[s.key] = pred
    report = evaluate_sequences(sequences, predictions, protocol="h36m")
    expected = 30.0 * 16 / 17  # the root joint has no error
    assert report.summary["mpjpe"] == pytest.approx(expected)
    assert report.summary["mpjve"] == pytest.approx(0.0, abs=1e-9)
    assert report.tables["per_subject"].rows["S9"]["mpjpe"] == pytest.approx(expected)
    assert report.summary["pck"] == pytest.approx(100.0)
    text = report.format_table()
    assert f"{expected:.1f}" in text and "Average" in text


def test_action_average_is_mean_over_actions_not_frames():
    a = _sequence("S9", "Walking", "Walking", 0, 17, frames=10, seed=1)
    b = _sequence("S9", "Eating", "Eating", 0, 17, frames=30, seed=2)
    preds = {a.key: a.pose_3d + np.array([0, 0, 0.0]), b.key: b.pose_3d.astype(np.float64).copy()}
    preds[a.key][:, 1:] += np.array([0.017, 0, 0])  # 17 mm on 16 of 17 joints -> 16 mm
    report = evaluate_sequences([a, b], preds, protocol="h36m")
    assert report.tables["per_action"].rows["Walking"]["mpjpe"] == pytest.approx(16.0)
    assert report.summary["mpjpe"] == pytest.approx(8.0)  # (16 + 0) / 2, not 16 * 10 / 40
    assert report.tables["per_subject"].rows["S9"]["mpjpe"] == pytest.approx(4.0)


def test_humaneva_cells_and_summary():
    sequences = [_sequence(s, a, f"{a} 1 chunk{k}", c, 15, seed=i, skeleton="humaneva15")
                 for i, (s, a, k, c) in enumerate(
                     (s, a, k, c) for s in ("S1", "S2") for a in ("Walk", "Jog") for k in (0, 1) for c in (0, 2))]
    report = evaluate_sequences(sequences, _truth(sequences), protocol="humaneva")
    grid = report.tables["p_mpjpe_action_subject"]
    assert grid.columns == ["S1", "S2"] and list(grid.rows) == ["Walk", "Jog"]
    assert grid.rows["Jog"]["S2"] == pytest.approx(0.0, abs=1e-6)
    assert report.summary["p_mpjpe"] == pytest.approx(0.0, abs=1e-6)


def test_3dhp_valid_mask_excludes_frames():
    valid = np.array([True] * 6 + [False] * 6)
    seq = _sequence("TS1", "TS1", "TS1", 0, 17, valid=valid, skeleton="mpi3dhp17")
    pred = seq.pose_3d.astype(np.float64).copy()
    pred[~valid, 1:] += 1.0  # 1 m errors on invalid frames only
    report = evaluate_sequences([seq], {seq.key: pred}, protocol="3dhp")
    assert report.frames == 6
    assert report.summary["mpjpe"] == pytest.approx(0.0, abs=1e-6)
    assert report.summary["pck"] == pytest.approx(100.0)
    assert report.summary["auc"] == pytest.approx(100.0 * 30 / 31)


def test_hypotheses_give_best_of_n_and_calibration():
    sequences = _h36m_sequences()[:4]
    rng = np.random.default_rng(3)
    predictions = {}
    for s in sequences:
        gt = s.pose_3d.astype(np.float64)
        hyps = gt[:, None] + rng.normal(scale=0.02, size=(len(gt), 8, 17, 3))
        hyps[:, 0] = gt  # one perfect hypothesis
        predictions[s.key] = hyps
    report = evaluate_sequences(sequences, predictions, protocol="h36m")
    assert report.hypotheses == 8
    assert report.summary["best_mpjpe"] == pytest.approx(0.0, abs=1e-6)
    assert report.summary["mpjpe"] > 1.0
    cal = report.calibration
    assert set(cal["coverage"]) == {"0.5", "0.68", "0.9", "0.95"}
    assert 0.5 < cal["coverage"]["0.95"] <= 1.0
    assert "calibration" in report.format_table()


def test_sh_16_joint_predictions_drop_neck_nose():
    seq = _sequence("S9", "Walking", "Walking", 0, 17)
    pred = np.delete(seq.pose_3d, 9, axis=1)
    report = evaluate_sequences([seq], {seq.key: pred}, protocol="h36m")
    assert report.summary["mpjpe"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [(lambda p: p[:-1], "frames"), (lambda p: p[:, :15], "joints"), (lambda p: p[..., :2], "shape")],
)
def test_bad_predictions_name_the_key(change, message):
    seq = _sequence("S9", "Walking", "Walking 1", 2, 17)
    with pytest.raises(InputFileError) as err:
        evaluate_sequences([seq], {seq.key: change(seq.pose_3d)}, protocol="h36m", source="p.npz")
    assert "('S9', 'Walking 1', 2)" in str(err.value) and message in str(err.value)
    assert str(err.value).startswith("p.npz: ")


def test_missing_prediction_is_reported():
    seq = _sequence("S9", "Walking", "Walking 1", 2, 17)
    with pytest.raises(InputFileError, match="no prediction for 1 of 1"):
        evaluate_sequences([seq], {}, protocol="h36m")
