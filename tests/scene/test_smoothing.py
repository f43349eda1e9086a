"""Temporal smoothing of a root trajectory."""

from __future__ import annotations

import numpy as np

from diffpose3d.scene.smoothing import sigma_frames, smooth_track


def test_depth_jitter_is_reduced_and_a_straight_walk_is_kept():
    rng = np.random.default_rng(0)
    frames = np.arange(200)
    truth = np.c_[0.01 * frames, np.zeros(200), 4.0 + 0.005 * frames]
    noisy = truth + rng.normal(0.0, [0.01, 0.01, 0.15], (200, 3))
    smooth = smooth_track(frames, noisy, np.full(200, 0.1), sigma_frames(25.0))
    inner = slice(10, -10)  # a linear motion is kept exactly by a symmetric kernel, away from the ends
    assert np.abs(smooth[inner] - truth[inner])[:, 2].std() < 0.4 * np.abs(noisy - truth)[:, 2].std()
    assert abs(np.mean(smooth[inner] - truth[inner], axis=0)).max() < 0.02


def test_frames_without_a_root_are_filled_from_close_neighbours_only():
    frames = np.r_[np.arange(10), np.arange(60, 70)]
    values = np.tile([0.0, 0.0, 3.0], (20, 1))
    values[4] = np.nan
    out = smooth_track(frames, values, np.zeros(20), 2.0)
    np.testing.assert_allclose(out[4], [0.0, 0.0, 3.0])
    lonely = smooth_track(np.array([0, 1, 40]), np.array([[0, 0, 3.0], [0, 0, 3.0], [np.nan] * 3]), np.zeros(3), 2.0)
    assert np.isnan(lonely[2]).all() and np.isfinite(lonely[:2]).all()


def test_an_uncertain_frame_pulls_less():
    frames = np.arange(5)
    values = np.tile([0.0, 0.0, 3.0], (5, 1))
    values[2, 2] = 6.0
    sure = smooth_track(frames, values, np.zeros(5), 1.0)
    unsure = smooth_track(frames, values, np.array([0, 0, 2.0, 0, 0]), 1.0)
    assert abs(unsure[1, 2] - 3.0) < 0.05 * abs(sure[1, 2] - 3.0)
