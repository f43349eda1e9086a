"""The person frame (what the default bundle's encoder sees) against a plain numpy computation."""

from __future__ import annotations

import numpy as np
import torch

from diffpose3d.evidence.person_frame import (
    CHANNELS,
    PRESENT_STD,
    PersonFrame,
    encoder_input,
    focal_guess,
    person_frame,
)
from diffpose3d.mixtures.gmm import GaussianMixture


def _numpy_frame(kp: np.ndarray, spread: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centres, sizes = [], []
    for points, s in zip(kp, spread):
        present = s < PRESENT_STD
        if present.sum() < 2:
            present[:] = True
        p = points[present]
        c = p.mean(0)
        centres.append(c)
        sizes.append(max(np.sqrt(((p - c) ** 2).sum(1).mean()), 1e-3))
    return np.array(centres), np.array(sizes)


def test_centre_and_size_use_only_present_joints() -> None:
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(6, 17, 2))
    spread = rng.uniform(0.0, 0.2, size=(6, 17))
    spread[1, :5] = 1.0  # broad joints neither place nor size the person
    spread[2, 1:] = 1.0  # one present joint: all joints count
    frame = person_frame(torch.tensor(kp), torch.tensor(spread))
    centre, size = _numpy_frame(kp, spread)
    np.testing.assert_allclose(frame.centre[:, 0].numpy(), centre, rtol=1e-12)
    np.testing.assert_allclose(frame.size[:, 0, 0].numpy(), size, rtol=1e-12)


def test_points_and_mixtures_move_into_the_frame_together() -> None:
    rng = np.random.default_rng(1)
    b, j, m = 3, 17, 2
    frame = PersonFrame(torch.tensor(rng.normal(size=(b, 1, 2))), torch.tensor(rng.uniform(0.1, 0.5, (b, 1, 1))))
    means = torch.tensor(rng.normal(size=(b, j, m, 2)))
    a = rng.normal(size=(b, j, m, 2, 2))
    cov = torch.tensor(a @ a.transpose(0, 1, 2, 4, 3) + 0.01 * np.eye(2))
    gmm = GaussianMixture(torch.full((b, j, m), 0.5, dtype=torch.float64), means, cov)
    moved = frame.mixture(gmm)
    c, s = frame.centre.numpy()[:, :, None], frame.size.numpy()[:, :, :, None]
    np.testing.assert_allclose(moved.means.numpy(), (means.numpy() - c) / s, rtol=1e-12)
    np.testing.assert_allclose(moved.covariances.numpy(), cov.numpy() / s[..., None] ** 2, rtol=1e-12)
    # the spread scales with the size: sqrt(trace / 2) of the mixture's covariance
    ratio = moved.spread() / gmm.spread()
    np.testing.assert_allclose(ratio.numpy(), np.broadcast_to(1.0 / s[:, :, 0, 0], ratio.shape), rtol=1e-9)


def test_encoder_input_channels() -> None:
    rng = np.random.default_rng(2)
    kp = torch.tensor(rng.normal(size=(4, 17, 2)))
    spread = torch.tensor(rng.uniform(0.01, 0.2, (4, 17)))
    frame = person_frame(kp, spread)
    focal = torch.tensor([1.5, 2.0, 3.0, 4.0], dtype=torch.float64)
    x = encoder_input(frame.points(kp), spread, frame, focal).numpy()
    assert x.shape == (4, 17, CHANNELS)
    size = frame.size[:, 0, 0].numpy()
    np.testing.assert_allclose(x[..., :2], (kp.numpy() - frame.centre.numpy()) / size[:, None, None], rtol=1e-12)
    np.testing.assert_allclose(x[..., 2], np.log(spread.numpy() / size[:, None]), rtol=1e-12)
    np.testing.assert_allclose(x[..., 3:5], np.broadcast_to(frame.centre.numpy(), (4, 17, 2)), rtol=1e-12)
    np.testing.assert_allclose(x[..., 5], np.broadcast_to(np.log(size)[:, None], (4, 17)), rtol=1e-12)
    np.testing.assert_allclose(x[..., 6], np.broadcast_to(np.log(focal.numpy())[:, None], (4, 17)), rtol=1e-12)


def test_focal_guess_is_relative_to_half_the_width() -> None:
    # f = longer side (FOCAL_GUESS 1.0), in units of w / 2
    assert focal_guess((640, 480)) == 2.0
    assert focal_guess((480, 640)) == 2.0 * 640 / 480
