"""The synthetic detector: determinism, swap rate, and heatmap path vs the fast path."""

from __future__ import annotations

import numpy as np
import torch

from diffpose3d.cameras import normalize_screen_coordinates
from diffpose3d.config import SyntheticDetectorConfig
from diffpose3d.evidence.heatmaps import heatmaps_to_gmm
from diffpose3d.evidence.synthetic import draw_modes, synthetic_gmm, synthetic_heatmaps


def _heatmap_argmax(hm: torch.Tensor, affine: torch.Tensor) -> np.ndarray:
    """Image-pixel position (T, J, 2) of each heatmap's strongest cell."""
    t, j, h, w = hm.shape
    idx = hm.reshape(t, j, h * w).argmax(-1)
    cells = torch.stack([idx % w, idx // w, torch.ones_like(idx)], -1).to(affine.dtype)
    return torch.einsum("tab,tjb->tja", affine, cells).numpy()

LEFT, RIGHT = [2, 3, 4], [5, 6, 7]


def _pose(t: int, seed: int = 0) -> np.ndarray:
    """Frames of a 8-joint 'person' with left and right joints 60 px apart."""
    rng = np.random.default_rng(seed)
    base = np.array([[320, 200], [320, 150], [290, 160], [280, 210], [275, 260],
                     [350, 160], [360, 210], [365, 260]], dtype=np.float32)
    return (base[None] + rng.normal(0, 5, (t, 8, 2))).astype(np.float32)


def test_deterministic_under_a_seed() -> None:
    kp = _pose(20)
    modes = draw_modes(kp, (LEFT, RIGHT), seed=3)
    a = synthetic_heatmaps(kp, modes)
    b = synthetic_heatmaps(kp, draw_modes(kp, (LEFT, RIGHT), seed=3))
    c = synthetic_heatmaps(kp, draw_modes(kp, (LEFT, RIGHT), seed=4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert torch.equal(synthetic_gmm(kp, (LEFT, RIGHT), seed=3).means, modes.centres)


def test_swaps_happen_at_the_configured_rate_and_show_in_the_heatmaps() -> None:
    t, p = 3000, 0.1
    kp = _pose(t, seed=1)
    cfg = SyntheticDetectorConfig(swap_prob=p, noise_px=2.0, occlusion_prob=0.0, secondary_weight=0.3)
    modes = draw_modes(kp, (LEFT, RIGHT), cfg, seed=0)
    hm, aff = synthetic_heatmaps(kp, modes, cfg)
    rate = modes.swapped.float().mean().item()
    assert abs(rate - p) < 4 * np.sqrt(p * (1 - p) / (t * len(LEFT)))
    # independent check on the rendered heatmaps: the argmax sits at the mirrored joint
    top = _heatmap_argmax(hm, aff)
    d_true = np.linalg.norm(top[:, LEFT] - kp[:, LEFT], axis=-1)
    d_mirror = np.linalg.norm(top[:, LEFT] - kp[:, RIGHT], axis=-1)
    looks_swapped = d_mirror < d_true
    assert np.mean(looks_swapped == modes.swapped.numpy()) > 0.99


def test_heatmap_fit_matches_fast_path_in_expectation() -> None:
    kp = _pose(300, seed=2)
    cfg = SyntheticDetectorConfig(swap_prob=0.2, occlusion_prob=0.1)
    modes = draw_modes(kp, (LEFT, RIGHT), cfg, seed=5)
    hm, aff = synthetic_heatmaps(kp, modes, cfg)
    fitted = heatmaps_to_gmm(hm, aff, (640, 480), num_components=5, top_k=128)
    fast = synthetic_gmm(kp, (LEFT, RIGHT), cfg, seed=5, num_components=5)
    fast_uv_mean = normalize_screen_coordinates(fast.mean(), 640, 480)
    err_px = (fitted.mean() - fast_uv_mean).norm(dim=-1) * 320
    assert err_px.mean() < 1.0  # heatmap pixels here are ~1.3 image px wide
    var_fit = fitted.covariance().diagonal(dim1=-2, dim2=-1).sum(-1).mean() * 320**2
    var_fast = fast.covariance().diagonal(dim1=-2, dim2=-1).sum(-1).mean()
    assert abs(var_fit / var_fast - 1) < 0.15


def test_fast_path_accepts_a_skeleton() -> None:
    from diffpose3d.skeleton import get_skeleton

    sk = get_skeleton("humaneva15")
    kp = np.random.default_rng(0).uniform(100, 400, (10, sk.num_joints, 2)).astype(np.float32)
    gmm = synthetic_gmm(kp, sk, SyntheticDetectorConfig(swap_prob=0.5), seed=1)
    assert gmm.weights.shape == (10, sk.num_joints, 2)
    torch.testing.assert_close(gmm.weights.sum(-1), torch.ones(10, sk.num_joints))


def test_an_unswapped_joint_carries_one_measurement_only() -> None:
    # The unused second slot repeats the first mode: a second noisy draw around the truth there
    # would be an extra, independent measurement that no detector gives.
    kp = _pose(500, seed=4)
    cfg = SyntheticDetectorConfig(swap_prob=0.2, occlusion_prob=0.0, noise_px=4.0)
    gmm = synthetic_gmm(kp, (LEFT, RIGHT), cfg, seed=1)
    single = gmm.weights[..., 1] == 0
    assert bool(single.any()) and bool((~single).any())
    torch.testing.assert_close(gmm.means[..., 1, :][single], gmm.means[..., 0, :][single])
    # a swapped joint's second mode is the truth (plus localisation noise)
    err = (gmm.means[..., 1, :][~single] - torch.as_tensor(kp)[~single]).norm(dim=-1)
    assert float(err.mean()) < 3 * cfg.noise_px


def test_heatmap_fit_gives_one_component_per_mode() -> None:
    # EM splits each peak into several components; merged, the fit has the detector's modes
    kp = _pose(200, seed=3)
    cfg = SyntheticDetectorConfig(swap_prob=0.2, occlusion_prob=0.1)
    modes = draw_modes(kp, (LEFT, RIGHT), cfg, seed=2)
    hm, aff = synthetic_heatmaps(kp, modes, cfg)
    merged = heatmaps_to_gmm(hm, aff, (640, 480), num_components=5)
    raw = heatmaps_to_gmm(hm, aff, (640, 480), num_components=5, merge_within=None)
    true_modes = (modes.weights > 0).sum(-1)
    assert float(((raw.weights > 0.05).sum(-1) == true_modes).float().mean()) < 0.5
    assert float(((merged.weights > 0.05).sum(-1) == true_modes).float().mean()) > 0.97
    top = normalize_screen_coordinates(modes.centres[:, :, 0], 640, 480)
    assert float(((merged.means[..., 0, :] - top).norm(dim=-1) * 320).mean()) < 1.0
