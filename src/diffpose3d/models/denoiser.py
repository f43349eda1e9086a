"""The reverse-process network g: a GraFormer-style graph transformer that predicts h_0."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import nn

from diffpose3d.models.graph import ChebConv, TrunkSize, adjacency_from_parents, sinusoidal_embedding

DEFAULT_SIZE = TrunkSize(width=96, blocks=5)


class Denoiser(nn.Module):
    """`forward(h_k (B, J, state_dim), k (B,) long, context (B, J, context_dim)) -> h_0 (B, J, state_dim)`.

    The noisy state and the context features f_ST are concatenated per joint and embedded with a
    Chebyshev convolution; each block adds the step embedding (sinusoidal -> MLP -> per-block
    linear) and, if `context_per_block`, a per-block projection of f_ST. Steps are rescaled to
    `k * 1000 / num_steps` before the sinusoidal embedding, so its frequencies suit any K.
    `context_dim = 0` builds an unconditional model (then pass `context=None`).
    """

    def __init__(
        self,
        parents: Sequence[int],
        state_dim: int = 5,
        context_dim: int = 96,
        num_steps: int = 50,
        size: TrunkSize = DEFAULT_SIZE,
        context_per_block: bool = True,
    ) -> None:
        super().__init__()
        assert state_dim >= 1 and context_dim >= 0, f"bad dims: state {state_dim}, context {context_dim}"
        assert num_steps >= 1, f"num_steps (the schedule's K) must be >= 1, got {num_steps}"
        self.parents = list(parents)
        width, blocks = size.width, size.blocks
        self.state_dim, self.context_dim, self.width, self.num_steps = state_dim, context_dim, width, num_steps
        adjacency = adjacency_from_parents(self.parents)
        self.embed = ChebConv(state_dim + context_dim, width, adjacency)
        self.step_mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.step_proj = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        use_ctx = context_per_block and context_dim > 0
        self.context_proj = nn.ModuleList(nn.Linear(context_dim, width) for _ in range(blocks)) if use_ctx else None
        self.blocks = size.graph_blocks(adjacency)
        self.norm_out = nn.LayerNorm(width)
        self.head = ChebConv(width, state_dim, adjacency)

    def forward(self, h_k: torch.Tensor, k: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self._forward(h_k, k, context, bf16_blocks=False)

    def forward_bf16(self, h_k: torch.Tensor, k: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """`forward` with the transformer blocks under bfloat16 autocast (inference); the embedding of
        h_k and the head stay float32, so coordinates are not rounded to bfloat16."""
        return self._forward(h_k, k, context, bf16_blocks=True)

    def _forward(self, h_k: torch.Tensor, k: torch.Tensor, context: torch.Tensor | None, bf16_blocks: bool) -> torch.Tensor:
        B, J, D = h_k.shape
        assert (len(self.parents), self.state_dim) == (J, D), (
            f"h_k must be (B, {len(self.parents)}, {self.state_dim}), got {tuple(h_k.shape)}"
        )
        assert k.shape == (B,), f"k must be (B,) = ({B},), got {tuple(k.shape)}"
        if self.context_dim > 0:
            assert context is not None and context.shape == (B, J, self.context_dim), (
                f"context must be (B, J, C) = {(B, J, self.context_dim)}, got "
                f"{None if context is None else tuple(context.shape)}"
            )
            x = self.embed(torch.cat([h_k, context.to(h_k.dtype)], dim=-1))
        else:
            x = self.embed(h_k)
        t = sinusoidal_embedding(k.to(h_k.device) * (1000.0 / self.num_steps), self.width).to(h_k.dtype)
        t = self.step_mlp(t)
        # Only ever switches autocast on: a caller's own autocast (train.precision bf16) stays in force.
        with torch.autocast(h_k.device.type, dtype=torch.bfloat16) if bf16_blocks else contextlib.nullcontext():
            for i, block in enumerate(self.blocks):
                cond = self.step_proj[i](t).unsqueeze(1)
                if self.context_proj is not None:
                    cond = cond + self.context_proj[i](context.to(h_k.dtype))
                x = block(x, cond)
        return self.head(self.norm_out(x.to(h_k.dtype)))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
