"""Video context encoder: sliding-window inference over whole sequences, and stage-1 windows.

`encode_sequences` runs the seq2seq encoder on overlapping windows and averages the overlaps, so
every frame gets a pose and context features computed from a window of frames around it, whatever
the sequence length (chunks shorter than the window are edge-padded). `TrainingWindows` and
`window_loss` are what stage 1 (`train.train_encoder`) needs to train it on random windows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from diffpose3d.data.windows import (
    flip_keypoints,
    flip_pose,
    gather_window,
    sample_windows,
    sliding_windows,
    stitch_into,
    window_index,
    window_weights,
)

Encoder = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _device_of(encoder: Encoder, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    params = next(iter(encoder.parameters()), None) if isinstance(encoder, torch.nn.Module) else None
    return params.device if params is not None else torch.device("cpu")


@torch.no_grad()
def encode_sequences(
    encoder: Encoder,
    keypoints_uv: Sequence[torch.Tensor],
    window: int,
    stride: int,
    flip_perm: Sequence[int] | None = None,
    batch_windows: int = 64,
    device: torch.device | str | None = None,
    taper: bool = False,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-frame `(xyz (T_i, J, 3), features (T_i, J, C))` (CPU, float32) for each `(T_i, J, in_dim)`.

    Windows of `window` frames every `stride` frames (the last aligned to the end) are run in batches
    of at most `batch_windows` and their outputs averaged per frame (`taper`: centre-weighted).
    With `flip_perm`, each window is also run mirrored: `xyz` is the mean of the direct pose and the
    un-mirrored pose of the mirrored pass; `features` is the mean of the direct features and the
    mirrored pass's features re-indexed by joint (`f_flip[..., perm, :]`, so each joint is paired
    with the mirrored view of itself). Feature channels have no known mirror symmetry, so this is a
    two-view ensemble rather than an exact un-mirroring: use the same setting when training the
    denoiser on these features and at inference. A module runs in eval mode (its mode is restored).
    """
    device = _device_of(encoder, device)
    was_training = isinstance(encoder, torch.nn.Module) and encoder.training
    if isinstance(encoder, torch.nn.Module):
        encoder.eval()
    weights = window_weights(window, taper)
    jobs = [(i, s) for i, kp in enumerate(keypoints_uv) for s in sliding_windows(int(kp.shape[0]), window, stride)]
    sums: dict[int, list[torch.Tensor]] = {}
    for b in range(0, len(jobs), batch_windows):
        batch = jobs[b : b + batch_windows]
        uv = torch.stack([gather_window(keypoints_uv[i], s, window) for i, s in batch]).to(device, torch.float32)
        if flip_perm is None:
            xyz, feats = encoder(uv)
        else:
            xyz_both, feats_both = encoder(torch.cat([uv, flip_keypoints(uv, flip_perm)]))
            n = uv.shape[0]
            perm = torch.as_tensor(list(flip_perm), device=feats_both.device)
            xyz = 0.5 * (xyz_both[:n] + flip_pose(xyz_both[n:], flip_perm))
            feats = 0.5 * (feats_both[:n] + feats_both[n:][..., perm, :])
        xyz, feats = xyz.cpu(), feats.cpu()
        for row, (i, s) in enumerate(batch):
            if i not in sums:
                T = int(keypoints_uv[i].shape[0])
                sums[i] = [torch.zeros((T,) + tuple(xyz.shape[2:]), dtype=torch.float64),
                           torch.zeros((T,) + tuple(feats.shape[2:]), dtype=torch.float64),
                           torch.zeros(T, dtype=torch.float64), torch.zeros(T, dtype=torch.float64)]
            acc = sums[i]
            stitch_into(acc[0], acc[2], s, xyz[row], weights)
            stitch_into(acc[1], acc[3], s, feats[row], weights)
    out = []
    for i, kp in enumerate(keypoints_uv):
        if i not in sums:  # an empty sequence
            J = int(kp.shape[1])
            out.append((torch.zeros(0, J, 3), torch.zeros(0, J, getattr(encoder, "width", 0))))
            continue
        xyz_sum, feat_sum, w_xyz, w_feat = sums[i]
        out.append(((xyz_sum / w_xyz[:, None, None]).float(), (feat_sum / w_feat[:, None, None]).float()))
    if was_training:
        encoder.train()
    return out


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
    windows of the set's current keypoints (so redrawn evidence is used) and ground truth.
    """

    def __init__(self, frames, window: int, seed: int = 0) -> None:
        self.frames, self.window, self.seed = frames, int(window), int(seed)
        self.rows = [torch.as_tensor(r) for r in frames.sequence_rows()]
        self.lengths = [len(r) for r in self.rows]
        self.count = max(1, math.ceil(2 * sum(self.lengths) / self.window))
        self.windows: list[tuple[int, int]] = []
        self.new_epoch(0)

    def new_epoch(self, epoch: int) -> None:
        """The epoch's windows: a pure function of the seed and the epoch (so resuming is exact)."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + 7919 * epoch + 17)
        self.windows = sample_windows(self.lengths, self.window, self.count, gen)

    def batch(self, ids: torch.Tensor, flip_perm: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(uv (B, T, J, 2), xyz (B, T, J, 3), valid (B, T) bool)` of windows `ids`; mirrored with `flip_perm`."""
        picked = [self.windows[int(i)] for i in ids]
        frames_kp, frames_xyz = self.frames.keypoints_uv, self.frames.target_xyz
        uv = torch.stack([frames_kp[gather_window(self.rows[s], start, self.window)] for s, start in picked])
        xyz = torch.stack([frames_xyz[gather_window(self.rows[s], start, self.window)] for s, start in picked])
        valid = torch.stack([
            torch.as_tensor(window_index(self.lengths[s], start, self.window) == np.arange(start, start + self.window))
            for s, start in picked
        ])
        if flip_perm is not None:
            uv, xyz = flip_keypoints(uv, list(flip_perm)), flip_pose(xyz, list(flip_perm))
        return uv, xyz, valid


def local_motion(values: torch.Tensor, rows: Sequence[np.ndarray], radius: int) -> torch.Tensor:
    """`(F, J, C)` per-frame values -> `(F, J, 2 * radius * C)`: for offsets -radius..-1, 1..radius
    (in that order), the value `offset` frames away in the frame's own sequence minus its own
    (edge-clamped at the sequence's ends, so a missing neighbour reads as no motion)."""
    out = values.new_zeros(values.shape[:2] + (2 * radius * values.shape[2],))
    offsets = [o for o in range(-radius, radius + 1) if o != 0]
    for r in rows:
        r = torch.as_tensor(np.asarray(r), dtype=torch.long)
        seq = values[r]
        position = torch.arange(len(r))
        out[r] = torch.cat([seq[(position + o).clamp(0, len(r) - 1)] - seq for o in offsets], dim=-1)
    return out
