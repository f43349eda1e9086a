"""The context f_ST of many frames: the frame lifter in batches, the video encoders over whole sequences.

A frame's video context needs its neighbours, so it is computed over whole sequences, never per
batch: the temporal convolution runs over each edge-padded sequence in one pass (`whole_sequences`);
`encode_sequences` runs the transformer on overlapping windows and averages the overlaps, so
every frame gets a pose and context features computed from a window of frames around it, whatever
the sequence length (chunks shorter than the window are edge-padded), with flip test-time
augmentation. `local_motion` gives g the anchor's motion around each frame.
`run_encoder` is the one entry point, for the model's encoder or an EMA copy of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from diffpose3d.config import EncoderConfig
from diffpose3d.data.mirror import flip_keypoints, flip_pose
from diffpose3d.data.windows import gather_window, sliding_windows, stitch_into, window_weights

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
    mirror: torch.Tensor | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-frame `(xyz (T_i, J, 3), features (T_i, J, C))` (CPU, float32) for each `(T_i, J, in_dim)`.

    Windows of `window` frames every `stride` frames (the last aligned to the end) are run in batches
    of at most `batch_windows` and their outputs averaged per frame (`taper`: centre-weighted).
    With `flip_perm`, each window is also run mirrored: `xyz` is the mean of the direct pose and the
    un-mirrored pose of the mirrored pass; `features` is the mean of the direct features and the
    mirrored pass's features re-indexed by joint (`f_flip[..., perm, :]`, so each joint is paired
    with the mirrored view of itself). Feature channels have no known mirror symmetry, so this is a
    two-view ensemble rather than an exact un-mirroring: use the same setting when training the
    denoiser on these features and at inference. `mirror (C,)`: each input channel's sign under the
    mirror (default: the first negated). A module runs in eval mode (its mode is restored).
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
        xyz, feats = encoder(uv) if flip_perm is None else two_views(encoder, uv, flip_perm, mirror)
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


def whole_sequences(
    encoder: Encoder, keypoints_uv: torch.Tensor, rows: Sequence[np.ndarray] | None, flip_perm: Sequence[int] | None,
    mirror: torch.Tensor | None, device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seq2seq encoder that pads a clip itself (the temporal convolution) over each sequence of
    `rows` in one pass: `(xyz (F, J, 3), f_ST (F, J, C))` on the CPU; with `flip_perm`, `two_views`."""
    rows = [np.arange(keypoints_uv.shape[0])] if rows is None else list(rows)
    xyz = torch.zeros(keypoints_uv.shape[:2] + (3,))
    feats = torch.zeros(keypoints_uv.shape[:2] + (int(getattr(encoder, "width", 0)),))
    for r in rows:
        if len(r) == 0:
            continue
        r = torch.as_tensor(np.asarray(r), dtype=torch.long)
        clip = keypoints_uv[r].unsqueeze(0).to(device, torch.float32)
        x, f = encoder(clip) if flip_perm is None else two_views(encoder, clip, flip_perm, mirror)
        xyz[r], feats[r] = x[0].float().cpu(), f[0].float().cpu()
    return xyz, feats


def two_views(encoder: Encoder, x: torch.Tensor, perm: Sequence[int], mirror: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip test-time augmentation: the encoder on `x (..., J, C)` and on its mirror (joints swapped,
    channels times `mirror (C,)`, default the first negated); `xyz` the mean of the direct pose and the
    un-mirrored mirrored one, features the mean of the direct ones and the mirrored pass's per joint
    re-indexed (a two-view ensemble)."""
    mirrored = flip_keypoints(x, perm) if mirror is None else x[..., list(perm), :] * mirror.to(x)
    xyz_both, feats_both = encoder(torch.cat([x, mirrored]))
    n = x.shape[0]
    index = torch.as_tensor(list(perm), device=feats_both.device)
    return 0.5 * (xyz_both[:n] + flip_pose(xyz_both[n:], perm)), 0.5 * (feats_both[:n] + feats_both[n:][..., index, :])


def local_motion(values: torch.Tensor, rows: Sequence[np.ndarray], radius: int, scale: float = 1.0,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """`(F, J, C)` per-frame values -> `(F, J, 2 * radius * C)`: for offsets -radius..-1, 1..radius
    (in that order), `scale` x the value `offset` frames away in the frame's own sequence minus its own
    (edge-clamped at the sequence's ends, so a missing neighbour reads as no motion). `out`: written
    in place (e.g. a slice of the context tensor: no full-size temporaries for a large frame set);
    frames in no sequence are left alone there."""
    shape = values.shape[:2] + (2 * radius * values.shape[2],)
    if out is None:
        out = values.new_zeros(shape)
    assert out.shape == shape, f"out must be {tuple(shape)}, got {tuple(out.shape)}"
    offsets = [o for o in range(-radius, radius + 1) if o != 0]
    for r in rows:
        r = torch.as_tensor(np.asarray(r), dtype=torch.long)
        seq = values[r]
        position = torch.arange(len(r))
        out[r] = scale * torch.cat([seq[(position + o).clamp(0, len(r) - 1)] - seq for o in offsets], dim=-1)
    return out


def frame_context(encoder: Encoder, x: torch.Tensor, config: EncoderConfig, flip_perm: Sequence[int],
                  mirror: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A frame lifter's `(xyz, f_ST)` of a batch `x (B, J, C_in)`: with `config.tta`, `two_views`."""
    return two_views(encoder, x, flip_perm, mirror) if config.tta else encoder(x)


@torch.no_grad()
def run_encoder(
    encoder: torch.nn.Module, keypoints_uv: torch.Tensor, rows: Sequence[np.ndarray] | None, config: EncoderConfig,
    flip_perm: Sequence[int], mirror: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's `(xyz (F, J, 3), f_ST (F, J, C))` on the CPU for (F, J, C_in) inputs: a frame
    lifter in batches (with `config.tta`: flip test-time augmentation, `two_views`), a video encoder
    over each sequence of `rows` (each sequence's rows in frame order; None means one sequence, in
    row order; with `config.flip`; a temporal convolution in one pass per sequence). `mirror`: the
    inputs' channel signs under a mirror. The module
    runs in eval mode (restored after)."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    try:
        if config.kind == "tcn":
            return whole_sequences(encoder, keypoints_uv, rows, flip_perm if config.flip else None, mirror, device)
        if config.kind != "video":
            parts = [frame_context(encoder, keypoints_uv[i : i + 4096].to(device), config, flip_perm, mirror)
                     for i in range(0, keypoints_uv.shape[0], 4096)]
            return torch.cat([p[0] for p in parts]).cpu(), torch.cat([p[1] for p in parts]).cpu()
        rows = [np.arange(keypoints_uv.shape[0])] if rows is None else list(rows)
        per_seq = encode_sequences(
            encoder, [keypoints_uv[torch.as_tensor(r)] for r in rows], config.frames, config.stride,
            flip_perm=flip_perm if config.flip else None, device=device, taper=True, mirror=mirror,
        )
        xyz = torch.zeros(keypoints_uv.shape[:2] + (3,))
        feats = torch.zeros(keypoints_uv.shape[:2] + (config.width,))
        for r, (x, f) in zip(rows, per_seq):
            xyz[torch.as_tensor(r)], feats[torch.as_tensor(r)] = x, f
        return xyz, feats
    finally:
        encoder.train(was_training)
