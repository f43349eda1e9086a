"""Temporal windows: sampling coverage, edge padding, stitching round trip, mirroring."""

import numpy as np
import pytest
import torch

from diffpose3d.data.windows import (
    flip_keypoints,
    flip_pose,
    flip_tta,
    gather_window,
    pad_sequence_edges,
    sample_windows,
    sliding_windows,
    stitch,
)
from diffpose3d.skeleton import get_skeleton

PERM = get_skeleton("humaneva15").flip_permutation()


def test_short_chunk_is_edge_padded_and_centred() -> None:
    x = np.array([[1.0], [2.0]], dtype=np.float32)  # a 2-frame HumanEva chunk
    padded, start = pad_sequence_edges(x, 27)
    assert padded.shape == (27, 1) and start == 12
    assert np.array_equal(padded[start : start + 2], x)
    assert np.all(padded[:start] == 1.0) and np.all(padded[start + 2 :] == 2.0)
    long = np.arange(30.0)
    same, s0 = pad_sequence_edges(long, 27)
    assert same is long and s0 == 0
    # The torch path keeps the type and agrees with the window gather at the same start.
    t = torch.tensor([[1.0], [2.0]])
    assert torch.equal(pad_sequence_edges(t, 27)[0], gather_window(t, -12, 27))


def test_gather_window_replicates_edges_on_both_sides() -> None:
    x = np.arange(5)
    assert gather_window(x, -2, 4).tolist() == [0, 0, 0, 1]
    assert gather_window(x, 3, 4).tolist() == [3, 4, 4, 4]
    assert gather_window(x, 1, 3).tolist() == [1, 2, 3]


@pytest.mark.parametrize("T", [1, 2, 26, 27, 28, 100, 101])
@pytest.mark.parametrize("stride", [1, 5, 27])
def test_sliding_windows_cover_every_frame_and_stitch_exactly(T: int, stride: int) -> None:
    window = 27
    starts = sliding_windows(T, window, stride)
    covered = np.zeros(T, int)
    for s in starts:
        covered[np.clip(np.arange(s, s + window), 0, T - 1)] += 1
    assert covered.min() >= 1
    if T >= window:
        assert starts[0] == 0 and starts[-1] == T - window and all(s >= 0 for s in starts)
    rng = np.random.default_rng(T)
    x = rng.normal(size=(T, 15, 3)).astype(np.float32)
    outputs = [(s, gather_window(x, s, window)) for s in starts]  # an identity "model"
    back = stitch(outputs, T, window)
    assert back.dtype == x.dtype and np.array_equal(back, x)
    xt = torch.as_tensor(x)
    back_t = stitch([(s, gather_window(xt, s, window)) for s in starts], T, window)
    assert torch.equal(back_t, xt)
    tapered = stitch(outputs, T, window, taper=True)
    np.testing.assert_allclose(tapered, x, rtol=1e-6, atol=1e-6)


def test_stitch_averages_overlaps_and_taper_favours_window_centres() -> None:
    window, T = 4, 6
    outputs = [(0, np.zeros((4, 1))), (2, np.ones((4, 1)))]
    plain = stitch(outputs, T, window)[:, 0]
    assert plain.tolist() == [0, 0, 0.5, 0.5, 1, 1]
    tapered = stitch(outputs, T, window, taper=True)[:, 0]
    # Frame 2 is the centre of window 0 (weight 2) and the edge of window 1 (weight 1).
    assert tapered[2] == pytest.approx(1 / 3) and tapered[3] == pytest.approx(2 / 3)


def test_sample_windows_cover_frames_uniformly() -> None:
    lengths, window = [2, 40, 13, 100], 9
    g = torch.Generator().manual_seed(0)
    windows = sample_windows(lengths, window, 40_000, g)
    coverage = [np.zeros(n) for n in lengths]
    for i, s in windows:
        idx = np.arange(s, s + window)
        idx = idx[(idx >= 0) & (idx < lengths[i])]
        assert idx.size >= 1  # every window holds at least one real frame
        coverage[i][idx] += 1
    allc = np.concatenate(coverage)
    assert allc.std() / allc.mean() < 0.05  # every frame is covered equally often (up to noise)
    assert len(sample_windows(lengths, window, None, g)) == int(np.ceil(2 * sum(lengths) / window))
    # Reproducible with the same seed; no overhang keeps long sequences' windows inside them.
    assert sample_windows(lengths, window, 50, torch.Generator().manual_seed(1)) == \
        sample_windows(lengths, window, 50, torch.Generator().manual_seed(1))
    inside = sample_windows([2, 40], window, 500, g, overhang=0)
    assert all(0 <= s <= 40 - window for i, s in inside if i == 1)
    assert all(s == -3 for i, s in inside if i == 0)  # the centred padded window of the 2-frame chunk


def test_flip_twice_is_identity_and_flip_swaps_sides() -> None:
    sk = get_skeleton("humaneva15")
    uv = torch.randn(4, 7, 15, 2)
    xyz = np.random.default_rng(0).normal(size=(3, 15, 3))
    assert torch.equal(flip_keypoints(flip_keypoints(uv, PERM), PERM), uv)
    np.testing.assert_array_equal(flip_pose(flip_pose(xyz, PERM), PERM), xyz)
    f = flip_pose(xyz, PERM)
    left, right = sk.index("l_wrist"), sk.index("r_wrist")
    assert f[0, left, 0] == -xyz[0, right, 0] and f[0, left, 1:].tolist() == xyz[0, right, 1:].tolist()
    conf = torch.rand(2, 15, 3)  # a confidence channel rides along unchanged, permuted
    assert torch.equal(flip_keypoints(conf, PERM)[..., 2], conf[..., PERM, 2])


def test_flip_tta_of_an_equivariant_function_is_the_function() -> None:
    def lift(uv: torch.Tensor) -> torch.Tensor:
        # Mirror-equivariant: per joint (u, v) -> (u, v, u^2 + v^3): x odd in u, y and z even.
        return torch.cat([uv, uv[..., :1] ** 2 + uv[..., 1:] ** 3], dim=-1)

    uv = torch.randn(5, 15, 2, dtype=torch.float64)
    assert torch.allclose(flip_tta(lift, uv, PERM), lift(uv), atol=1e-12)

    def biased(uv: torch.Tensor) -> torch.Tensor:  # not equivariant: a constant shift in x
        return lift(uv) + torch.tensor([1.0, 0.0, 0.0], dtype=uv.dtype)

    assert torch.allclose(flip_tta(biased, uv, PERM), lift(uv), atol=1e-12)  # TTA cancels the bias
