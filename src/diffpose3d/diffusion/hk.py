"""H_K, the uncertain start of the reverse diffusion, as one Gaussian mixture per joint.

State. Per joint `h = (u, v, x, y, z)`: normalised image coordinates plus root-relative
camera-frame 3D in metres (DESIGN.md). The (u, v) half carries the 2D evidence, including its
multi-modality (left/right confusion, occlusion), and needs no intrinsics; (x, y, z) is what we
estimate.

Assumptions. H_K factorises over joints, and within a joint the 2D evidence (u, v) is independent
of the 3D part (x, y, z): the mixture is the product `p(u, v) p(x, y, z)` with block-diagonal
covariances. The 3D part is a Gaussian centred on the context encoder's prediction with the
encoder's measured residual spread (depth prior "context"), or x, y from the encoder and z from a
training-set depth GMM (depth prior "dataset"). A joint whose 2D evidence is broader than the
frame's typical joint (occluded, out of frame) has its 3D spread widened by that excess
(`excess_2d_std_in_metres`). The coupling between joints and between 2D and 3D is what the
denoiser learns; H_K only has to cover the truth.

Size. A product of an M2-component 2D mixture and an Mz-component 3D mixture has M2 * Mz
components. When that exceeds M (5 by default), H_K is sampled and refitted with M components by
the batched EM (the paper's "fit H_K with a GMM"); otherwise the product is kept exactly, sorted
by weight and padded with zero-weight components to M.
"""

from __future__ import annotations

import torch

from diffpose3d.mixtures.em import fit_gmm
from diffpose3d.mixtures.gmm import GaussianMixture, product_mixture, top_components

DEPTH_PRIORS = ("context", "dataset")


def initial_distribution(
    uv_gmm: GaussianMixture,
    xyz_center: torch.Tensor,
    residual_std: torch.Tensor,
    *,
    num_components: int = 5,
    depth: GaussianMixture | None = None,
) -> GaussianMixture:
    """H_K per joint `(B, J, M, 5)` from the 2D evidence `(B, J, M2, 2)` and the context encoder's
    prediction `xyz_center (B, J, 3)` with its residual spread `residual_std (J, 3)` (metres),
    widened per joint by the excess of its 2D spread (`excess_2d_std_in_metres`, in quadrature).
    With `depth` (a per-joint z mixture `(J, Mz, 1)`), z comes from it instead of the prediction."""
    std = residual_std.to(xyz_center.dtype).expand_as(xyz_center)
    extra = excess_2d_std_in_metres(uv_gmm, xyz_center)  # (B, J)
    std = (std.square() + extra.unsqueeze(-1).square()).sqrt()
    return hk_from_mixtures(uv_gmm, xyz_mixture(xyz_center, std, depth), num_components)


def excess_2d_std_in_metres(uv_gmm: GaussianMixture, xyz: torch.Tensor) -> torch.Tensor:
    """Per joint, how much broader its 2D evidence is than the frame's median joint, in metres (B, J).

    2D spread = `GaussianMixture.spread` (sqrt(trace(covariance) / 2)) in normalised image units;
    the scale from image to metres is the ratio of the 3D pose's RMS radius to the 2D evidence's
    (weak perspective).
    """
    var_uv = uv_gmm.variance()  # (B, J): the square of `GaussianMixture.spread`, unclamped
    centre_uv = uv_gmm.mean()
    radius_uv = (centre_uv - centre_uv.mean(1, keepdim=True)).square().sum(-1).mean(1).sqrt()
    radius_xyz = (xyz[..., :2] - xyz[..., :2].mean(1, keepdim=True)).square().sum(-1).mean(1).sqrt()
    scale = radius_xyz / radius_uv.clamp_min(1e-3)  # (B,) metres per normalised unit
    excess = (var_uv - var_uv.median(dim=1, keepdim=True).values).clamp_min(0)
    return excess.sqrt() * scale.unsqueeze(1)


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


def xyz_mixture(centre: torch.Tensor, std: torch.Tensor, depth: GaussianMixture | None = None) -> GaussianMixture:
    """Per-joint mixture over (x, y, z): a Gaussian at `centre (..., J, 3)` with spread `std`
    (broadcastable, metres) -> `(..., J, 1, 3)`; with a z mixture `depth` (`(J, Mz, 1)` or
    batched), z comes from it instead -> `(..., J, Mz, 3)`."""
    std = std.to(centre).expand_as(centre)
    if depth is None:
        return gaussian_xyz(centre, std)
    d = depth.to(device=centre.device, dtype=centre.dtype)
    shape = centre.shape[:-1]
    z = GaussianMixture(d.weights.expand(*shape, -1), d.means.expand(*shape, -1, -1),
                        d.covariances.expand(*shape, -1, -1, -1))
    return product_mixture(gaussian_xyz(centre[..., :2], std[..., :2]), z)


def gaussian_xyz(centre: torch.Tensor, std: torch.Tensor) -> GaussianMixture:
    """One diagonal Gaussian per joint: centre `(..., D)`, std `(..., D)` -> `(..., 1, D)`."""
    return GaussianMixture(
        torch.ones(*centre.shape[:-1], 1, dtype=centre.dtype, device=centre.device),
        centre.unsqueeze(-2),
        torch.diag_embed(std**2).unsqueeze(-3),
    )


def fit_depth_gmm(
    gt_xyz: torch.Tensor,
    num_components: int = 5,
    *,
    min_std: float = 0.005,
    max_frames: int = 20000,
    seed: int = 0,
) -> GaussianMixture:
    """Per-joint 1-D GMM over root-relative depth (the paper's "statistics of the training set"
    depth prior): gt `(F, J, 3)` metres -> `(J, M, 1)`.

    At most `max_frames` evenly spaced frames are used. The root joint (identically 0) gets a
    component of spread `min_std`; `min_std**2` is added to every variance.
    """
    if gt_xyz.dim() != 3 or gt_xyz.shape[-1] != 3:
        raise ValueError(f"gt_xyz must be (F, J, 3), got {tuple(gt_xyz.shape)}")
    rel = gt_xyz - gt_xyz[:, :1]
    ok = torch.isfinite(rel).all(-1).all(-1)
    rel = rel[ok]
    if rel.shape[0] == 0:
        raise ValueError("no finite frames to fit the depth prior on")
    step = max(1, rel.shape[0] // max_frames)
    z = rel[::step, :, 2].T.unsqueeze(-1).contiguous()  # (J, F, 1)
    gmm, _ = fit_gmm(z, None, num_components, covariance="full", reg_covar_abs=min_std**2, seed=seed)
    return gmm
