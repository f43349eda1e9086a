"""The DiffPose model: context encoder + denoiser g + diffusion schedule, and how they meet H_K.

Reading order: `context()` runs the frame lifter (f_ST and its 3D guess), `initial_distribution()`
builds H_K per joint from the 2D evidence and the depth prior, `sample()` walks N samples of H_K to
H_0 with the DDIM sampler. Nothing here trains; see `train.py`.

Parametrisation of g: it predicts h_0 as an *anchor* plus a correction, `h_0 = a + g(h_k, k, [f_ST, a])`,
where the anchor `a = (u, v, x, y, z)` is the detector's top 2D mode and the lifter's 3D guess (the
centre of H_K). g's last layer starts at zero, so an untrained g reproduces the lifter and stage 2
can only refine it; g still sees h_k, the step and f_ST as in the paper. This is one of the
equivalent parametrisations METHOD.md leaves open (x0-prediction with a skip), chosen by measurement.
"""

from __future__ import annotations

import torch
from torch import nn

from diffpose3d.config import Config
from diffpose3d.diffusion.sampler import DDIMSampler, deterministic_refine
from diffpose3d.diffusion.schedule import make_schedule
from diffpose3d.models.context_frame import FrameContextEncoder
from diffpose3d.models.denoiser import Denoiser
from diffpose3d.skeleton import get_skeleton
from diffpose3d.uncertainty.gmm import GaussianMixture
from diffpose3d.uncertainty.initial import build_hk

STATE_DIM = 5  # (u, v, x, y, z)


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
        """H_K: per-joint mixture over (u, v, x, y, z) with shapes (B, J, M, 5)."""
        std = self.residual_std.to(xyz_center.dtype).expand_as(xyz_center)
        return build_hk(uv_gmm, xyz_center, std, num_components=self.config.model.num_components)

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
        states = sampler.sample(
            self.g, hk.weights, hk.means, hk.cholesky(), self.conditioning(keypoints_uv, xyz, feats),
            num_hypotheses=hypotheses, generator=generator,
        )
        return states, xyz

    def g(self, h_k: torch.Tensor, k: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """The reverse-process network as the sampler calls it: predicted h_0 (B, J, 5)."""
        return anchored_prediction(self.denoiser, h_k, k, conditioning)


def anchored_prediction(denoiser: nn.Module, h_k: torch.Tensor, k: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
    """h_0 = anchor + denoiser(h_k, k, [f_ST, anchor]); the anchor is the conditioning's last 5 channels."""
    return conditioning[..., -STATE_DIM:] + denoiser(h_k, k, conditioning)
