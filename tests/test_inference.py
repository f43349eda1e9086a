"""Batched inference helpers that need no model: the low-pass of g's corrections over time."""

import numpy as np

from diffpose3d.inference import smooth_corrections


def test_smoothing_keeps_the_encoder_and_slow_corrections_and_drops_jitter() -> None:
    rng = np.random.default_rng(0)
    T, N, J = 200, 4, 3
    lifter = rng.normal(size=(T, J, 3))
    slow = np.sin(np.linspace(0, 3, T))[:, None, None] * np.ones((T, J, 3))  # a motion-level correction
    jitter = rng.normal(scale=0.1, size=(T, N, J, 3))
    hypotheses = lifter[:, None] + slow[:, None] + jitter
    pose = hypotheses.mean(1)
    seqs = [np.arange(0, 120), np.arange(120, T)]
    smooth_corrections(pose, hypotheses, lifter, seqs, sigma=2.0)
    np.testing.assert_allclose(pose, hypotheses.mean(1), atol=1e-12)  # the mean of the smoothed hypotheses
    residual = hypotheses - lifter[:, None] - slow[:, None]
    assert np.abs(residual).std() < 0.5 * np.abs(jitter).std()
    # Sequences are filtered apart: a jump between them survives.
    pose2, hyp2, lif2 = np.zeros((10, 1, 3)), np.zeros((10, 1, 1, 3)), np.zeros((10, 1, 3))
    pose2[5:], hyp2[5:] = 1.0, 1.0
    smooth_corrections(pose2, hyp2, lif2, [np.arange(5), np.arange(5, 10)], sigma=3.0)
    assert np.all(pose2[:5] == 0.0) and np.allclose(pose2[5:], 1.0)
