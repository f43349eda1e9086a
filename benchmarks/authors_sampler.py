"""A reproduction of the authors' frame sampler (DiffPose's released code, GONGJIA0208/Diffpose,
release 11813f1), for speed comparisons only: their networks at their published sizes with random
weights, and their test-time loop, on whatever device and threads the caller uses.

What it reproduces (written here from the release's structure, not copied):
- `GCNpose`, the pre-trained lifter run once per frame: a Chebyshev convolution (K = 2) in, then
  5 x [GraFormer attention layer (4-head self-attention over joints, then a "GraphNet" of two
  learnable-adjacency graph convolutions, each in a pre-norm residual), a residual pair of
  Chebyshev convolutions], a Chebyshev convolution out; width 96.
- `GCNdiff`, g: the same with (u, v, x, y, z) in and out and a sinusoidal step embedding (96 ->
  384 -> 384, swish) projected into every residual Chebyshev pair.
- `generalized_steps` (DDIM, eta = 0, an epsilon-predicting g): the frame's (u, v, lifter xyz)
  repeated N times, `steps` passes of g over the batch, the mean of the N results.
- The test loader's batches of 1024 frames; `torch.no_grad`; float32.
Their ChebConv rebuilds the Laplacian's polynomials in every call and their attention layer
repeats the learnable adjacency per batch row, as the release does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

H36M_EDGES = [(0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10),
              (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16)]
BATCH_FRAMES = 1024  # the release's test batch (config training.batch_size)


def _adjacency(joints: int = 17) -> torch.Tensor:
    """Symmetric adjacency with self-loops, row-normalised (the release's `adj_mx_from_edges`)."""
    a = torch.eye(joints)
    for i, j in H36M_EDGES:
        a[i, j] = a[j, i] = 1.0
    return a / a.sum(1, keepdim=True)


class ChebConv(nn.Module):
    """Order-2 Chebyshev convolution that rebuilds its Laplacian polynomials at every call."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(3, 1, c_in, c_out))
        nn.init.xavier_normal_(self.weight)
        self.bias = nn.Parameter(torch.zeros(1, 1, c_out))

    def forward(self, x: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        d = torch.diag(graph.sum(-1) ** -0.5)
        lap = torch.eye(graph.shape[0]) - d @ graph @ d
        polys = torch.stack([torch.eye(graph.shape[0]), lap, 2 * lap @ lap - torch.eye(graph.shape[0])]).unsqueeze(1)
        return (torch.matmul(torch.matmul(polys, x), self.weight)).sum(0) + self.bias


class LayerNorm(nn.Module):
    """The release's layer norm: (x - mean) / (std + eps), unbiased std."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.a, self.b = nn.Parameter(torch.ones(width)), nn.Parameter(torch.zeros(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a * (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-6) + self.b


class Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.linears = nn.ModuleList(nn.Linear(width, width) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, j, w = x.shape
        q, k, v = (lin(x).view(b, j, self.heads, -1).transpose(1, 2) for lin in self.linears[:3])
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(w // self.heads)
        out = torch.matmul(F.softmax(scores, dim=-1), v).transpose(1, 2).contiguous().view(b, j, w)
        return self.linears[3](out)


class LearnedGraphConv(nn.Module):
    """The release's `LAM_Gconv`: a normalised learnable adjacency, repeated per batch row, then a linear."""

    def __init__(self, c_in: int, c_out: int, relu: bool) -> None:
        super().__init__()
        self.fc, self.relu = nn.Linear(c_in, c_out), relu

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        a = a.unsqueeze(0).repeat(x.shape[0], 1, 1)
        d = (a.sum(1) + 1e-5) ** -0.5
        out = self.fc(torch.bmm(d[:, :, None] * a * d[:, None, :], x))
        return F.relu(out) if self.relu else out


class AttentionLayer(nn.Module):
    """Pre-norm residual self-attention, then a pre-norm residual GraphNet (two learned-graph convolutions)."""

    def __init__(self, width: int, heads: int, joints: int) -> None:
        super().__init__()
        self.norms = nn.ModuleList([LayerNorm(width), LayerNorm(width)])
        self.attn = Attention(width, heads)
        self.a_hat = nn.Parameter(torch.eye(joints))
        self.g1, self.g2 = LearnedGraphConv(width, 2 * width, True), LearnedGraphConv(2 * width, width, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norms[0](x))
        return x + self.g2(self.g1(self.norms[1](x), self.a_hat), self.a_hat)


class ResCheb(nn.Module):
    """Two Chebyshev convolutions with ReLU, a step embedding between them (g only), a residual."""

    def __init__(self, width: int, step_dim: int) -> None:
        super().__init__()
        self.c1, self.c2 = ChebConv(width, width), ChebConv(width, width)
        self.temb = nn.Linear(step_dim, width) if step_dim else None

    def forward(self, x: torch.Tensor, adj: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
        out = F.relu(self.c1(x, adj))
        if self.temb is not None:
            out = out + self.temb(temb * torch.sigmoid(temb))[:, None, :]
        return x + F.relu(self.c2(out, adj))


class GraFormerNet(nn.Module):
    """`GCNpose` (`steps = False`: 2 -> 3) or `GCNdiff` (`steps = True`: 5 -> 5), width 96, 5 layers."""

    def __init__(self, c_in: int, c_out: int, steps: bool, width: int = 96, layers: int = 5, heads: int = 4,
                 joints: int = 17) -> None:
        super().__init__()
        self.register_buffer("adj", _adjacency(joints))
        self.width = width
        step_dim = 4 * width if steps else 0
        self.inp, self.out = ChebConv(c_in, width), ChebConv(width, c_out)
        self.attn = nn.ModuleList(AttentionLayer(width, heads, joints) for _ in range(layers))
        self.res = nn.ModuleList(ResCheb(width, step_dim) for _ in range(layers))
        self.dense = nn.Sequential(nn.Linear(width, step_dim), nn.SiLU(), nn.Linear(step_dim, step_dim)) if steps else None

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        temb = None
        if self.dense is not None:
            half = self.width // 2
            freq = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
            arg = t.float()[:, None] * freq[None]
            temb = self.dense(torch.cat([torch.sin(arg), torch.cos(arg)], dim=1))
        h = self.inp(x, self.adj)
        for attn, res in zip(self.attn, self.res):
            h = res(attn(h), self.adj, temb)
        return self.out(h, self.adj)


class AuthorsFrameSampler:
    """The release's test-time pipeline: lifter once, then N hypotheses x `steps` DDIM passes of g."""

    def __init__(self, hypotheses: int = 5, steps: int = 5, diffusion_steps: int = 51) -> None:
        torch.manual_seed(0)
        self.lifter, self.g = GraFormerNet(2, 3, steps=False).eval(), GraFormerNet(5, 5, steps=True).eval()
        self.hypotheses = hypotheses
        betas = torch.linspace(1e-4, 1e-3, diffusion_steps)
        self.alpha_bar = torch.cat([torch.ones(1), (1 - betas).cumprod(0)])  # index t + 1, as compute_alpha
        # the release's "uniform" skip: range(0, T, T // steps) with T = 5 x steps test steps: `steps` passes
        self.seq = list(range(0, 5 * steps, 5))

    @torch.no_grad()
    def __call__(self, uv: torch.Tensor) -> torch.Tensor:
        """`(F, 17, 2)` normalised 2D -> `(F, 17, 3)` root-relative 3D, in batches of 1024 frames."""
        return torch.cat([self._batch(uv[i:i + BATCH_FRAMES]) for i in range(0, len(uv), BATCH_FRAMES)])

    def _batch(self, uv: torch.Tensor) -> torch.Tensor:
        xyz = self.lifter(uv)
        xyz = xyz - xyz[:, :1]
        x = torch.cat([uv, xyz], dim=2).repeat(self.hypotheses, 1, 1)
        n = x.shape[0]
        for i, j in zip(reversed(self.seq), reversed([-1] + self.seq[:-1])):
            at, at_next = self.alpha_bar[i + 1], self.alpha_bar[j + 1]
            eps = self.g(x, torch.full((n,), float(i)))
            x0 = (x - eps * (1 - at).sqrt()) / at.sqrt()
            x = at_next.sqrt() * x0 + (1 - at_next).sqrt() * eps
        out = x.reshape(self.hypotheses, -1, 17, 5).mean(0)[..., 2:]
        return out - out[:, :1]
