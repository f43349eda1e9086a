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

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from diffpose3d.config import Config, ModelConfig
from diffpose3d.data.windows import flip_pose
from diffpose3d.errors import ConfigError
from diffpose3d.diffusion.sampler import DDIMSampler, NoiseDraws, deterministic_refine
from diffpose3d.diffusion.schedule import make_schedule
from diffpose3d.models.context_frame import FrameContextEncoder
from diffpose3d.models.context_video import VideoContextEncoder
from diffpose3d.models.denoiser import Denoiser
from diffpose3d.models.onnx_backend import BACKENDS, OnnxDenoiser, weight_versions
from diffpose3d.skeleton import get_skeleton
from diffpose3d.uncertainty.gmm import GaussianMixture
from diffpose3d.uncertainty.depth import DEPTH_PRIORS
from diffpose3d.uncertainty.initial import build_hk
from diffpose3d.uncertainty.summary import EVIDENCE_CHANNELS, evidence_summary
from diffpose3d.video_encoding import encode_sequences, local_motion

STATE_DIM = 5  # (u, v, x, y, z)
CONTEXTS = ("frame", "video")
# Motion channels (`model.motion_radius`) in units of 1 cm and 1/100 of the image half-width: a frame
# step's motion and 2D noise are then about 1, the scale of the encoder's LayerNorm-ed features.
MOTION_SCALE = 100.0
POSES_PER_PASS = 480  # denoiser batch (poses) per sampler pass: cache-sized, measured fastest on a 2-core CPU


class DiffPoseModel(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        m = config.model
        self.skeleton = get_skeleton(m.skeleton)
        parents = list(self.skeleton.parents)
        if m.context not in CONTEXTS:
            raise ConfigError(f"model.context: unknown context encoder '{m.context}' ({' | '.join(CONTEXTS)})")
        self.encoder: nn.Module
        if m.context == "video":
            if not 1 <= m.video_stride <= m.video_frames:
                raise ConfigError(f"model.video_stride must be in 1..video_frames={m.video_frames}, got {m.video_stride}")
            if m.motion_radius < 0:
                raise ConfigError(f"model.motion_radius must be >= 0, got {m.motion_radius}")
            self.encoder = VideoContextEncoder(
                parents, in_dim=2, frames=m.video_frames, width=m.encoder_width, depth=m.encoder_blocks,
                heads=m.encoder_heads, dropout=m.encoder_dropout,
            )
        else:
            if m.motion_radius:
                raise ConfigError("model.motion_radius needs a video context (model.context: video)")
            self.encoder = FrameContextEncoder(
                parents, in_dim=2, width=m.encoder_width, blocks=m.encoder_blocks,
                heads=m.encoder_heads, dropout=m.encoder_dropout,
            )
        self.denoiser = Denoiser(
            parents, state_dim=STATE_DIM, context_dim=self.conditioning_dim, width=m.width,
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

    @property
    def is_video(self) -> bool:
        return self.config.model.context == "video"

    @property
    def feature_dim(self) -> int:
        """Channels of f_ST per joint: the encoder's features, then (video, `model.motion_radius` r > 0)
        the anchor's local motion, (u, v, x, y, z) differences at offsets -r..-1, 1..r."""
        m = self.config.model
        return m.encoder_width + 2 * m.motion_radius * STATE_DIM

    @property
    def conditioning_dim(self) -> int:
        """Channels per joint of what g is conditioned on (`conditioning`)."""
        return self.feature_dim + EVIDENCE_CHANNELS * self.config.model.evidence_features + STATE_DIM

    def context(self, keypoints_uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame lifter: (B, J, 2) normalised 2D -> (xyz (B, J, 3), f_ST (B, J, C)). A video model's
        context needs whole sequences: see `encode`."""
        if self.is_video:
            raise ValueError("a video model's context is computed over whole sequences: use DiffPoseModel.encode")
        return self.encoder(keypoints_uv)

    def encode(self, keypoints_uv: torch.Tensor, rows: Sequence[np.ndarray] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The context of every frame, `(xyz (F, J, 3), f_ST (F, J, C))` on the CPU, from (F, J, 2)
        keypoints. `rows` lists each sequence's rows in frame order (a video model encodes each
        sequence with sliding windows); None means one sequence, in row order."""
        xyz, feats = run_encoder(self.encoder, keypoints_uv, rows, self.config.model, self.skeleton.flip_permutation())
        radius = self.config.model.motion_radius
        if radius:
            rows = [np.arange(keypoints_uv.shape[0])] if rows is None else rows
            anchor = torch.cat([keypoints_uv.to(xyz), xyz], dim=-1)
            feats = torch.cat([feats, MOTION_SCALE * local_motion(anchor, rows, radius)], dim=-1)
        return xyz, feats

    def flip_context(self, xyz: torch.Tensor, feats: torch.Tensor, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The context `(xyz (B, J, 3), f_ST (B, J, C))` of the mirrored frames, given a video model's
        context with flip TTA (its features are then exactly joint-swapped under mirroring; the
        motion channels are mirrored: u and x change sign)."""
        feats = feats[:, perm].clone()
        width = self.config.model.encoder_width
        feats[..., width::STATE_DIM] *= -1  # u of each offset
        feats[..., width + 2::STATE_DIM] *= -1  # x of each offset
        return flip_pose(xyz, perm), feats

    def conditioning(
        self, keypoints_uv: torch.Tensor, xyz: torch.Tensor, feats: torch.Tensor, uv_gmm: GaussianMixture
    ) -> torch.Tensor:
        """What g is conditioned on per joint: [f_ST, (`model.evidence_features`) the 2D evidence's
        summary, anchor (u, v, x, y, z)] -> (B, J, `conditioning_dim`); the anchor comes last."""
        parts = [feats]
        if self.config.model.evidence_features:
            parts.append(evidence_summary(uv_gmm, keypoints_uv).to(feats))
        return torch.cat(parts + [keypoints_uv, xyz], dim=-1)

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
        context: tuple[torch.Tensor, torch.Tensor] | None = None,
        draws: NoiseDraws | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """N hypotheses per frame: returns (states (B, N, J, 5), lifter xyz (B, J, 3)).

        `context` is the frames' `(xyz, f_ST)` when already computed (`encode`; a video model needs
        it); `draws` the H_K noise of each frame (`DDIMSampler.sample`), e.g. shared along a sequence.
        """
        if context is None:
            xyz, feats = self.context(keypoints_uv)
        else:
            xyz, feats = (c.to(keypoints_uv.device, keypoints_uv.dtype) for c in context)
        if mode == "authors":
            # The released code's behaviour, for comparison only: start at the lifter output,
            # no noise, one hypothesis, and g sees only the anchor (zeros for f_ST and the rest).
            init = torch.cat([keypoints_uv, xyz], dim=-1)
            cond = self.conditioning(keypoints_uv, xyz, feats, uv_gmm)
            cond[..., :-STATE_DIM] = 0.0
            out = deterministic_refine(self.g, init, cond, ks=[2, 1])
            return out.unsqueeze(1), xyz
        if mode != "diffpose":
            raise ValueError(f"unknown mode '{mode}' (diffpose | authors)")
        hk = self.initial_distribution(uv_gmm, xyz)
        sampler = DDIMSampler(self.schedule, num_steps=steps, eta=eta)
        weights, means, chol = hk.weights, hk.means, hk.cholesky()
        cond = self.conditioning(keypoints_uv, xyz, feats, uv_gmm)
        # Frames go through the sampler in blocks of about POSES_PER_PASS poses: the denoiser's
        # activations then stay cache-sized, about 1.5x the throughput of one huge batch on a CPU.
        block = max(1, POSES_PER_PASS // hypotheses)
        states = torch.cat([
            sampler.sample(self.g, weights[sl], means[sl], chol[sl], cond[sl], num_hypotheses=hypotheses,
                           generator=generator, antithetic=antithetic,
                           draws=None if draws is None else draws[sl])
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


@torch.no_grad()
def run_encoder(
    encoder: nn.Module, keypoints_uv: torch.Tensor, rows: Sequence[np.ndarray] | None, config: ModelConfig,
    flip_perm: Sequence[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """`DiffPoseModel.encode` for any encoder of the model's kind (e.g. an EMA copy during training)."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    try:
        if config.context != "video":
            parts = [encoder(keypoints_uv[i : i + 4096].to(device)) for i in range(0, keypoints_uv.shape[0], 4096)]
            return torch.cat([p[0] for p in parts]).cpu(), torch.cat([p[1] for p in parts]).cpu()
        rows = [np.arange(keypoints_uv.shape[0])] if rows is None else list(rows)
        per_seq = encode_sequences(
            encoder, [keypoints_uv[torch.as_tensor(r)] for r in rows], config.video_frames, config.video_stride,
            flip_perm=flip_perm if config.video_flip else None, device=device, taper=True,
        )
        xyz = torch.zeros(keypoints_uv.shape[:2] + (3,))
        feats = torch.zeros(keypoints_uv.shape[:2] + (config.encoder_width,))
        for r, (x, f) in zip(rows, per_seq):
            xyz[torch.as_tensor(r)], feats[torch.as_tensor(r)] = x, f
        return xyz, feats
    finally:
        encoder.train(was_training)


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
