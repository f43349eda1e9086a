"""A frame lifter that learns per CPU second: a Martinez-style residual MLP over the whole pose.

The paper's frame-setting f_ST comes from a GraFormer-like lifter (`context_frame.py`). On a CPU
budget the MLP wins: at the same wall time on Human3.6M (one core, ground-truth 2D, held-out S8) it
reached a lower error than the graph lifter, because a step costs a few large matrix products
instead of many small per-joint ones (docs/EXPERIMENTS.md). Its per-joint features for g are a
projection of the last hidden state, one `width`-channel vector per joint.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.net(h)


class MLPContextEncoder(nn.Module):
    """`forward(x (B, J, in_dim)) -> (xyz (B, J, 3), features (B, J, width))`; `xyz` is root-relative
    (joint 0 exactly zero)."""

    def __init__(self, num_joints: int, in_dim: int, width: int = 64, hidden: int = 1024, blocks: int = 2,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if num_joints < 1 or in_dim < 1 or width < 1 or hidden < 1 or blocks < 1:
            raise ValueError("the MLP lifter needs positive joints, input channels, width, hidden size and blocks")
        self.num_joints, self.in_dim, self.width = num_joints, in_dim, width
        self.embed = nn.Sequential(nn.Linear(num_joints * in_dim, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout))
        self.blocks = nn.Sequential(*(ResidualBlock(hidden, dropout) for _ in range(blocks)))
        self.xyz = nn.Linear(hidden, num_joints * 3)
        self.features = nn.Linear(hidden, num_joints * width)
        self.norm_out = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        h = self.blocks(self.embed(x.reshape(b, -1)))
        xyz = self.xyz(h).reshape(b, self.num_joints, 3)
        features = self.norm_out(self.features(h).reshape(b, self.num_joints, self.width))
        return xyz - xyz[:, :1], features
