"""Frame-setting context encoder f_ST: a GraFormer-like 2D -> 3D lifter.

It is pre-trained to lift normalised 2D keypoints to root-relative 3D, then frozen; its last
hidden state per joint is the context f_ST given to the denoiser, and its xyz output can centre the
depth part of H_K.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from diffpose3d.models.graph import ChebConv, TrunkSize, adjacency_from_parents

DEFAULT_SIZE = TrunkSize(width=96, blocks=4)


class FrameContextEncoder(nn.Module):
    """`forward(uv (B, J, in_dim)) -> (xyz (B, J, 3), features (B, J, width))`.

    `xyz` is root-relative (joint 0 is exactly zero); `features` is the hidden state after the last
    block and its LayerNorm, i.e. what the xyz head reads. The input is seen root-centred, with the
    root's absolute position as extra channels (perspective cue), and every joint gets a learned
    identity embedding: the skeleton graph is left/right symmetric, so graph convolutions and
    attention alone cannot tell a left joint from its right twin.
    """

    def __init__(self, parents: Sequence[int], in_dim: int = 2, size: TrunkSize = DEFAULT_SIZE) -> None:
        super().__init__()
        assert in_dim >= 1, f"need in_dim >= 1, got {in_dim}"
        self.parents = list(parents)
        width = size.width
        self.in_dim, self.width = in_dim, width
        adjacency = adjacency_from_parents(self.parents)
        self.embed = ChebConv(2 * in_dim, width, adjacency)
        self.joint_embedding = nn.Parameter(torch.zeros(len(self.parents), width))
        nn.init.normal_(self.joint_embedding, std=0.02)
        self.blocks = size.graph_blocks(adjacency)
        self.norm_out = nn.LayerNorm(width)
        self.head = ChebConv(width, 3, adjacency)

    def forward(self, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        J = len(self.parents)
        assert uv.dim() == 3 and uv.shape[1:] == (J, self.in_dim), (
            f"uv must be (B, {J}, {self.in_dim}), got {tuple(uv.shape)}"
        )
        root = uv[:, :1].expand_as(uv)
        x = self.embed(torch.cat([uv - root, root], dim=-1)) + self.joint_embedding
        for block in self.blocks:
            x = block(x)
        features = self.norm_out(x)
        xyz = self.head(features)
        return xyz - xyz[:, :1], features
