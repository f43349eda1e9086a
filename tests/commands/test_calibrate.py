"""`diffpose3d calibrate`: a setting that would make the bundle unusable is refused before anything
is written, and every bundle is loaded back before it replaces the previous one."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from diffpose3d.bundle import load_bundle, save_bundle
from diffpose3d.cli import main
from diffpose3d.errors import ConfigError, OutputFileError
from diffpose3d.evaluation.calibration import usable_scale


@pytest.mark.parametrize("extra", [["--level", "1e-320"], ["--level", "0.9999999999999999999"], ["--level", "nan"],
                                   ["--device", "bogus"], ["--device", "cuda:99"]])
def test_a_setting_that_would_spoil_the_bundle_is_refused_before_anything(tiny_bundle, tmp_path, capsys, snapshot, extra):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    before = snapshot(tmp_path)
    code = main(["calibrate", "--checkpoint", str(bundle), "--dataset", "h36m", "--data-3d", str(tmp_path / "none.npz"),
                 *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert extra[0] in err[0] and "Traceback" not in err[0]
    assert snapshot(tmp_path) == before
    load_bundle(bundle)


@pytest.mark.parametrize("bad", [np.inf, np.nan, 0.0, -1.0, 1e300])
def test_a_conformal_scale_that_is_not_positive_and_finite_as_stored_is_refused(bad):
    with pytest.raises(ConfigError, match="not a positive finite number"):
        usable_scale(np.array([1.0, bad, 2.0]), torch.float32, 1e-300)
    assert usable_scale(np.array([1.0, 0.5]), torch.float32, 0.9).tolist() == [1.0, 0.5]


def test_a_bundle_that_would_not_load_back_leaves_the_previous_one(tiny_bundle, tmp_path, snapshot):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    model, info = load_bundle(bundle)
    before = snapshot(tmp_path)
    model.conformal_scale.fill_(float("inf"))
    with pytest.raises(OutputFileError, match="would not load back"):
        save_bundle(model, model.config, bundle, {**info, "conformal": {"level": 1e-320}})
    assert snapshot(tmp_path) == before  # no staging folder left, the old files untouched
    model.conformal_scale.fill_(1.5)
    save_bundle(model, model.config, bundle, info)
    assert float(load_bundle(bundle)[0].conformal_scale[1]) == 1.5


def test_calibrate_fits_the_radial_shape_and_keeps_mean_pose_and_spread(tiny_bundle, tmp_path, humaneva_dir, capsys):
    from dataclasses import replace

    from diffpose3d.data.frames import build_frames
    from diffpose3d.data.humaneva import load_humaneva
    from diffpose3d.inference.lifting import predict_frames

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    data_3d = humaneva_dir / "data_3d_humaneva15_train.npz"
    code = main(["calibrate", "--checkpoint", str(bundle), "--dataset", "humaneva", "--data-3d", str(data_3d),
                 "--split", "Train", "--subjects", "S1", "--actions", "Walk", "--stride", "50",
                 "--radial-samples", "16", "--radial-frames", "20"])
    out, err = capsys.readouterr()
    assert code == 0 and "radial shape on 20 frames x 16 hypotheses" in out, err
    model, info = load_bundle(bundle)
    radial = info["conformal"]["radial"]
    assert 0 <= radial["ece_after"] <= 1 and 0 <= radial["ece_before"] <= 1  # untrained: no gain to expect
    assert not torch.allclose(model.radial_map[0], model.radial_map[1])  # not the identity
    np.testing.assert_allclose(model.radial_map.numpy(), [radial["from"], radial["to"]], atol=1e-3)
    # the map moves the hypotheses, never their mean (the pose) nor their spread
    frames = build_frames(load_humaneva(data_3d, subjects="S1", actions="Walk", stride=97), model.skeleton,
                          model.config.evidence, seed_offset=5)
    assert model.config.inference.keep_bones and info["conformal"]["keep_bones"]  # calibrate switches it on
    cfg = replace(model.config.inference, seed=3, keep_bones=False)  # the map alone
    shaped = predict_frames(model, frames, cfg)
    model.radial_map.copy_(torch.stack([model.radial_map[0], model.radial_map[0]]))
    plain = predict_frames(model, frames, cfg)
    np.testing.assert_allclose(shaped.pose, plain.pose, atol=1e-5)
    # kept in g's state units; the 3D comes out of them through the person frame, within 2 %
    np.testing.assert_allclose(shaped.spread, plain.spread, rtol=0.02)
    assert not np.allclose(shaped.hypotheses, plain.hypotheses, atol=1e-5)


def test_one_radial_sample_is_refused(tiny_bundle, tmp_path, capsys):
    code = main(["calibrate", "--checkpoint", str(tiny_bundle), "--dataset", "h36m", "--data-3d", str(tmp_path / "x.npz"),
                 "--radial-samples", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--radial-samples" in err[0], err


def test_new_subjects_carry_the_development_runs_ratio_and_shape(tiny_bundle, tmp_path):
    from diffpose3d.evaluation.scoring import shift_to_new_subjects

    folders = {}
    for name, scale, top in (("target", 0.5, 4.0), ("blocks", 1.0, 4.0), ("subject", 2.0, 6.0)):
        folders[name] = tmp_path / name
        shutil.copytree(tiny_bundle, folders[name])
        model, info = load_bundle(folders[name])
        model.conformal_scale.fill_(scale)
        model.conformal_scale[3] = scale * (3.0 if name == "subject" else 1.0)
        model.radial_map[1] = torch.linspace(0.0, top, model.radial_map.shape[1])
        save_bundle(model, model.config, folders[name], {**info, "conformal": {"level": 0.9}})
    target = tmp_path / "copy"
    shutil.copytree(folders["target"], target)
    shift = shift_to_new_subjects(folders["target"], [(folders["blocks"], folders["subject"])])
    model, info = load_bundle(folders["target"])
    expected = torch.full_like(model.conformal_scale, 1.0)
    expected[3] = 3.0
    torch.testing.assert_close(model.conformal_scale, expected)
    torch.testing.assert_close(model.radial_map, load_bundle(folders["subject"])[0].radial_map)
    assert shift["ratio"][3] == 6.0 and info["conformal"]["new_subjects"]["scale"][3] == 3.0
    # two development runs: the geometric mean of their ratios (2 x 6 and 2 x 1 -> 2 x sqrt(6))
    shift = shift_to_new_subjects(target, [(folders["blocks"], folders["subject"]), (folders["blocks"], folders["blocks"])])
    np.testing.assert_allclose(shift["ratio"][3], 6.0**0.5, atol=1e-4)
    np.testing.assert_allclose(float(load_bundle(target)[0].conformal_scale[3]), 0.5 * 6.0**0.5, rtol=1e-5)


def test_new_subjects_must_name_bundle_folders(tiny_bundle, tmp_path, capsys, snapshot):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    before = snapshot(tmp_path)
    code = main(["calibrate", "--checkpoint", str(bundle), "--dataset", "h36m", "--data-3d", str(tmp_path / "x.npz"),
                 "--new-subjects", str(bundle), str(tmp_path / "nowhere")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "nowhere" in err[0] and "--new-subjects" in err[0], err
    code = main(["calibrate", "--checkpoint", str(bundle), "--dataset", "h36m", "--data-3d", str(tmp_path / "x.npz"),
                 "--new-subjects", str(bundle), str(bundle), str(bundle)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pairs" in err[0] and "--new-subjects" in err[0], err
    assert snapshot(tmp_path) == before
