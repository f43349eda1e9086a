"""Fixed-length temporal windows over pose sequences: sampling, gathering, stitching.

Pure functions on numpy arrays or torch tensors (the type of the input is kept). Frames outside a
sequence are filled by edge replication: a window that runs off either end repeats the first or last
frame, so chunks shorter than the window (HumanEva-I has 2-frame chunks) still fill one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def window_index(T: int, start: int, window: int) -> np.ndarray:
    """Frame indices `(window,)` of the window `[start, start + window)`, clamped to `0..T-1`."""
    assert T >= 1 and window >= 1, f"need T >= 1 and window >= 1, got T={T}, window={window}"
    return np.clip(np.arange(start, start + window), 0, T - 1)


def gather_window(x: Array, start: int, window: int) -> Array:
    """`x (T, ...)` -> `(window, ...)` frames `start .. start + window - 1`, edge-padded off either end."""
    idx = window_index(int(x.shape[0]), start, window)
    if isinstance(x, torch.Tensor):
        return x[torch.as_tensor(idx, device=x.device)]
    return x[idx]


def sample_windows(
    lengths: Sequence[int],
    window: int,
    count: int | None = None,
    generator: torch.Generator | None = None,
    *,
    overhang: int | None = None,
) -> list[tuple[int, int]]:
    """Random training windows `(seq_index, start)`; `start` may be negative or run past the end
    (gather with edge padding). Starts are uniform over every window that overlaps a sequence by at
    least one real frame (`overhang = window - 1`, the default), with sequences weighted by their
    number of starts, so every frame of every sequence is covered with the same probability.
    A smaller `overhang` means less padding but edge frames covered less often.
    `count` defaults to `ceil(2 * total_frames / window)`.
    """
    assert window >= 1, f"window must be >= 1, got {window}"
    over = window - 1 if overhang is None else int(overhang)
    assert 0 <= over <= window - 1, f"overhang must be in 0..{window - 1}, got {over}"
    lengths = [int(n) for n in lengths]
    total = sum(lengths)
    if total == 0:
        return []
    if count is None:
        count = math.ceil(2 * total / window)
    # Per sequence the starts lo .. hi; a sequence shorter than the window always has its centred
    # padded window among them (0 .. T - window would be empty).
    lo = [-over if n >= window else min(-over, -((window - n) // 2)) for n in lengths]
    hi = [n - window + over if n >= window else max(n - window + over, -((window - n) // 2)) for n in lengths]
    sizes = torch.tensor([b - a + 1 if n > 0 else 0 for n, a, b in zip(lengths, lo, hi)], dtype=torch.float64)
    seqs = torch.multinomial(sizes, count, replacement=True, generator=generator)
    u = torch.rand(count, generator=generator, dtype=torch.float64)
    offsets = (u * sizes[seqs]).floor().long().clamp(max=sizes[seqs].long() - 1)
    return [(int(s), lo[int(s)] + int(o)) for s, o in zip(seqs, offsets)]


def sliding_windows(T: int, window: int, stride: int) -> list[int]:
    """Starts of windows covering all `T` frames: every `stride` frames, the last aligned to the end.
    A sequence shorter than the window gets one centred, edge-padded window (negative start)."""
    assert window >= 1 and 1 <= stride <= window, f"need 1 <= stride <= window, got stride={stride}, window={window}"
    if T <= 0:
        return []
    if window >= T:
        return [-((window - T) // 2)]
    starts = list(range(0, T - window + 1, stride))
    if starts[-1] != T - window:
        starts.append(T - window)
    return starts


def window_weights(window: int, taper: bool = False) -> np.ndarray:
    """Per-frame stitching weights `(window,)`: all ones, or a centre-weighted triangle
    (`min(i + 1, window - i)`) so frames near a window's centre, with context on both sides, dominate."""
    if not taper:
        return np.ones(window)
    i = np.arange(window)
    return np.minimum(i + 1, window - i).astype(np.float64)


def stitch_into(total: Array, weight_sum: Array, start: int, output: Array, weights: np.ndarray) -> None:
    """Add one window's `output (window, ...)` into the running `total (T, ...)` and
    `weight_sum (T,)` (in place). Frames outside `0..T-1` (padding) are dropped."""
    T, window = int(total.shape[0]), int(output.shape[0])
    first, stop = max(start, 0), min(start + window, T)
    if stop <= first:
        return
    rows = output[first - start : stop - start]
    w = weights[first - start : stop - start]
    if isinstance(total, torch.Tensor):
        w_t = torch.as_tensor(w, dtype=total.dtype, device=total.device)
        rows = rows.to(total.device, total.dtype)
        total[first:stop] += rows * w_t.reshape((-1,) + (1,) * (rows.dim() - 1))
        weight_sum[first:stop] += w_t
    else:
        rows = np.asarray(rows, dtype=total.dtype)
        total[first:stop] += rows * w.reshape((-1,) + (1,) * (rows.ndim - 1))
        weight_sum[first:stop] += w
