"""Video-setting context encoder f_ST: a MixSTE-style seq2seq 2D -> 3D lifter.

Each frame's joints are embedded by a shared linear layer from the frame lifter's input (keypoints
root-centred, plus the root's position as a perspective cue), a learned joint (spatial) and a
learned frame (temporal) position embedding are added, then `depth` pairs of blocks alternate
between the J joints of each frame (spatial: the frame lifter's GraFormer block, joint attention +
Chebyshev graph convolution over the skeleton) and the T frames of each joint (temporal: a
transformer block, weights shared by all joints). Every frame of the window gets a pose (seq2seq),
and the hidden state after the final LayerNorm is the per-frame, per-joint context f_ST.

The graph convolution and the root-centred input are not in MixSTE: they give the spatial blocks
the frame lifter's inductive bias, so the single-frame phase of stage 1 (`train.train_encoder`)
learns the per-frame lifting about as fast as the frame lifter. Measured on HumanEva-I, one core:
plain transformer blocks on raw coordinates, trained on windows only, were at 124 mm validation
MPJPE after 1.9 min; this encoder, single frames then windows, at 77 mm after 1.9 min and 57 mm
after 5 min (the frame lifter: 56 mm after 3.9 min).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from diffpose3d.models.graph import JointAttention, TrunkSize, adjacency_from_parents

DEFAULT_SIZE = TrunkSize(width=128, blocks=4)


class TransformerBlock(nn.Module):
    """Pre-norm block: multi-head self-attention over axis 1 of `(B, N, width)`, then a GELU MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 2.0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = round(width * mlp_ratio)
        self.norm_attn = nn.LayerNorm(width)
        # JointAttention is plain scaled_dot_product_attention over axis 1, whatever that axis is.
        self.attn = JointAttention(width, heads, dropout)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm_attn(x)))
        return x + self.drop(self.mlp(self.norm_mlp(x)))


class VideoContextEncoder(nn.Module):
    """`forward(uv (B, T, J, in_dim)) -> (xyz (B, T, J, 3), features (B, T, J, width))`.

    `xyz` is root-relative (joint 0 exactly zero in every frame). `T` may be at most `frames`; a
    shorter clip uses the centre `T` rows of the learned temporal embedding (the embedding is per
    frame offset, so slicing keeps the frame spacing it was trained with; callers that want the
    training conditions exactly should edge-pad short clips to `frames`, see `data.windows`).
    """

    def __init__(self, parents: Sequence[int], in_dim: int = 2, frames: int = 27, size: TrunkSize = DEFAULT_SIZE) -> None:
        super().__init__()
        assert in_dim >= 1 and frames >= 1, f"need in_dim, frames >= 1, got {in_dim}, {frames}"
        self.parents = list(parents)
        width = size.width
        self.in_dim, self.frames, self.width = in_dim, frames, width
        J = len(self.parents)
        self.embed = nn.Linear(2 * in_dim, width)
        self.joint_pos = nn.Parameter(torch.zeros(1, 1, J, width))
        self.time_pos = nn.Parameter(torch.zeros(1, frames, 1, width))
        nn.init.trunc_normal_(self.joint_pos, std=0.02)
        nn.init.trunc_normal_(self.time_pos, std=0.02)
        self.drop = nn.Dropout(size.dropout)
        self.spatial = size.graph_blocks(adjacency_from_parents(self.parents))
        self.temporal = nn.ModuleList(TransformerBlock(width, size.heads, size.mlp_ratio, size.dropout)
                                      for _ in range(size.blocks))
        self.norm_out = nn.LayerNorm(width)
        self.head = nn.Linear(width, 3)

    def temporal_embedding(self, T: int) -> torch.Tensor:
        """The `(1, T, 1, width)` frame embedding for a clip of `T <= frames` frames (centre slice)."""
        assert 1 <= T <= self.frames, f"clip length must be in 1..{self.frames}, got {T}"
        first = (self.frames - T) // 2
        return self.time_pos[:, first : first + T]

    def forward(self, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        J = len(self.parents)
        assert uv.dim() == 4 and uv.shape[2:] == (J, self.in_dim), (
            f"uv must be (B, T, {J}, {self.in_dim}), got {tuple(uv.shape)}"
        )
        B, T = uv.shape[:2]
        root = uv[:, :, :1].expand_as(uv)
        x = self.drop(self.embed(torch.cat([uv - root, root], dim=-1)) + self.joint_pos + self.temporal_embedding(T))
        W = self.width
        for spatial, temporal in zip(self.spatial, self.temporal):
            x = spatial(x.reshape(B * T, J, W)).reshape(B, T, J, W)
            x = x.transpose(1, 2).reshape(B * J, T, W)
            x = temporal(x).reshape(B, J, T, W).transpose(1, 2)
        features = self.norm_out(x)
        xyz = self.head(features)
        return xyz - xyz[:, :, :1], features
