"""The high-level API and the output files, on a tiny untrained model (shapes and contracts, not accuracy)."""

import json

import jsonschema
import numpy as np
import pytest

from diffpose3d.inference.api import DiffPose
from diffpose3d.inference.outputs import load_result_npz, prediction_schema, write_result


def _coco_keypoints(t=3):
    rng = np.random.default_rng(0)
    kp = rng.uniform(100, 400, size=(t, 17, 2)).astype(np.float32)
    conf = np.ones((t, 17), np.float32)
    conf[:, 15] = 0.0  # left ankle missing
    return kp, conf


def test_from_keypoints_shapes_and_flags(tiny_bundle):
    model = DiffPose.load(str(tiny_bundle))
    kp, conf = _coco_keypoints()
    res = model.from_keypoints(kp, conf, image_size=(640, 480), layout="coco17")
    assert res.pose_3d.shape == (3, 15, 3) and res.hypotheses.shape == (3, 4, 15, 3)
    assert res.covariance.shape == (3, 15, 3, 3) and res.uncertainty.shape == (3, 15)
    assert np.allclose(res.pose_3d[:, 0], 0) and np.isfinite(res.hypotheses).all()
    ankle = res.joint_names.index("l_ankle")
    assert res.missing[:, ankle].all() and not res.missing[:, res.joint_names.index("r_ankle")].any()
    assert (res.uncertainty >= 0).all()


def test_from_keypoints_treats_garbage_coordinates_as_missing(tiny_bundle):
    model = DiffPose.load(str(tiny_bundle))
    kp, conf = _coco_keypoints()
    conf[:] = 1.0
    kp[0, 16] = np.inf  # right ankle, frame 0
    kp[1, 16] = 1e30  # finite but absurd
    kp[2, 16, 0] = np.nan
    res = model.from_keypoints(kp, conf, image_size=(640, 480), layout="coco17")
    assert np.isfinite(res.pose_3d).all() and np.isfinite(res.hypotheses).all()
    assert res.missing[:, res.joint_names.index("r_ankle")].all()


def test_same_seed_same_output(tiny_bundle):
    kp, conf = _coco_keypoints()
    a = DiffPose.load(str(tiny_bundle)).from_keypoints(kp, conf, image_size=(640, 480), layout="coco17")
    b = DiffPose.load(str(tiny_bundle)).from_keypoints(kp, conf, image_size=(640, 480), layout="coco17")
    c = DiffPose.load(str(tiny_bundle), seed=1).from_keypoints(kp, conf, image_size=(640, 480), layout="coco17")
    assert np.array_equal(a.hypotheses, b.hypotheses)
    assert not np.array_equal(a.hypotheses, c.hypotheses)


def test_from_gmm_and_heatmaps(tiny_bundle):
    model = DiffPose.load(str(tiny_bundle))
    gmm = np.zeros((2, 15, 3, 5), np.float32)
    gmm[..., 0] = [0.7, 0.3, 0.0]
    gmm[..., 1:3] = np.random.default_rng(1).uniform(100, 500, size=(2, 15, 3, 2))
    gmm[..., 3:5] = 16.0
    res = model.from_gmm(gmm, image_size=(640, 480))
    assert res.pose_3d.shape == (2, 15, 3)
    heat = np.zeros((1, 15, 16, 16), np.float32)
    heat[0, :, 8, 8] = 1.0
    affine = np.array([[[10.0, 0, 200], [0, 10.0, 100]]])
    res = model.from_heatmaps(heat, affine, image_size=(640, 480), layout="humaneva15")
    assert np.allclose(res.keypoints_2d[0, 1], [280.0, 180.0], atol=1.0)


def test_output_files_validate_and_round_trip(tiny_bundle, tmp_path):
    model = DiffPose.load(str(tiny_bundle))
    kp, conf = _coco_keypoints(2)
    res = model.from_keypoints(kp, conf, image_size=(640, 480), layout="coco17")
    npz, js = write_result(res, tmp_path, "clip")
    doc = json.loads(js.read_text())
    jsonschema.validate(doc, prediction_schema())
    assert doc["num_frames"] == 2 and doc["joint_names"] == res.joint_names
    back = load_result_npz(npz)
    assert np.allclose(back.pose_3d, res.pose_3d) and back.joint_names == res.joint_names
    assert back.meta["layout"] == "humaneva15"
    bad = dict(doc, units="mm")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, prediction_schema())


def test_keypoints_that_do_not_fit_the_layout_are_refused_in_words(tiny_bundle):
    from diffpose3d.errors import ConfigError

    model = DiffPose.load(str(tiny_bundle))
    kp15 = np.random.default_rng(0).uniform(100, 400, (1, 15, 2)).astype(np.float32)
    with pytest.raises(ConfigError, match=r"keypoints of shape \(1, 15, 2\) do not fit layout 'coco17': expected \(T, 17, 2\)"):
        model.from_keypoints(kp15, None, image_size=(640, 480), layout="coco17")
    with pytest.raises(ConfigError, match="unknown layout 'coco18'"):
        model.from_keypoints(kp15, None, image_size=(640, 480), layout="coco18")
    res = model.from_keypoints(kp15, None, image_size=(640, 480))  # the model's own layout
    assert res.pose_3d.shape == (1, model.model.skeleton.num_joints, 3) and model.layout == res.meta["layout"]


def test_from_evidence_lifts_each_person_as_their_own_sequence(tiny_bundle, tmp_path):
    from diffpose3d.inference.inputs import read_input

    rng = np.random.default_rng(2)
    kp = np.full((2, 4, 17, 3), np.nan)
    kp[0, :, :, :2] = rng.uniform(50, 250, (4, 17, 2))
    kp[1, 1:3, :, :2] = rng.uniform(350, 550, (2, 17, 2))
    kp[..., 2] = np.where(np.isnan(kp[..., 0]), np.nan, 0.9)
    np.savez(tmp_path / "two.npz", keypoints=kp, image_size=np.array([640, 480]), layout=np.array("coco17"))
    model = DiffPose.load(str(tiny_bundle), precision="fp32")  # bf16 rounding depends on the batch
    evidence = read_input(tmp_path / "two.npz", layout=model.layout)
    res = model.from_evidence(evidence)
    np.testing.assert_array_equal(res.frame_indices, [0, 1, 1, 2, 2, 3])
    np.testing.assert_array_equal(res.person_ids, [0, 0, 1, 0, 1, 0])
    alone = model.from_evidence(evidence.select(evidence.rows_of(1)))
    np.testing.assert_allclose(res.person(1).pose_3d, alone.pose_3d, atol=1e-5)  # lifted on its own
    assert res.people == [0, 1] and res.meta["num_input_frames"] == 4
    npz, js = write_result(res, tmp_path / "out", "two")
    back = load_result_npz(npz)
    np.testing.assert_array_equal(back.person_ids, res.person_ids)
    doc = json.loads(js.read_text())
    jsonschema.validate(doc, prediction_schema())
    assert [len(f["people"]) for f in doc["frames"]] == [1, 2, 2, 1] and doc["num_people"] == 2
