"""Stage 1 of a video model: random training windows over a FrameSet's sequences, and their loss."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from diffpose3d.data.mirror import flip_keypoints, flip_pose
from diffpose3d.data.windows import gather_window, sample_windows, window_index


def window_loss(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, velocity_weight: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(loss, mpjpe)` over the real (non-padded) frames of `(B, T, J, 3)` windows; `valid (B, T)` bool.

    `mpjpe` is the mean joint error over real frames. With `velocity_weight > 0` the loss adds that
    times the mean joint error of the frame-to-frame velocities (MPJVE, over pairs of real frames),
    which penalises jitter that per-frame MPJPE does not see.
    """
    v = valid.to(pred.dtype)
    err = (pred - target).norm(dim=-1).mean(-1)
    mpjpe = (err * v).sum() / v.sum().clamp(min=1.0)
    loss = mpjpe
    if velocity_weight > 0.0 and pred.shape[1] > 1:
        pair = v[:, 1:] * v[:, :-1]
        verr = ((pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])).norm(dim=-1).mean(-1)
        loss = loss + velocity_weight * (verr * pair).sum() / pair.sum().clamp(min=1.0)
    return loss, mpjpe


class TrainingWindows:
    """Random training windows over a `FrameSet`'s sequences, redrawn every epoch.

    Each epoch holds `count = ceil(2 * frames / window)` windows (`data.windows.sample_windows`:
    every frame equally likely to be covered, short chunks edge-padded); `batch(ids)` gathers
    windows of the encoder's per-frame inputs (given each epoch, so redrawn evidence is used) and
    of the ground truth. `context = (before, after)`: each window's inputs also hold that many
    frames before and after it (a temporal convolution's receptive field; edge-padded at a
    sequence's ends, as the whole-sequence pass pads), its ground truth only the window's frames.
    """

    def __init__(self, frames, window: int, seed: int = 0, context: tuple[int, int] = (0, 0)) -> None:
        self.frames, self.window, self.seed = frames, int(window), int(seed)
        self.before, self.after = (int(c) for c in context)
        assert self.before >= 0 and self.after >= 0, f"context frames must be >= 0, got {context}"
        self.rows = [torch.as_tensor(r) for r in frames.sequence_rows()]
        self.lengths = [len(r) for r in self.rows]
        self.count = max(1, math.ceil(2 * sum(self.lengths) / self.window))
        self.windows: list[tuple[int, int]] = []
        self.inputs = frames.keypoints_uv
        self.new_epoch(0)

    def new_epoch(self, epoch: int, inputs: torch.Tensor | None = None) -> None:
        """The epoch's windows, a pure function of the seed and the epoch (so resuming is exact), over
        the encoder's per-frame `inputs (F, J, C)` (default: the frames' keypoints)."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + 7919 * epoch + 17)
        self.windows = sample_windows(self.lengths, self.window, self.count, gen)
        self.inputs = self.frames.keypoints_uv if inputs is None else inputs

    def batch(self, ids: torch.Tensor, flip_perm: Sequence[int] | None = None,
              mirror: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(inputs (B, before + T + after, J, C), xyz (B, T, J, 3), valid (B, T) bool)` of windows `ids`;
        mirrored with `flip_perm` (the inputs' channels multiplied by `mirror (C,)`, default: the first
        negated)."""
        picked = [self.windows[int(i)] for i in ids]
        frames_xyz = self.frames.target_xyz
        span = self.before + self.window + self.after
        uv = torch.stack([self.inputs[gather_window(self.rows[s], start - self.before, span)] for s, start in picked])
        xyz = torch.stack([frames_xyz[gather_window(self.rows[s], start, self.window)] for s, start in picked])
        valid = torch.stack([
            torch.as_tensor(window_index(self.lengths[s], start, self.window) == np.arange(start, start + self.window))
            for s, start in picked
        ])
        if flip_perm is not None:
            perm = list(flip_perm)
            uv = flip_keypoints(uv, perm) if mirror is None else uv[..., perm, :] * mirror.to(uv)
            xyz = flip_pose(xyz, perm)
        return uv, xyz, valid
