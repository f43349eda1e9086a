"""Skeleton graphs and the graph-transformer layers shared by the denoiser and the lifter.

Chebyshev graph convolution (Defferrard et al. 2016) as used by GraFormer: `y = sum_k T_k(L~) x W_k`
with `L~ = 2 L / lambda_max - I` the scaled normalised Laplacian. `K` is the polynomial order, so a
layer has `K + 1` weight matrices (GraFormer's K = 2 convention). The polynomials are fixed dense
`(K + 1, J, J)` buffers: for skeleton-sized graphs two small matmuls beat any sparse kernel on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def adjacency_from_parents(parents: Sequence[int], self_loops: bool = False) -> torch.Tensor:
    """Symmetric 0/1 adjacency `(J, J)` (float32) of a kinematic tree; the root has parent `-1`."""
    J = len(parents)
    assert J >= 1, "empty skeleton"
    adj = torch.zeros(J, J)
    for child, parent in enumerate(parents):
        if parent < 0:
            continue
        assert parent < J and parent != child, f"joint {child} has invalid parent {parent}"
        adj[child, parent] = adj[parent, child] = 1.0
    if self_loops:
        adj += torch.eye(J)
    return adj


def normalized_laplacian(adjacency: torch.Tensor) -> torch.Tensor:
    """`L = I - D^-1/2 A D^-1/2`; isolated joints get a zero row/column in the `A` term."""
    deg = adjacency.sum(-1)
    inv_sqrt = torch.where(deg > 0, deg.clamp(min=1e-12).rsqrt(), torch.zeros_like(deg))
    eye = torch.eye(adjacency.shape[-1], dtype=adjacency.dtype, device=adjacency.device)
    return eye - inv_sqrt[:, None] * adjacency * inv_sqrt[None, :]


def scaled_laplacian(adjacency: torch.Tensor, lambda_max: float | None = None) -> torch.Tensor:
    """`L~ = 2 L / lambda_max - I`, spectrum in `[-1, 1]`; `lambda_max` defaults to the exact one."""
    lap = normalized_laplacian(adjacency.double())
    if lambda_max is None:
        lambda_max = float(torch.linalg.eigvalsh(lap).max())
    lambda_max = max(lambda_max, 1e-6)  # a single joint has L = 0
    return (2.0 / lambda_max * lap - torch.eye(lap.shape[-1], dtype=lap.dtype)).to(adjacency.dtype)


def chebyshev_polynomials(l_tilde: torch.Tensor, K: int) -> torch.Tensor:
    """`T_0 .. T_K` of a matrix, stacked `(K + 1, J, J)`: `T_0 = I`, `T_1 = L~`, `T_k = 2 L~ T_{k-1} - T_{k-2}`."""
    assert K >= 0, f"polynomial order must be >= 0, got {K}"
    polys = [torch.eye(l_tilde.shape[-1], dtype=l_tilde.dtype, device=l_tilde.device)]
    if K >= 1:
        polys.append(l_tilde)
    for _ in range(2, K + 1):
        polys.append(2.0 * l_tilde @ polys[-1] - polys[-2])
    return torch.stack(polys)


class ChebConv(nn.Module):
    """Chebyshev graph convolution `(..., J, in_dim) -> (..., J, out_dim)` of order `K`."""

    def __init__(self, in_dim: int, out_dim: int, adjacency: torch.Tensor, K: int = 2, bias: bool = True) -> None:
        super().__init__()
        assert adjacency.dim() == 2 and adjacency.shape[0] == adjacency.shape[1], "adjacency must be (J, J)"
        assert torch.equal(adjacency, adjacency.T), "adjacency must be symmetric"
        self.in_dim, self.out_dim, self.K = in_dim, out_dim, K
        polys = chebyshev_polynomials(scaled_laplacian(adjacency.float()), K)
        # Derived from the skeleton, so kept out of checkpoints.
        self.register_buffer("polys", polys, persistent=False)
        # polys_cat[i, j * (K + 1) + k] = T_k[i, j]: lets one matmul sum over joints and orders.
        polys_cat = polys.permute(1, 2, 0).reshape(polys.shape[1], -1).contiguous()
        self.register_buffer("polys_cat", polys_cat, persistent=False)
        self.weight = nn.Parameter(torch.empty(K + 1, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim)) if bias else None
        nn.init.xavier_uniform_(self.weight.view(-1, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        J = self.polys.shape[-1]
        assert x.shape[-2:] == (J, self.in_dim), f"expected (..., {J}, {self.in_dim}), got {tuple(x.shape)}"
        lead = x.shape[:-2]
        # Apply all K+1 weight matrices in one GEMM, then mix joints and orders in one matmul.
        w_cat = self.weight.permute(1, 0, 2).reshape(self.in_dim, -1)
        z = (x.reshape(-1, J, self.in_dim) @ w_cat).reshape(-1, J * (self.K + 1), self.out_dim)
        y = torch.matmul(self.polys_cat.to(x.dtype), z)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(lead + (J, self.out_dim))


class JointAttention(nn.Module):
    """Multi-head self-attention over the joints of each pose."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        assert width % heads == 0, f"width {width} must be divisible by heads {heads}"
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, J, W = x.shape
        q, k, v = self.qkv(x).reshape(B, J, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(B, J, W))


class GraphTransformerBlock(nn.Module):
    """GraFormer-style residual block: joint attention, a two-layer Chebyshev GCN, a GELU MLP.

    An optional conditioning `cond` (`(B, width)` or `(B, J, width)`) is added to the stream first.
    """

    def __init__(
        self, width: int, adjacency: torch.Tensor, heads: int = 4, mlp_ratio: float = 2.0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        hidden = round(width * mlp_ratio)
        self.norm_attn = nn.LayerNorm(width)
        self.attn = JointAttention(width, heads, dropout)
        self.norm_gcn = nn.LayerNorm(width)
        self.gcn1 = ChebConv(width, width, adjacency)
        self.gcn2 = ChebConv(width, width, adjacency)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is not None:
            x = x + (cond.unsqueeze(1) if cond.dim() == 2 else cond)
        x = x + self.drop(self.attn(self.norm_attn(x)))
        x = x + self.drop(self.gcn2(F.gelu(self.gcn1(self.norm_gcn(x)))))
        return x + self.drop(self.mlp(self.norm_mlp(x)))


@dataclass(frozen=True)
class TrunkSize:
    """The size of a network's stack of transformer blocks (the frame lifter's, the video encoder's
    and g's): channels per joint, blocks, attention heads, dropout, and the MLP's hidden width as a
    multiple of `width`."""

    width: int = 96
    blocks: int = 4
    heads: int = 4
    dropout: float = 0.0
    mlp_ratio: float = 2.0

    def __post_init__(self) -> None:
        assert self.width >= 1 and self.blocks >= 1 and self.heads >= 1, f"need width, blocks, heads >= 1: {self}"

    def graph_blocks(self, adjacency: torch.Tensor) -> nn.ModuleList:
        """`blocks` GraphTransformerBlocks of this size over the skeleton's `adjacency`."""
        return nn.ModuleList(GraphTransformerBlock(self.width, adjacency, self.heads, self.mlp_ratio, self.dropout)
                             for _ in range(self.blocks))


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer position encoding of (possibly fractional) steps `t (B,)` -> `(B, dim)`."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))
