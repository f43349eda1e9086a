"""The DiffPose model: context encoder + denoiser g + diffusion schedule, and how they meet H_K.

Reading order: `context()` runs the frame lifter (f_ST and its 3D guess), `initial_distribution()`
builds H_K per joint from the 2D evidence and the depth prior, `sample()` walks N samples of H_K to
H_0 with the DDIM sampler. Nothing here trains; see `train.py`.

Parametrisation of g (x0-prediction with a Gaussian-optimal skip):

    h_0 = a + sqrt(abar_k) (h_k - a) + g(h_k, k, [f_ST, a])

The anchor `a = (u, v, x, y, z)` is the detector's top 2D mode and the lifter's 3D guess, the centre
of H_K. Without g, this is the exact posterior mean E[h_0 | h_k] when the truth scatters around `a`
as H_K does (the lifter's residual spread, measured on validation data), so DDIM then carries every
H_K sample to a distinct, calibrated hypothesis; g (whose last layer starts at zero) learns the
correction from the evidence, the step and f_ST. Without the skip, a network can learn to ignore h_k,
and the N hypotheses collapse onto one pose (measured: 0.05 mm spread). METHOD.md leaves the
parametrisation open; this one was chosen by measurement.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from diffpose3d.config import Config
from diffpose3d.errors import ConfigError
from diffpose3d.diffusion.sampler import DDIMSampler, deterministic_refine
from diffpose3d.diffusion.schedule import make_schedule
from diffpose3d.models.context_frame import FrameContextEncoder
from diffpose3d.models.denoiser import Denoiser
from diffpose3d.models.onnx_backend import BACKENDS, OnnxDenoiser, weight_versions
from diffpose3d.skeleton import get_skeleton
from diffpose3d.uncertainty.gmm import GaussianMixture
from diffpose3d.uncertainty.depth import DEPTH_PRIORS
from diffpose3d.uncertainty.initial import build_hk

STATE_DIM = 5  # (u, v, x, y, z)
POSES_PER_PASS = 480  # denoiser batch (poses) per sampler pass: cache-sized, measured fastest on a 2-core CPU


class DiffPoseModel(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        m = config.model
        self.skeleton = get_skeleton(m.skeleton)
        parents = list(self.skeleton.parents)
        self.encoder = FrameContextEncoder(
            parents, in_dim=2, width=m.encoder_width, blocks=m.encoder_blocks,
            heads=m.encoder_heads, dropout=m.encoder_dropout,
        )
        self.denoiser = Denoiser(
            parents, state_dim=STATE_DIM, context_dim=m.encoder_width + STATE_DIM, width=m.width,
            blocks=m.blocks, heads=m.heads, dropout=m.dropout, num_steps=m.num_steps,
        )
        nn.init.zeros_(self.denoiser.head.weight)
        nn.init.zeros_(self.denoiser.head.bias)
        self.schedule = make_schedule(m.schedule, m.num_steps)
        j = self.skeleton.num_joints
        # Spread of the lifter's residuals per joint and axis (metres), measured on validation data
        # after stage 1: the (x, y, z) part of H_K is centred on the lifter with this spread.
        self.register_buffer("residual_std", torch.full((j, 3), 0.05))
        # Post-hoc calibration of the hypotheses' spread around their mean (fitted on validation
        # data after stage 2, `train.fit_spread_scale`): a few DDIM steps contract the spread.
        self.register_buffer("spread_scale", torch.ones(()))
        if m.depth_prior not in DEPTH_PRIORS:
            raise ConfigError(f"model.depth_prior: unknown prior '{m.depth_prior}' ({' | '.join(DEPTH_PRIORS)})")
        if m.depth_prior == "dataset":
            # z of H_K from a per-joint GMM over the training set's root-relative depth (fitted after
            # stage 1, `set_depth_prior`); until then one broad component.
            mz = max(1, m.depth_components)
            self.register_buffer("depth_weights", torch.zeros(j, mz).index_fill_(1, torch.tensor([0]), 1.0))
            self.register_buffer("depth_means", torch.zeros(j, mz, 1))
            self.register_buffer("depth_covariances", torch.full((j, mz, 1, 1), 0.3**2))
        self._onnx_denoiser: OnnxDenoiser | None = None

    @property
    def backend(self) -> str:
        """Where g's network runs at inference: "torch" or "onnxruntime" (`use_backend`)."""
        return "torch" if self._onnx_denoiser is None else "onnxruntime"

    def use_backend(self, backend: str) -> None:
        """Run g's network in "torch" (default) or "onnxruntime" (CPU, `diffpose3d[onnx]`) at
        inference. The ONNX copy is exported from the current weights on first use; call again
        after changing the weights."""
        if backend not in BACKENDS:
            raise ConfigError(f"unknown inference backend '{backend}' ({' | '.join(BACKENDS)})")
        if backend == "onnxruntime":
            if self.device.type != "cpu":
                raise ConfigError("the onnxruntime backend runs on the CPU; use --device cpu")
            self._onnx_denoiser = OnnxDenoiser(self.denoiser)
        else:
            self._onnx_denoiser = None

    @property
    def device(self) -> torch.device:
        return self.residual_std.device

    def context(self, keypoints_uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame lifter: (B, J, 2) normalised 2D -> (xyz (B, J, 3), f_ST (B, J, C))."""
        return self.encoder(keypoints_uv)

    @staticmethod
    def conditioning(keypoints_uv: torch.Tensor, xyz: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """What g is conditioned on per joint: [f_ST, anchor (u, v, x, y, z)] -> (B, J, C + 5)."""
        return torch.cat([feats, keypoints_uv, xyz], dim=-1)

    def initial_distribution(self, uv_gmm: GaussianMixture, xyz_center: torch.Tensor) -> GaussianMixture:
        """H_K: per-joint mixture over (u, v, x, y, z) with shapes (B, J, M, 5).

        The 3D part is centred on the lifter with its measured residual spread, widened for joints
        whose 2D evidence is broader than the frame's typical joint (occluded, out of frame): that
        excess 2D spread, carried to metres by the pose's weak-perspective scale, adds in quadrature.
        """
        std = self.residual_std.to(xyz_center.dtype).expand_as(xyz_center)
        extra = excess_2d_std_in_metres(uv_gmm, xyz_center)  # (B, J)
        std = (std.square() + extra.unsqueeze(-1).square()).sqrt()
        return build_hk(uv_gmm, xyz_center, std, num_components=self.config.model.num_components, depth=self.depth_prior())

    def depth_prior(self) -> GaussianMixture | None:
        """The training-set depth GMM `(J, Mz, 1)` of `model.depth_prior = dataset`, else None."""
        if self.config.model.depth_prior != "dataset":
            return None
        return GaussianMixture(self.depth_weights, self.depth_means, self.depth_covariances)

    def set_depth_prior(self, gmm: GaussianMixture) -> None:
        """Store a fitted `(J, Mz, 1)` depth GMM (`uncertainty.depth.fit_depth_gmm`)."""
        for buffer, value in zip((self.depth_weights, self.depth_means, self.depth_covariances),
                                 (gmm.weights, gmm.means, gmm.covariances)):
            buffer.copy_(value.to(buffer))

    @torch.inference_mode()
    def sample(
        self,
        keypoints_uv: torch.Tensor,
        uv_gmm: GaussianMixture,
        *,
        hypotheses: int = 5,
        steps: int = 5,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        mode: str = "diffpose",
        antithetic: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """N hypotheses per frame: returns (states (B, N, J, 5), lifter xyz (B, J, 3))."""
        xyz, feats = self.context(keypoints_uv)
        if mode == "authors":
            # The released code's behaviour, for comparison only: start at the lifter output,
            # no noise, one hypothesis, and g never sees f_ST (zeros in its place).
            init = torch.cat([keypoints_uv, xyz], dim=-1)
            cond = self.conditioning(keypoints_uv, xyz, torch.zeros_like(feats))
            out = deterministic_refine(self.g, init, cond, ks=[2, 1])
            return out.unsqueeze(1), xyz
        if mode != "diffpose":
            raise ValueError(f"unknown mode '{mode}' (diffpose | authors)")
        hk = self.initial_distribution(uv_gmm, xyz)
        sampler = DDIMSampler(self.schedule, num_steps=steps, eta=eta)
        weights, means, chol = hk.weights, hk.means, hk.cholesky()
        cond = self.conditioning(keypoints_uv, xyz, feats)
        # Frames go through the sampler in blocks of about POSES_PER_PASS poses: the denoiser's
        # activations then stay cache-sized, about 1.5x the throughput of one huge batch on a CPU.
        block = max(1, POSES_PER_PASS // hypotheses)
        states = torch.cat([
            sampler.sample(self.g, weights[sl], means[sl], chol[sl], cond[sl], num_hypotheses=hypotheses,
                           generator=generator, antithetic=antithetic)
            for sl in (slice(i, i + block) for i in range(0, keypoints_uv.shape[0], block))
        ])
        centre = states.mean(dim=1, keepdim=True)
        return centre + self.spread_scale * (states - centre), xyz

    def g(self, h_k: torch.Tensor, k: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """The reverse-process network as the sampler calls it: predicted h_0 (B, J, 5)."""
        network: Callable[..., torch.Tensor] = self.denoiser
        if self._onnx_denoiser is not None and not self.training:
            if self._onnx_denoiser.versions != weight_versions(self.denoiser):  # weights changed since export
                self._onnx_denoiser = OnnxDenoiser(self.denoiser)
            network = self._onnx_denoiser
        return anchored_prediction(network, h_k, k, conditioning, self.schedule.alpha_bar)


def anchored_prediction(
    denoiser: Callable[..., torch.Tensor], h_k: torch.Tensor, k: torch.Tensor, conditioning: torch.Tensor, alpha_bar: torch.Tensor
) -> torch.Tensor:
    """h_0 = a + sqrt(abar_k) (h_k - a) + denoiser(h_k, k, [f_ST, a]); `a` = the conditioning's last 5 channels."""
    anchor = conditioning[..., -STATE_DIM:]
    skip = alpha_bar.to(h_k.device, h_k.dtype)[k].sqrt().reshape(-1, 1, 1)
    return anchor + skip * (h_k - anchor) + denoiser(h_k, k, conditioning)


def excess_2d_std_in_metres(uv_gmm: GaussianMixture, xyz: torch.Tensor) -> torch.Tensor:
    """Per joint, how much broader its 2D evidence is than the frame's median joint, in metres (B, J).

    2D spread = sqrt(trace(mixture covariance) / 2) in normalised image units; the scale from image
    to metres is the ratio of the 3D pose's RMS radius to the 2D evidence's (weak perspective).
    """
    var_uv = uv_gmm.covariance().diagonal(dim1=-2, dim2=-1).sum(-1) / 2  # (B, J)
    centre_uv = uv_gmm.mean()
    radius_uv = (centre_uv - centre_uv.mean(1, keepdim=True)).square().sum(-1).mean(1).sqrt()
    radius_xyz = (xyz[..., :2] - xyz[..., :2].mean(1, keepdim=True)).square().sum(-1).mean(1).sqrt()
    scale = radius_xyz / radius_uv.clamp_min(1e-3)  # (B,) metres per normalised unit
    excess = (var_uv - var_uv.median(dim=1, keepdim=True).values).clamp_min(0)
    return excess.sqrt() * scale.unsqueeze(1)
