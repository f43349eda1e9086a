"""H_K, the uncertain start of the reverse diffusion, as one Gaussian mixture per joint.

State. Per joint `h = (u, v, x, y, z)`: normalised image coordinates plus root-relative
camera-frame 3D in metres (DESIGN.md). The (u, v) half carries the 2D evidence, including its
multi-modality (left/right confusion, occlusion), and needs no intrinsics; (x, y, z) is what we
estimate.

Assumptions. H_K factorises over joints, and within a joint the 2D evidence (u, v) is independent
of the 3D part (x, y, z): the mixture is the product `p(u, v) p(x, y, z)` with block-diagonal
covariances. The 3D part is either a Gaussian centred on the context encoder's prediction with the
encoder's measured residual spread (`depth.DepthPrior` kind "context"), or x, y from the encoder
and z from a training-set depth GMM (kind "dataset"). The coupling between joints and between 2D
and 3D is what the denoiser learns; H_K only has to cover the truth.

Size. A product of an M2-component 2D mixture and an Mz-component 3D mixture has M2 * Mz
components. When that exceeds M (5 by default), H_K is sampled and refitted with M components by
the batched EM (the paper's "fit H_K with a GMM"); otherwise the product is kept exactly, sorted
by weight and padded with zero-weight components to M.
"""

from __future__ import annotations

import torch

from diffpose3d.uncertainty.depth import xyz_mixture
from diffpose3d.uncertainty.em import fit_gmm
from diffpose3d.uncertainty.gmm import GaussianMixture, product_mixture, top_components

STATE_DIM = 5


def hk_from_mixtures(
    uv_gmm: GaussianMixture,
    xyz_gmm: GaussianMixture,
    num_components: int = 5,
    *,
    num_samples: int = 256,
    max_iter: int = 100,
    generator: torch.Generator | None = None,
    seed: int = 0,
) -> GaussianMixture:
    """Product of per-joint mixtures over (u, v) `(B, J, M2, 2)` and (x, y, z) `(B, J, Mz, 3)`,
    reduced to `num_components`: -> `(B, J, M, 5)`."""
    if uv_gmm.dim != 2 or xyz_gmm.dim != 3:
        raise ValueError(f"need a (u, v) mixture and an (x, y, z) mixture, got D = {uv_gmm.dim}, {xyz_gmm.dim}")
    prod = product_mixture(uv_gmm, xyz_gmm)
    m = num_components
    batch = prod.batch_shape
    used = (prod.weights > 0).sum(-1)  # effective components per joint
    out = top_components(prod, m)
    refit = used > m
    if bool(refit.any()):
        rows = refit.reshape(-1).nonzero().squeeze(1)
        big = prod.reshape(-1)[rows]
        gen = generator if generator is not None else torch.Generator(device=prod.means.device).manual_seed(seed)
        samples = big.sample(num_samples, generator=gen)  # (R, S, 5)
        fitted, _ = fit_gmm(samples, None, m, covariance="full", max_iter=max_iter, generator=gen)
        flat = out.reshape(-1)
        flat.weights[rows], flat.means[rows], flat.covariances[rows] = (
            fitted.weights, fitted.means, fitted.covariances)
        out = flat.reshape(*batch)
    return out


def build_hk(
    uv_gmm: GaussianMixture,
    xyz_center: torch.Tensor,
    xyz_std: torch.Tensor,
    *,
    num_components: int = 5,
    depth: GaussianMixture | None = None,
    num_samples: int = 256,
    generator: torch.Generator | None = None,
    seed: int = 0,
) -> GaussianMixture:
    """H_K per joint `(B, J, M, 5)` from the 2D evidence `(B, J, M2, 2)` (uv) and the context
    prediction `xyz_center (B, J, 3)` with spread `xyz_std` (broadcastable, metres).

    With `depth` (a per-joint z mixture `(J, Mz, 1)` or `(B, J, Mz, 1)`, e.g. `DepthPrior.depth`),
    z comes from it instead of the prediction.
    """
    xyz = xyz_mixture(xyz_center, xyz_std, depth)
    return hk_from_mixtures(uv_gmm, xyz, num_components, num_samples=num_samples, generator=generator, seed=seed)


def sample_hk(gmm: GaussianMixture, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """`n` poses per frame from H_K `(B, J, M, 5)` -> `(B, n, J, 5)` (joints drawn independently)."""
    return gmm.sample(n, generator=generator).transpose(1, 2)
