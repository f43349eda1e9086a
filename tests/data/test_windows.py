"""Temporal windows: sampling coverage, edge padding, stitching round trip."""

import numpy as np
import pytest
import torch

from diffpose3d.data.windows import gather_window, sample_windows, sliding_windows, stitch_into, window_weights


def stitch(outputs, T: int, window: int, taper: bool = False):
    """Average window outputs `[(start, (window, ...))]` into `(T, ...)` with `stitch_into`, in
    float64 as `context.encode_sequences` accumulates them."""
    weights = window_weights(window, taper)
    first = outputs[0][1]
    if isinstance(first, torch.Tensor):
        total, weight_sum = torch.zeros((T,) + tuple(first.shape[1:]), dtype=torch.float64), torch.zeros(T, dtype=torch.float64)
    else:
        total, weight_sum = np.zeros((T,) + first.shape[1:]), np.zeros(T)
    for start, output in outputs:
        stitch_into(total, weight_sum, start, output, weights)
    mean = total / weight_sum.reshape((T,) + (1,) * (first.ndim - 1))
    return mean.to(first.dtype) if isinstance(first, torch.Tensor) else mean.astype(first.dtype)


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
    if window <= T:
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
