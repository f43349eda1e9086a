"""Video-setting context encoder f_ST: a VideoPose3D-style dilated temporal convolution.

The whole pose of each frame (J x in_dim channels) is one input vector; a kernel-3 convolution
(dilation 1) expands it to `channels`, then residual blocks with dilations 3, 9, 27, ... (each a
kernel-3 dilated convolution and a 1x1 convolution, both with BatchNorm, ReLU and dropout) grow the
receptive field to R = 3^(blocks + 1) frames (27, 81, 243). The convolutions are "valid" (no
padding): `T + R - 1` input frames give `T` output frames, so a training chunk of `T` consecutive
frames shares its convolution work (Pavllo et al., CVPR 2019), and a whole sequence, edge-padded by
`R - 1` frames, is encoded in one pass.

Centred: output frame t sees inputs t - (R-1)/2 .. t + (R-1)/2. Causal: t - (R-1) .. t (each block's
residual connection then takes the latest frames of its window, as VideoPose3D's causal model).

Per output frame, a 1x1 convolution gives the root-relative 3D pose and another the per-joint
features f_ST (LayerNorm-ed, `width` channels per joint), as the MLP frame lifter does: g is then
conditioned on the same kind of context whichever encoder made it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def receptive_blocks(frames: int) -> int:
    """The number of residual blocks whose receptive field is `frames` = 3^(blocks + 1); ValueError
    when `frames` is not a power of 3 of at least 9."""
    blocks, field = 0, 3
    while field < frames:
        field *= 3
        blocks += 1
    if field != frames or blocks < 1:
        raise ValueError(f"a temporal convolution's receptive field is a power of 3 (9, 27, 81, 243), got {frames}")
    return blocks


class _Block(nn.Module):
    """A residual block: kernel-3 convolution with `dilation`, then 1x1, each BN + ReLU + dropout."""

    def __init__(self, channels: int, dilation: int, dropout: float, causal: bool, momentum: float) -> None:
        super().__init__()
        self.dilation, self.causal = dilation, causal
        self.conv = nn.Conv1d(channels, channels, 3, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm1d(channels, momentum=momentum)
        self.mix = nn.Conv1d(channels, channels, 1, bias=False)
        self.bn_mix = nn.BatchNorm1d(channels, momentum=momentum)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.dilation
        residual = x[:, :, 2 * d:] if self.causal else x[:, :, d:x.shape[2] - d]
        h = self.drop(F.relu(self.bn(self.conv(x))))
        return residual + self.drop(F.relu(self.bn_mix(self.mix(h))))


class TemporalConvEncoder(nn.Module):
    """`forward(uv (B, T, J, in_dim)) -> (xyz (B, T, J, 3), features (B, T, J, width))`, seq2seq: the
    clip is edge-padded by the receptive field's `frames - 1` frames (half on each side, or all
    before it when `causal`). `forward(uv, padded=True)` takes those context frames as given:
    `(B, T + frames - 1, J, in_dim)` in, `T` frames out. `xyz` is root-relative."""

    def __init__(self, num_joints: int, in_dim: int, frames: int = 27, width: int = 64, channels: int = 1024,
                 dropout: float = 0.25, causal: bool = False, momentum: float = 0.1) -> None:
        super().__init__()
        if num_joints < 1 or in_dim < 1 or width < 1 or channels < 1:
            raise ValueError("the temporal convolution needs positive joints, input channels, width and channels")
        blocks = receptive_blocks(frames)
        self.num_joints, self.in_dim, self.frames, self.width, self.causal = num_joints, in_dim, frames, width, causal
        self.expand = nn.Conv1d(num_joints * in_dim, channels, 3, bias=False)
        self.bn_expand = nn.BatchNorm1d(channels, momentum=momentum)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(channels, 3 ** (i + 1), dropout, causal, momentum) for i in range(blocks))
        self.xyz = nn.Conv1d(channels, num_joints * 3, 1)
        # The pose head starts at zero: a random head's metre-sized poses cost the first few hundred
        # steps (measured on Human3.6M: training loss 0.27 m after 135 steps, 0.09 m from zero).
        nn.init.zeros_(self.xyz.weight)
        nn.init.zeros_(self.xyz.bias)
        self.features = nn.Conv1d(channels, num_joints * width, 1)
        self.norm_out = nn.LayerNorm(width)

    @property
    def context_frames(self) -> tuple[int, int]:
        """Input frames an output frame sees before and after itself."""
        return (self.frames - 1, 0) if self.causal else ((self.frames - 1) // 2, (self.frames - 1) // 2)

    def pad(self, uv: torch.Tensor) -> torch.Tensor:
        """`(B, T, ...)` -> `(B, T + frames - 1, ...)`, the first and last frames repeated."""
        before, after = self.context_frames
        first, last = uv[:, :1], uv[:, -1:]
        return torch.cat([first.expand(-1, before, *uv.shape[2:]), uv, last.expand(-1, after, *uv.shape[2:])], dim=1)

    def forward(self, uv: torch.Tensor, padded: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        J = self.num_joints
        assert uv.dim() == 4 and uv.shape[2:] == (J, self.in_dim) and uv.shape[1] >= 1, (
            f"uv must be (B, T, {J}, {self.in_dim}), got {tuple(uv.shape)}"
        )
        if not padded:
            uv = self.pad(uv)
        B, T_in = uv.shape[:2]
        T = T_in - self.frames + 1
        assert T >= 1, f"a padded clip needs at least {self.frames} frames, got {T_in}"
        x = uv.reshape(B, T_in, -1).transpose(1, 2)
        x = self.drop(F.relu(self.bn_expand(self.expand(x))))
        for block in self.blocks:
            x = block(x)
        xyz = self.xyz(x).transpose(1, 2).reshape(B, T, J, 3)
        features = self.norm_out(self.features(x).transpose(1, 2).reshape(B, T, J, self.width))
        return xyz - xyz[:, :, :1], features
