"""`diffpose3d fit-miss`: the per-joint miss of a 2D source stored under its layout, kept by the
bundle (and by a refit of its out-of-domain model), used by the reprojection widening, refused
cleanly where it cannot be fitted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from diffpose3d.bundle import load_bundle
from diffpose3d.cli import main
from diffpose3d.uncertainty.ood import OutOfDomain


@pytest.fixture()
def bundle_with_ood(tmp_path) -> Path:
    """A copy of the default bundle (trained, with its out-of-domain model)."""
    from diffpose3d.bundle import default_checkpoint

    folder = tmp_path / "bundle"
    shutil.copytree(default_checkpoint(), folder)
    return folder


@pytest.fixture()
def h36m_3d(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    walk = np.linspace(0, 0.3, 60)[:, None, None] * np.array([1.0, 0.5, 0.0])
    positions = {"S1": {a: (np.array([0.0, 0.0, 0.9]) + rng.normal(scale=0.3, size=(1, 32, 3)) + walk).astype(np.float32)
                        for a in ("Walking", "Eating")}}
    path = tmp_path / "data_3d_h36m.npz"
    np.savez(path, positions_3d=positions)
    return path


def test_the_tolerance_is_stored_under_the_2d_layout_and_survives_loading(bundle_with_ood, h36m_3d, capsys):
    code = main(["fit-miss", "--checkpoint", str(bundle_with_ood), "--dataset", "h36m", "--data-3d", str(h36m_3d),
                 "--subjects", "S1", "--stride", "4", "--offset", "1"])
    assert code == 0
    assert "h36m17: the 97% miss on 120 frames" in capsys.readouterr().out  # 2 takes x 4 cameras x 15 frames
    model, info = load_bundle(bundle_with_ood)
    tolerance = model.out_of_domain.miss_tolerance["h36m17"]
    assert tolerance.shape == (17,) and np.all(tolerance >= 0) and tolerance[1:].max() > 0.001
    record = info["out_of_domain"]["miss_tolerance"]["h36m17"]
    assert record["frames"] == 120 and record["quantile"] == 0.97
    np.testing.assert_allclose(record["tolerance_mm"], tolerance * 1000, atol=0.06)
    json.dumps(info)


def test_a_tolerance_of_another_joint_count_is_refused_on_loading(bundle_with_ood, capsys):
    ood = OutOfDomain.load(bundle_with_ood / "out_of_domain.npz")
    ood.miss_tolerance["h36m16"] = np.zeros(16)  # the model has 17 joints
    ood.save(bundle_with_ood)
    from diffpose3d.commands.demo import bundled_example

    code = main(["predict", str(bundled_example()), "--checkpoint", str(bundle_with_ood), "--out", str(bundle_with_ood / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "out_of_domain.npz" in err and "16 values" in err and "Traceback" not in err


def test_a_bundle_without_an_out_of_domain_model_is_one_line(tiny_bundle, h36m_3d, capsys):
    code = main(["fit-miss", "--checkpoint", str(tiny_bundle), "--dataset", "h36m", "--data-3d", str(h36m_3d)])
    assert code == 2 and "run `diffpose3d fit-ood`" in capsys.readouterr().err


def test_the_widening_counts_only_the_miss_beyond_the_layouts_tolerance(bundle_with_ood, h36m_3d):
    from dataclasses import replace

    from diffpose3d.data.h36m import load_h36m
    from diffpose3d.evaluation.scoring import frames_to_score
    from diffpose3d.inference.lifting import predict_frames

    assert main(["fit-miss", "--checkpoint", str(bundle_with_ood), "--dataset", "h36m", "--data-3d", str(h36m_3d),
                 "--subjects", "S1", "--stride", "2", "--offset", "0"]) == 0
    model, _ = load_bundle(bundle_with_ood)
    frames = frames_to_score(model, load_h36m(h36m_3d), replace(model.config.evidence, source="keypoints"),
                             slice(1, None, 2), 0)
    cfg = replace(model.config.inference, reprojection_widening=1.0)
    tolerated = predict_frames(model, frames, cfg).reprojection_miss
    model.out_of_domain.miss_tolerance.clear()
    raw = predict_frames(model, frames, cfg).reprojection_miss
    assert np.all(tolerated <= raw + 1e-9) and tolerated.mean() < 0.5 * raw.mean()


def test_a_keypoints_file_of_a_layout_with_a_tolerance_is_widened_only_beyond_it(bundle_with_ood):
    from diffpose3d import DiffPose
    from diffpose3d.commands.demo import bundled_example

    with np.load(bundled_example(), allow_pickle=False) as f:
        keypoints, size, layout = f["keypoints"], tuple(int(v) for v in f["image_size"]), str(f["layout"])
    plain = DiffPose.load(str(bundle_with_ood), reprojection_widening=1.0).from_keypoints(
        keypoints, image_size=size, layout=layout)
    ood = OutOfDomain.load(bundle_with_ood / "out_of_domain.npz")
    ood.miss_tolerance[layout] = np.full(17, 1.0)  # a metre: nothing counts
    ood.save(bundle_with_ood)
    tolerant = DiffPose.load(str(bundle_with_ood), reprojection_widening=1.0).from_keypoints(
        keypoints, image_size=size, layout=layout)
    assert plain.reprojection_miss.max() > 0.005 and np.all(tolerant.reprojection_miss == 0.0)
    np.testing.assert_allclose(tolerant.pose_3d, plain.pose_3d, atol=1e-6)


def test_refitting_the_out_of_domain_model_keeps_the_tolerances(bundle_with_ood, h36m_3d_file):
    before, info_before = load_bundle(bundle_with_ood)
    code = main(["fit-ood", "--checkpoint", str(bundle_with_ood), "--data-3d", str(h36m_3d_file), "--data-2d", "none",
                 "--train-samples", "1000", "--calibration-samples", "500", "--shift-samples", "200"])
    assert code == 0
    after, info_after = load_bundle(bundle_with_ood)
    assert not np.array_equal(after.out_of_domain.scale, before.out_of_domain.scale)  # refitted
    assert set(after.out_of_domain.miss_tolerance) == {"h36m16", "h36m17"}
    for layout, tolerance in before.out_of_domain.miss_tolerance.items():
        np.testing.assert_array_equal(after.out_of_domain.miss_tolerance[layout], tolerance)
    assert info_after["out_of_domain"]["miss_tolerance"] == info_before["out_of_domain"]["miss_tolerance"]
