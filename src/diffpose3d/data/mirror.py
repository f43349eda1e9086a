"""Left-right mirroring of 2D keypoints, 3D poses and per-joint 2D mixtures (flip augmentation
and flip test-time augmentation). Pure functions; numpy arrays or torch tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

from diffpose3d.mixtures.gmm import GaussianMixture

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def _mirror(x: Array, perm: Sequence[int]) -> Array:
    """Swap left/right joints (`perm` on axis -2) and negate channel 0 (the horizontal one)."""
    perm = list(perm)
    assert len(perm) == x.shape[-2], f"flip permutation has {len(perm)} joints, data has {x.shape[-2]}"
    if isinstance(x, torch.Tensor):
        sign = torch.ones(x.shape[-1], dtype=x.dtype, device=x.device)
        sign[0] = -1
        return x[..., torch.as_tensor(perm, device=x.device), :] * sign
    sign = np.ones(x.shape[-1], dtype=x.dtype)
    sign[0] = -1
    return x[..., perm, :] * sign


def flip_keypoints(uv: Array, perm: Sequence[int]) -> Array:
    """Mirror normalised 2D keypoints `(..., J, C)` left-right: `u -> -u`, left/right joints swapped
    (extra channels such as a confidence are carried along unchanged)."""
    return _mirror(uv, perm)


def flip_pose(xyz: Array, perm: Sequence[int]) -> Array:
    """Mirror root-relative camera-frame poses `(..., J, 3)`: `x -> -x`, left/right joints swapped."""
    return _mirror(xyz, perm)


def flip_gmm(gmm: GaussianMixture, perm: torch.Tensor) -> GaussianMixture:
    """Mirror per-frame, per-joint 2D mixtures `(B, J, M, 2)`: u -> -u, left/right joints swapped."""
    means = gmm.means[:, perm].clone()
    means[..., 0] = -means[..., 0]
    cov = gmm.covariances[:, perm].clone()
    cov[..., 0, 1:] = -cov[..., 0, 1:]
    cov[..., 1:, 0] = -cov[..., 1:, 0]
    return GaussianMixture(gmm.weights[:, perm], means, cov)
