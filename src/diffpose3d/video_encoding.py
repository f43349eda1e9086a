"""Video context encoder: sliding-window inference over whole sequences, and stage-1 training.

`encode_sequences` runs the seq2seq encoder on overlapping windows and averages the overlaps, so
every frame gets a pose and context features computed from a window of frames around it, whatever
the sequence length (chunks shorter than the window are edge-padded). `train_video_encoder` is the
video counterpart of `train.train_encoder`: random windows, MPJPE over the window, AdamW + OneCycle,
an EMA copy evaluated on the validation sequences, best EMA weights kept.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

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


def sequences_mpjpe_mm(
    encoder: Encoder, keypoints_uv: Sequence[torch.Tensor], xyz: Sequence[torch.Tensor], window: int, stride: int,
    device: torch.device | str | None = None,
) -> float:
    """MPJPE (mm) over every frame of the sequences, poses from `encode_sequences` (no flip TTA)."""
    preds = encode_sequences(encoder, keypoints_uv, window, stride, device=device)
    err = [(p - (t - t[:, :1]).float()).norm(dim=-1).reshape(-1) for (p, _), t in zip(preds, xyz)]
    return float(torch.cat(err).mean() * 1000.0)


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


def _gather_batch(
    kp: Sequence[torch.Tensor], xyz: Sequence[torch.Tensor], windows: Sequence[tuple[int, int]], window: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    uv = torch.stack([gather_window(kp[i], s, window) for i, s in windows])
    target = torch.stack([gather_window(xyz[i], s, window) for i, s in windows])
    valid = torch.stack([
        torch.as_tensor(window_index(int(kp[i].shape[0]), s, window) == np.arange(s, s + window)) for i, s in windows
    ])
    return uv, target, valid


def train_video_encoder(
    encoder: torch.nn.Module,
    train_kp: Sequence[torch.Tensor],
    train_xyz: Sequence[torch.Tensor],
    val_kp: Sequence[torch.Tensor] | None,
    val_xyz: Sequence[torch.Tensor] | None,
    *,
    window: int = 27,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    ema_decay: float = 0.995,
    flip_perm: Sequence[int] | None = None,
    flip_augment: bool = True,
    max_minutes: float = 0.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    velocity_weight: float = 0.0,
    eval_every: int = 2,
    val_stride: int | None = None,
    log: Callable[[dict], None] | None = None,
) -> dict:
    """Stage 1 for the video model: fit `encoder` to lift 2D windows to root-relative 3D.

    Each epoch draws `ceil(2 * train_frames / window)` random windows (`data.windows.sample_windows`,
    every frame equally likely to be covered); the loss is MPJPE over the real frames of each window
    (padded copies excluded) plus `velocity_weight` times the velocity error (off by default). With
    `flip_augment` each window is mirrored with probability 1/2 (needs `flip_perm`). An EMA copy is
    scored every `eval_every` epochs on the validation sequences (sliding windows, stride
    `val_stride`, default `window // 2`); the best EMA weights end up in `encoder`. `max_minutes > 0`
    stops after the epoch that exhausts the budget. Targets are made root-relative here.
    Returns `{"best_val_mpjpe_mm", "best_epoch", "epochs_run", "windows_per_second", "history"}`.
    """
    assert len(train_kp) == len(train_xyz) and len(train_kp) > 0, "need matching, non-empty train sequences"
    assert not flip_augment or flip_perm is not None, "flip_augment needs flip_perm"
    device = torch.device(device)
    has_val = bool(val_kp) and val_xyz is not None
    val_stride = val_stride or max(1, window // 2)
    encoder.to(device)
    train_kp = [k.float() for k in train_kp]
    train_xyz = [(x - x[:, :1]).float() for x in train_xyz]
    lengths = [int(k.shape[0]) for k in train_kp]
    per_epoch = math.ceil(2 * sum(lengths) / window)
    steps_per_epoch = math.ceil(per_epoch / batch_size)

    ema = AveragedModel(encoder, multi_avg_fn=get_ema_multi_avg_fn(ema_decay))
    opt = torch.optim.AdamW(encoder.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps_per_epoch, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    start_time = time.monotonic()
    best = (math.inf, copy.deepcopy(ema.module.state_dict()), 0)
    history: list[dict] = []
    windows_seen, train_seconds = 0, 0.0
    epoch = 0
    bar = tqdm(range(epochs), desc="stage 1: video context encoder", disable=not progress)
    for epoch in bar:
        encoder.train()
        t_epoch = time.monotonic()
        losses = []
        windows = sample_windows(lengths, window, per_epoch, gen)
        for b in range(0, len(windows), batch_size):
            uv, target, valid = _gather_batch(train_kp, train_xyz, windows[b : b + batch_size], window)
            if flip_augment:
                flip = (torch.rand(uv.shape[0], generator=gen) < 0.5)[:, None, None, None]
                uv = torch.where(flip, flip_keypoints(uv, flip_perm), uv)
                target = torch.where(flip, flip_pose(target, flip_perm), target)
            uv, target, valid = uv.to(device), target.to(device), valid.to(device)
            loss, mpjpe = window_loss(encoder(uv)[0], target, valid, velocity_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema.update_parameters(encoder)
            losses.append(mpjpe.item())
            windows_seen += uv.shape[0]
        train_seconds += time.monotonic() - t_epoch
        record: dict = {"stage": 1, "epoch": epoch + 1, "train_mpjpe_mm": 1000 * float(np.mean(losses)),
                        "val_mpjpe_mm": None}
        expired = max_minutes > 0 and time.monotonic() - start_time > max_minutes * 60.0
        last = epoch + 1 == epochs or expired
        if has_val and ((epoch + 1) % eval_every == 0 or last):
            val_mm = sequences_mpjpe_mm(ema.module, val_kp, val_xyz, window, val_stride, device)
            record["val_mpjpe_mm"] = val_mm
            if val_mm < best[0]:
                best = (val_mm, copy.deepcopy(ema.module.state_dict()), epoch + 1)
            bar.set_postfix(loss_mm=f"{record['train_mpjpe_mm']:.1f}", val_mm=f"{val_mm:.1f}")
        history.append(record)
        if log:
            log(record)
        if last:
            break
    if not has_val:  # nothing to select on: keep the final EMA weights
        best = (math.nan, copy.deepcopy(ema.module.state_dict()), epoch + 1)
    encoder.load_state_dict(best[1])
    return {
        "best_val_mpjpe_mm": best[0],
        "best_epoch": best[2],
        "epochs_run": epoch + 1,
        "windows_per_second": windows_seen / max(train_seconds, 1e-9),
        "history": history,
    }
