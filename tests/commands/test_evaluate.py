"""`diffpose3d evaluate` end to end on small files in the public layouts (and the real HumanEva)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffpose3d.cameras import load_h36m_cameras, load_humaneva_cameras, world_to_camera
from diffpose3d.cli import main
from diffpose3d.data.humaneva import load_humaneva
from diffpose3d.errors import InputFileError
from diffpose3d.evaluation.predictions import predictions_from_file
from diffpose3d.skeleton import H36M32_TO_17

FRAMES = 20


def _world(joints: int, centre: list[float], seed: int) -> np.ndarray:
    """A moving point cloud of `joints` points in front of every camera (world metres)."""
    rng = np.random.default_rng(seed)
    drift = np.linspace(0, 0.3, FRAMES)[:, None, None] * np.array([1.0, 0.5, 0.0])
    return (np.array(centre) + rng.normal(scale=0.3, size=(1, joints, 3)) + drift
            + rng.normal(scale=0.01, size=(FRAMES, joints, 3))).astype(np.float32)


@pytest.fixture()
def humaneva_file(tmp_path: Path) -> tuple[Path, dict]:
    positions = {
        f"{split}/{s}": {f"{a} 1 chunk0": _world(15, [0.0, 0.0, 1.0], seed=i * 7 + j)
                         for j, a in enumerate(("Walking", "Jog", "Box", "Gestures"))}
        for i, (split, s) in enumerate((sp, s) for sp in ("Train", "Validate") for s in ("S1", "S2", "S3"))
    }
    path = tmp_path / "data_3d_humaneva15.npz"
    np.savez(path, positions_3d=positions)
    return path, positions


@pytest.fixture()
def h36m_file(tmp_path: Path) -> tuple[Path, dict]:
    positions = {s: {a: _world(32, [0.0, 0.0, 0.9], seed=i * 5 + j)
                     for j, a in enumerate(("Walking 1", "Walking", "Eating 2", "Directions"))}
                 for i, s in enumerate(("S1", "S9", "S11"))}
    path = tmp_path / "data_3d_h36m.npz"
    np.savez(path, positions_3d=positions)
    return path, positions


def _camera_frame(positions: dict, cameras: dict, keep: list[int] | None = None) -> dict:
    """Ground truth moved to every camera's frame, in the predictions layout."""
    out: dict = {}
    for key, actions in positions.items():
        subject = key.rpartition("/")[2]
        out[key] = {}
        for action, world in actions.items():
            pose = world if keep is None else world[:, keep]
            out[key][action] = [world_to_camera(pose.astype(np.float64), c.orientation, c.translation)
                                for c in cameras[subject]]
    return out


def _run(tmp_path: Path, predictions: dict, dataset: str, data: Path, *extra: str,
         units: str = "m") -> tuple[int, dict | None]:
    pred_path = tmp_path / "predictions.npz"
    np.savez(pred_path, positions_3d=predictions, units=units)
    out = tmp_path / "report.json"
    if out.exists():
        out.unlink()
    code = main(["evaluate", "--predictions", str(pred_path), "--dataset", dataset,
                 "--data-3d", str(data), "--out", str(out), *extra])
    return code, (json.loads(out.read_text()) if out.exists() else None)


def _all_values(report: dict) -> list[tuple[str, float]]:
    values = list(report["summary"].items())
    for table in report["tables"].values():
        for row in table["rows"].values():
            values += list(row.items())
    return values


def _assert_perfect(report: dict) -> None:
    for metric, value in _all_values(report):
        if metric == "pck":
            assert value == pytest.approx(100.0)
        elif metric == "auc":
            assert value == pytest.approx(100.0 * 30 / 31)  # the 0 mm threshold never counts
        else:
            assert value == pytest.approx(0.0, abs=1e-3), metric


def test_humaneva_truth_scores_zero(tmp_path, humaneva_file, capsys):
    data, positions = humaneva_file
    truth = _camera_frame(positions, load_humaneva_cameras())
    code, report = _run(tmp_path, truth, "humaneva", data)
    assert code == 0
    _assert_perfect(report)
    grid = report["tables"]["p_mpjpe_action_subject"]
    assert list(grid["rows"]) == ["Walk", "Jog", "Box"] and grid["columns"] == ["S1", "S2", "S3"]
    assert report["sequences"] == 3 * 3 * 3  # Validate only, Walk/Jog/Box, 3 cameras
    printed = capsys.readouterr().out
    assert "P-MPJPE per action x subject" in printed and "Walk    0.0  0.0  0.0" in printed


def test_h36m_offset_gives_analytical_mpjpe(tmp_path, h36m_file, capsys):
    data, positions = h36m_file
    predictions = _camera_frame(positions, load_h36m_cameras(), keep=H36M32_TO_17)
    offset = np.array([0.012, -0.016, 0.0])  # 20 mm on every non-root joint
    for actions in predictions.values():
        for cams in actions.values():
            for pose in cams:
                pose[:, 1:] += offset
    code, report = _run(tmp_path, predictions, "h36m", data)
    assert code == 0
    expected = 20.0 * 16 / 17
    assert report["summary"]["mpjpe"] == pytest.approx(expected, abs=1e-3)
    assert report["summary"]["mpjve"] == pytest.approx(0.0, abs=1e-3)
    assert set(report["tables"]["per_subject"]["rows"]) == {"S9", "S11", "All frames"}
    assert list(report["tables"]["per_action"]["rows"]) == ["Directions", "Eating", "Walking", "Average"]
    assert report["inputs"]["filters"]["subjects"] == ["S9", "S11"]
    assert f"{expected:.1f}" in capsys.readouterr().out


def test_millimetre_units_and_hypotheses(tmp_path, h36m_file):
    data, positions = h36m_file
    truth = _camera_frame(positions, load_h36m_cameras(), keep=H36M32_TO_17)
    rng = np.random.default_rng(0)
    hyps = {s: {a: [1000.0 * (p[:, None] + rng.normal(scale=0.01, size=(FRAMES, 6, 17, 3))) for p in cams]
                for a, cams in acts.items()} for s, acts in truth.items()}
    code, report = _run(tmp_path, hyps, "h36m", data, "--subjects", "S9", "--cameras", "0,3", units="mm")
    assert code == 0
    assert report["hypotheses"] == 6 and report["sequences"] == 4 * 2
    assert 5.0 < report["summary"]["mpjpe"] < 20.0
    assert report["summary"]["best_mpjpe"] > 0.0
    coverage = report["calibration"]["coverage"]
    assert list(coverage) == ["0.5", "0.68", "0.9", "0.95"]
    assert 0.0 < coverage["0.5"] < coverage["0.95"] <= 1.0


def test_bad_predictions_exit_2_with_the_key(tmp_path, h36m_file, capsys):
    data, positions = h36m_file
    truth = _camera_frame(positions, load_h36m_cameras(), keep=H36M32_TO_17)
    truth["S9"]["Eating 2"][1] = truth["S9"]["Eating 2"][1][:-2]
    code, report = _run(tmp_path, truth, "h36m", data)
    err = capsys.readouterr().err
    assert code == 2 and report is None
    assert "('S9', 'Eating 2', 1)" in err and "18 frames" in err and len(err.strip().splitlines()) == 1
    del truth["S11"]
    code, _ = _run(tmp_path, truth, "h36m", data)
    assert code == 2 and "no prediction for" in capsys.readouterr().err


def test_predictions_file_must_hold_positions(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, poses=np.zeros(3))
    code = main(["evaluate", "--predictions", str(path), "--dataset", "h36m", "--data-3d", str(path),
                 "--out", str(tmp_path / "r.json")])
    assert code == 2
    np.savez(path, positions_3d={"S9": {"Walking": np.zeros((4, 17, 3))}})
    with pytest.raises(InputFileError, match="one array per camera"):
        predictions_from_file(path)


def test_real_humaneva_truth_scores_zero(tmp_path, humaneva_dir):
    data = humaneva_dir / "data_3d_humaneva15_train.npz"
    sequences = load_humaneva(data, split="Train", actions=["Walk", "Jog", "Box"])
    predictions: dict = {}
    for seq in sequences:
        cams = predictions.setdefault(f"Train/{seq.subject}", {}).setdefault(seq.name, [None] * 3)
        cams[seq.camera_index] = seq.pose_3d
    code, report = _run(tmp_path, predictions, "humaneva", data, "--split", "Train")
    assert code == 0
    _assert_perfect(report)
    assert report["sequences"] == len(sequences)
    assert set(report["tables"]["p_mpjpe_action_subject"]["columns"]) == {"S1", "S2", "S3"}


def test_3dhp_scores_valid_frames_only(tmp_path):
    from diffpose3d.skeleton import MPI3DHP_RAW_TO_17

    rng = np.random.default_rng(4)
    raw_mm = rng.normal(scale=300.0, size=(FRAMES, 17, 3)) + np.array([0.0, 0.0, 4000.0])
    valid = np.arange(FRAMES) % 4 != 0
    data = tmp_path / "data_test_3dhp.npz"
    np.savez(data, data={"TS1": {"data_3d": raw_mm, "data_2d": rng.uniform(0, 2048, size=(FRAMES, 17, 2)),
                                 "valid": valid.astype(float)}})
    pred = raw_mm[:, MPI3DHP_RAW_TO_17] / 1000.0
    pred[~valid, 1:] += 0.5  # large errors on invalid frames only
    code, report = _run(tmp_path, {"TS1": {"TS1": [pred]}}, "3dhp", data, "--subjects", "TS1")
    assert code == 0
    assert report["frames"] == int(valid.sum())
    _assert_perfect(report)
    assert list(report["tables"]) == ["per_subject"]


def test_a_negative_offset_is_one_line_before_any_work(tmp_path, capsys):
    code = main(["evaluate", "--predictions", str(tmp_path / "absent.npz"), "--dataset", "h36m",
                 "--data-3d", str(tmp_path / "absent.npz"), "--stride", "10", "--offset", "-1",
                 "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--offset" in err and len(err.splitlines()) == 1


def test_block_needs_a_checkpoint_and_cuts_as_its_training_did(tmp_path, h36m_file, tiny_bundle, capsys):
    data, _ = h36m_file
    args = ["evaluate", "--dataset", "h36m", "--data-3d", str(data), "--subjects", "all", "--block", "val",
            "--out", str(tmp_path / "r.json")]
    code = main(args[:1] + ["--predictions", str(data)] + args[1:])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--block needs --checkpoint" in err and len(err.splitlines()) == 1

    import argparse
    import shutil
    from dataclasses import replace

    from diffpose3d.bundle import bundle_config
    from diffpose3d.commands.evaluate import sequences_to_score
    from diffpose3d.config import save_config
    from diffpose3d.data.splits import holdout_split

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    _, config = bundle_config(bundle)
    save_config(replace(config, data=replace(config.data, holdout_gap_frames=1)), bundle / "config.yaml")
    ns = argparse.Namespace(dataset="h36m", data_3d=str(data), data_2d=None, subjects="all", split=None,
                            actions=None, cameras=None, checkpoint=str(bundle), block="test")
    whole = sequences_to_score(argparse.Namespace(**{**vars(ns), "block": None}))
    _, config = bundle_config(bundle)
    cut = sequences_to_score(ns)
    expected = holdout_split(whole, tuple(config.data.holdout_fractions), config.data.holdout_gap_frames)["test"]
    assert [s.key for s in cut] == [s.key for s in expected] and cut
    assert all(np.array_equal(a.frame_indices, b.frame_indices) for a, b in zip(cut, expected))


def test_one_hypothesis_per_frame_is_a_point_prediction(tmp_path, h36m_file):
    data, positions = h36m_file
    truth = _camera_frame(positions, load_h36m_cameras(), keep=H36M32_TO_17)
    single = {s: {a: [p[:, None] for p in cams] for a, cams in acts.items()} for s, acts in truth.items()}
    code, report = _run(tmp_path, single, "h36m", data)
    assert code == 0 and report["summary"]["mpjpe"] == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("dataset, extra, words", [
    ("h36m", ["--split", "Train"], "--split applies to humaneva only"),
    ("3dhp", ["--split", "Train"], "--split"),
    ("h36m", ["--checkpoint", "TINY", "--steps", "51"], "--steps 51"),
    ("h36m", ["--checkpoint", "TINY", "--device", "bogus"], "--device"),
])
def test_settings_that_do_not_apply_are_one_line_before_any_work(tmp_path, h36m_file, tiny_bundle, capsys,
                                                                  snapshot, dataset, extra, words):
    data, _ = h36m_file
    extra = [str(tiny_bundle) if e == "TINY" else e for e in extra]
    what = [] if "--checkpoint" in extra else ["--predictions", str(tmp_path / "none.npz")]
    before = snapshot(tmp_path)
    code = main(["evaluate", *what, "--dataset", dataset, "--data-3d", str(data), "--out", str(tmp_path / "r.json"), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["device", "fifo", "folder", "link"])
def test_an_out_that_is_not_a_regular_file_is_refused_first(tmp_path, h36m_file, capsys, snapshot, plant, kind):
    data, _ = h36m_file
    out = tmp_path / "report.json"
    (tmp_path / "elsewhere.json").write_text("keep")
    plant(out, kind, tmp_path / "elsewhere.json")
    before = snapshot(tmp_path)
    code = main(["evaluate", "--predictions", str(tmp_path / "missing.npz"), "--dataset", "h36m",
                 "--data-3d", str(data), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(out) in err[0] and "refusing to replace it" in err[0]
    assert snapshot(tmp_path) == before


def test_stride_cuts_a_whole_length_predictions_file_as_the_sequences(tmp_path, h36m_file):
    data, positions = h36m_file
    predictions = _camera_frame(positions, load_h36m_cameras(), keep=H36M32_TO_17)
    for actions in predictions.values():
        for cams in actions.values():
            for pose in cams:
                pose[1::3, 1:] += np.array([0.0, 0.03, 0.0])  # only the frames scored are off, by 30 mm
    code, report = _run(tmp_path, predictions, "h36m", data, "--stride", "3", "--offset", "1")
    assert code == 0
    assert report["summary"]["mpjpe"] == pytest.approx(30.0 * 16 / 17, abs=1e-3)
    strided = {s: {a: [p[1::3] for p in cams] for a, cams in actions.items()} for s, actions in predictions.items()}
    code, again = _run(tmp_path, strided, "h36m", data, "--stride", "3", "--offset", "1")
    assert code == 0 and again["summary"] == report["summary"]
