"""Fixtures for the diffusion tests: random per-joint mixtures."""

from __future__ import annotations

import pytest
import torch


def random_mixture(
    B: int, J: int, M: int, D: int, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(weights, means, covariances, chol)` with well-conditioned full covariances."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(B, J, M, generator=g, dtype=dtype) + 0.2
    weights = weights / weights.sum(-1, keepdim=True)
    means = torch.randn(B, J, M, D, generator=g, dtype=dtype) * 2
    A = torch.randn(B, J, M, D, D, generator=g, dtype=dtype) * 0.3
    cov = A @ A.transpose(-1, -2) + 0.05 * torch.eye(D, dtype=dtype)
    return weights, means, cov, torch.linalg.cholesky(cov)


@pytest.fixture
def mixture_factory():
    """The `random_mixture` function, for tests that need several sizes."""
    return random_mixture
