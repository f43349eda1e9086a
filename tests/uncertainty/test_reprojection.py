"""The per-joint reprojection miss: zero where the 3D projects onto its 2D, the offset of a joint the
2D puts elsewhere (in metres at the person's depth), and nothing the evidence's own noise explains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpose3d.evidence.mixture2d import point_mixture
from diffpose3d.uncertainty.reprojection import excess_miss, fit_tolerance, sequence_floor, widening_factors


def _seen(frames: int = 3, depth: float = 4.0, focal: float = 2.0, seed: int = 0):
    """Root-relative poses `(F, 17, 3)` and their exact 2D in the model's uv at `depth` metres."""
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=0.3, size=(frames, 17, 3))
    pose -= pose[:, :1]
    placed = pose + np.array([0.1, -0.2, depth])
    uv = focal * placed[..., :2] / placed[..., 2:3]
    return pose, uv, np.full(frames, focal)


def test_a_pose_that_projects_onto_its_2d_misses_nothing():
    pose, uv, focal = _seen()
    gmm = point_mixture(torch.as_tensor(uv, dtype=torch.float32), 1e-4)
    np.testing.assert_allclose(excess_miss(pose, uv, gmm, focal), 0.0, atol=1e-3)


def test_a_joint_the_2d_puts_elsewhere_is_missed_by_its_offset_in_metres():
    pose, uv, focal = _seen(depth=4.0, focal=2.0)
    moved = uv.copy()
    moved[:, 5, 0] += 2.0 * 0.06 / 4.0  # 6 cm sideways at 4 m, through f = 2
    gmm = point_mixture(torch.as_tensor(moved, dtype=torch.float32), 1e-4)
    miss = excess_miss(pose, moved, gmm, focal)
    # the root fit takes a little of the offset (one joint of 17), and the miss is read at the root's depth
    np.testing.assert_allclose(miss[:, 5], 0.06, rtol=0.2)
    assert np.all(np.delete(miss, 5, axis=1) < 0.015)
    # evidence as broad as the offset explains it: nothing left to widen for
    broad = point_mixture(torch.as_tensor(moved, dtype=torch.float32), 2.0 * 0.08 / 4.0)
    assert np.all(excess_miss(pose, moved, broad, focal)[:, 5] < 0.02)



def test_a_tolerance_leaves_the_miss_a_source_always_shows_and_counts_the_rest_in_quadrature():
    pose, uv, focal = _seen(depth=4.0, focal=2.0)
    moved = uv.copy()
    moved[:, 5, 0] += 2.0 * 0.06 / 4.0
    gmm = point_mixture(torch.as_tensor(moved, dtype=torch.float32), 1e-4)
    miss = excess_miss(pose, moved, gmm, focal)
    tolerance = np.zeros(17)
    tolerance[5] = 0.5 * miss[0, 5]
    within = excess_miss(pose, moved, gmm, focal, tolerance)
    np.testing.assert_allclose(within[:, 5], np.sqrt(miss[:, 5] ** 2 - tolerance[5] ** 2), rtol=1e-9)
    np.testing.assert_allclose(np.delete(within, 5, axis=1), np.delete(miss, 5, axis=1))
    assert np.all(excess_miss(pose, moved, gmm, focal, np.full(17, 0.2)) == 0.0)


def test_the_tolerance_is_the_quantile_of_held_out_misses_per_joint():
    miss = np.random.default_rng(0).exponential(size=(1000, 3)) * np.array([0.01, 0.02, 0.05])
    np.testing.assert_allclose(fit_tolerance(miss, 0.9), [np.quantile(miss[:, j], 0.9) for j in range(3)])

def test_a_sequence_raises_each_frame_to_its_median_miss_and_a_lone_frame_keeps_its_own():
    rng = np.random.default_rng(1)
    miss = rng.exponential(0.02, size=(9, 4))
    miss[6, 2] = 0.5  # one frame's slip in the first sequence
    sequences = [np.array([0, 2, 4, 6]), np.array([1, 3, 5, 7]), np.array([8])]
    floored = sequence_floor(miss, sequences)
    for rows in sequences:
        for j in range(4):
            median = sorted(miss[rows, j])[len(rows) // 2 - 1: len(rows) // 2 + 1]
            expected = [max(v, sum(median) / 2 if len(rows) > 1 else v) for v in miss[rows, j]]
            np.testing.assert_allclose(floored[rows, j], expected)
    np.testing.assert_array_equal(floored[8], miss[8])
    assert floored[6, 2] == 0.5 and np.all(floored[[0, 2, 4], 2] < 0.5)  # the slip stays in its frame
    assert np.all(floored >= miss)


def test_too_few_seen_joints_widen_nothing():
    pose, uv, focal = _seen()
    gmm = point_mixture(torch.as_tensor(uv, dtype=torch.float32), 1e-4)
    uv = uv.copy()
    uv[:, 3:] = np.nan
    assert np.all(excess_miss(pose, uv, gmm, focal) == 0.0)


def test_the_factor_grows_the_spread_in_quadrature():
    spread, miss = np.array([[0.03, 0.04]]), np.array([[0.0, 0.03]])
    factor = widening_factors(miss, spread, 1.0)
    np.testing.assert_allclose(spread * factor, [[0.03, 0.05]])
    np.testing.assert_allclose(widening_factors(miss, spread, 0.0), 1.0)


@pytest.mark.parametrize("keep_bones", [False, True])
def test_a_bundle_that_widens_for_the_miss_reports_it_per_joint_and_only_widens(tiny_bundle, tmp_path, keep_bones):
    import json

    from diffpose3d import DiffPose
    from diffpose3d.commands.demo import bundled_example
    from diffpose3d.inference.outputs import load_result_npz, write_result

    with np.load(bundled_example(), allow_pickle=False) as f:
        keypoints, size, layout = f["keypoints"], tuple(int(v) for v in f["image_size"]), str(f["layout"])
    plain = DiffPose.load(str(tiny_bundle), hypotheses=8, keep_bones=keep_bones).from_keypoints(
        keypoints, image_size=size, layout=layout)
    wide = DiffPose.load(str(tiny_bundle), hypotheses=8, reprojection_widening=1.0, keep_bones=keep_bones).from_keypoints(
        keypoints, image_size=size, layout=layout)
    assert plain.reprojection_miss is None
    assert wide.reprojection_miss.shape == wide.uncertainty.shape and (wide.reprojection_miss >= 0).all()
    np.testing.assert_allclose(wide.pose_3d, plain.pose_3d, atol=1e-6)  # the pose is untouched
    assert (wide.uncertainty >= plain.uncertainty - 1e-6).all()
    expected = plain.uncertainty * widening_factors(wide.reprojection_miss, plain.uncertainty, 1.0)
    # per joint, bones free even where the calibration keeps them: exactly in quadrature
    np.testing.assert_allclose(wide.uncertainty, expected, rtol=1e-4)
    npz, js = write_result(wide, tmp_path, "photo")
    np.testing.assert_allclose(load_result_npz(npz).reprojection_miss, wide.reprojection_miss, atol=1e-6)
    person = json.loads(js.read_text())["frames"][0]["people"][0]
    np.testing.assert_allclose(person["reprojection_miss"], wide.reprojection_miss[0], atol=1e-4)
