"""Heatmaps and keypoints -> per-joint 2D mixtures in normalised image coordinates."""

from __future__ import annotations

import math

import numpy as np
import torch

from diffpose3d.evidence.heatmaps import heatmaps_to_gmm
from diffpose3d.evidence.mixture2d import broad_mixture, keypoints_to_gmm

IMAGE = (640, 480)
# heatmap pixel (c, r) -> image (4 c + 100, 4 r + 50)
AFFINE = torch.tensor([[[4.0, 0.0, 100.0], [0.0, 4.0, 50.0]]])


def _blobs(centres: list[tuple[float, float]], masses: list[float], sigma: float = 1.5, size: int = 64) -> torch.Tensor:
    r, c = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij")
    hm = sum(m / (2 * math.pi * sigma**2) * torch.exp(-((c - cx) ** 2 + (r - cy) ** 2) / (2 * sigma**2))
             for (cx, cy), m in zip(centres, masses))
    return (hm / hm.max()).float()


def _uv(col: float, row: float) -> torch.Tensor:
    x, y = 4 * col + 100, 4 * row + 50
    return torch.tensor([x / 640 * 2 - 1, y / 640 * 2 - 480 / 640])


def test_two_separated_modes_give_two_components_with_their_weights() -> None:
    hm = _blobs([(15, 20), (45, 40)], [0.7, 0.3])[None, None]
    gmm = heatmaps_to_gmm(hm, AFFINE, IMAGE, num_components=2)
    assert gmm.weights.shape == (1, 1, 2)
    torch.testing.assert_close(gmm.weights[0, 0], torch.tensor([0.7, 0.3]), atol=0.02, rtol=0)
    torch.testing.assert_close(gmm.means[0, 0, 0], _uv(15, 20), atol=2e-3, rtol=0)
    torch.testing.assert_close(gmm.means[0, 0, 1], _uv(45, 40), atol=2e-3, rtol=0)
    # spread: blob sigma plus the quantisation variance of one pixel, in uv units
    var = ((1.5**2 + 1 / 12) * (4 * 2 / 640) ** 2)
    torch.testing.assert_close(gmm.covariances[0, 0, 0].diagonal(), torch.full((2,), var), rtol=0.15, atol=0)


def test_default_five_components_keep_the_mode_masses() -> None:
    hm = _blobs([(15, 20), (45, 40)], [0.7, 0.3])[None, None]
    gmm = heatmaps_to_gmm(hm, AFFINE, IMAGE, num_components=5, top_k=256)
    near_first = (gmm.means[0, 0] - _uv(15, 20)).norm(dim=-1) < (gmm.means[0, 0] - _uv(45, 40)).norm(dim=-1)
    assert abs(float(gmm.weights[0, 0][near_first].sum()) - 0.7) < 0.03


def test_flat_zero_and_nan_heatmaps_give_the_broad_component() -> None:
    hm = torch.stack([torch.zeros(32, 32), torch.full((32, 32), 0.5), torch.full((32, 32), float("nan"))])[None]
    gmm = heatmaps_to_gmm(hm, AFFINE, IMAGE, num_components=3)
    broad = broad_mixture((1, 3), IMAGE[1] / IMAGE[0], 3)
    for t in (gmm.weights, gmm.means, gmm.covariances):
        assert torch.isfinite(t).all()
    torch.testing.assert_close(gmm.weights, broad.weights)
    torch.testing.assert_close(gmm.covariances, broad.covariances)
    # broad = moments of a uniform position over the image
    u = torch.rand(200_000) * 2 - 1
    v = (torch.rand(200_000) * 2 - 1) * 480 / 640
    torch.testing.assert_close(broad.covariances[0, 0, 0].diagonal(), torch.stack([u.var(), v.var()]), atol=3e-3, rtol=0)


def test_single_pixel_peak_is_a_proper_gaussian() -> None:
    hm = torch.zeros(1, 1, 16, 16)
    hm[0, 0, 5, 7] = 1.0
    gmm = heatmaps_to_gmm(hm, AFFINE, IMAGE, num_components=2)
    assert torch.isfinite(gmm.covariances).all()
    torch.testing.assert_close(gmm.means[0, 0, 0], _uv(7, 5), atol=1e-5, rtol=0)
    assert float(torch.linalg.eigvalsh(gmm.covariances[0, 0, 0]).min()) > 0


def test_keypoints_stand_in_spread_grows_as_confidence_falls() -> None:
    kp = np.array([[[320, 240], [100, 50], [200, 200], [np.nan, 3.0]]], dtype=np.float32)
    conf = np.array([[1.0, 0.25, 0.0, 0.9]], dtype=np.float32)
    gmm = keypoints_to_gmm(kp, conf, IMAGE, min_std_px=2.0)
    std_px = gmm.covariances[0, :, 0, 0, 0].sqrt() * 320
    torch.testing.assert_close(std_px[:2], torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(gmm.means[0, 0, 0], torch.tensor([0.0, 0.0]))
    broad = broad_mixture((1,), IMAGE[1] / IMAGE[0])
    for j in (2, 3):  # conf 0 and NaN keypoint
        torch.testing.assert_close(gmm.covariances[0, j], broad.covariances[0])
    assert torch.isfinite(gmm.means).all()
