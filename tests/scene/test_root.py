"""The root translation fitted to 2D keypoints: exact on exact projections, robust to what is missing."""

from __future__ import annotations

import numpy as np
import pytest

from diffpose3d.scene.root import MIN_JOINTS, solve_root

FOCAL, CENTER = 1145.0, (512.0, 515.0)


def body(rng: np.random.Generator, n: int = 17) -> np.ndarray:
    pose = rng.normal(0.0, 0.35, (n, 3))
    return pose - pose[:1]


def project(points: np.ndarray) -> np.ndarray:
    return FOCAL * points[..., :2] / points[..., 2:3] + np.asarray(CENTER)


def test_the_exact_projection_of_a_placed_pose_gives_its_root_back():
    rng = np.random.default_rng(0)
    poses = np.stack([body(rng) for _ in range(20)])
    roots = np.c_[rng.uniform(-1.5, 1.5, (20, 2)), rng.uniform(2.0, 9.0, 20)]
    kp = project(poses + roots[:, None])
    got = solve_root(poses, kp, np.ones(poses.shape[:2]), FOCAL, CENTER)
    np.testing.assert_allclose(got, roots, atol=1e-6)


def test_pixel_noise_moves_the_root_little_and_refinement_beats_the_algebraic_solution():
    rng = np.random.default_rng(1)
    pose, root = body(rng), np.array([0.4, -0.2, 5.0])
    kp = project(pose + root) + rng.normal(0.0, 2.0, (17, 2))
    got = solve_root(pose, kp, np.ones(17), FOCAL, CENTER)
    assert np.linalg.norm(got - root) < 0.05 * root[2]  # 2 px of noise at 5 m


def test_missing_joints_do_not_count_and_too_few_give_nan():
    rng = np.random.default_rng(2)
    pose, root = body(rng), np.array([0.1, 0.3, 4.0])
    kp = project(pose + root)
    weights = np.ones(17)
    kp[3:8] = [5000.0, -7000.0]  # wrong 2D on joints marked missing
    weights[3:8] = 0.0
    np.testing.assert_allclose(solve_root(pose, kp, weights, FOCAL, CENTER), root, atol=1e-6)
    weights[MIN_JOINTS - 1:] = 0.0
    assert np.isnan(solve_root(pose, kp, weights, FOCAL, CENTER)).all()


def test_hypotheses_broadcast_against_one_2d_per_row():
    rng = np.random.default_rng(3)
    hyp = np.stack([np.stack([body(rng) for _ in range(4)]) for _ in range(3)])  # (R=3, N=4, J, 3)
    kp = project(hyp[:, 0] + np.array([0.0, 0.0, 3.0]))  # (R, J, 2): the 2D of hypothesis 0
    roots = solve_root(hyp, kp[:, None], np.ones((3, 1, 17)), FOCAL, CENTER)
    assert roots.shape == (3, 4, 3)
    np.testing.assert_allclose(roots[:, 0], [[0.0, 0.0, 3.0]] * 3, atol=1e-6)


@pytest.mark.parametrize("scale", [0.8, 1.25])
def test_a_pose_too_small_or_too_large_scales_the_depth_with_it(scale):
    """The root's depth is the pose's size over its size in the picture: a pose `scale` times too
    large is placed `scale` times as far (what the benchmark's relative depth error measures)."""
    rng = np.random.default_rng(4)
    pose, root = body(rng), np.array([0.0, 0.0, 4.0])
    kp = project(pose + root)
    got = solve_root(pose * scale, kp, np.ones(17), FOCAL, CENTER)
    np.testing.assert_allclose(got, root * scale, atol=1e-9)

