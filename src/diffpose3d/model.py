"""The DiffPose model: context encoder + denoiser g + diffusion schedule, and how they meet H_K.

Notation (shapes per frame):

    K        steps of the diffusion schedule (`model.diffusion.num_steps`); k = K .. 1 one step
    h_k      the state of each joint at step k, (u, v, x, y, z) (J, 5); h_0 is the pose
    H_K      the initial distribution of h_K: per joint a mixture over (u, v, x, y, z) (`diffusion.hk`)
    M        mixture components per joint (of the 2D evidence and of H_K)
    f_ST     the context encoder's features per joint (J, C), spatio-temporal for a video model
    a        the anchor (u, v, x, y, z): the top 2D mode and the lifter's 3D guess
    abar_k   the schedule's cumulative product of alphas at step k
    g        the denoiser, predicting h_0 from (h_k, k, [f_ST, a])
    N        hypotheses per frame (`inference.hypotheses`): N draws of H_K walked to h_0

Reading order: `context()` runs the frame lifter (f_ST and its 3D guess; `encode()` over whole
sequences for a video model), `initial_distribution()` builds H_K per joint from the 2D evidence and
the depth prior (`diffusion.hk`), `sample()` walks N samples of H_K to H_0 with the DDIM sampler.
Nothing here trains; see `training/`.

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
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from diffpose3d.config import Config, DenoiserConfig, EncoderConfig, InferenceConfig
from diffpose3d.context import frame_context, local_motion, run_encoder
from diffpose3d.data.mirror import flip_pose
from diffpose3d.diffusion import hk
from diffpose3d.diffusion.sampler import DDIMSampler, NoiseDraws, deterministic_refine
from diffpose3d.diffusion.schedule import Schedule, make_schedule
from diffpose3d.errors import ConfigError
from diffpose3d.evaluation.calibration import identity_radial_map, keep_bones, reshape_hypotheses, scale_hypotheses
from diffpose3d.evidence import person_frame as pf
from diffpose3d.evidence.summary import EVIDENCE_CHANNELS, evidence_summary
from diffpose3d.mixtures.gmm import GaussianMixture
from diffpose3d.models.context_frame import FrameContextEncoder
from diffpose3d.models.context_mlp import MLPContextEncoder
from diffpose3d.models.context_tcn import TemporalConvEncoder, receptive_blocks
from diffpose3d.models.context_video import VideoContextEncoder
from diffpose3d.models.denoiser import Denoiser
from diffpose3d.models.graph import TrunkSize
from diffpose3d.models.onnx_backend import OnnxDenoiser, current_copy, switch_backend
from diffpose3d.skeleton import get_skeleton

STATE_DIM = 5  # (u, v, x, y, z)
CONTEXTS = ("frame", "mlp", "video", "tcn")
VIDEO_CONTEXTS = ("video", "tcn")  # a frame's context comes from its sequence
INPUTS = ("image", "person")
MODES = ("diffpose", "authors")  # `inference.mode`: the method, or the released code's behaviour
# Motion channels (`model.motion_radius`) in units of 1 cm and 1/100 of the image half-width: a frame
# step's motion and 2D noise are then about 1, the scale of the encoder's LayerNorm-ed features.
MOTION_SCALE = 100.0
POSES_PER_PASS = 480  # denoiser batch (poses) per sampler pass: cache-sized, measured fastest on a 2-core CPU


def trunk(cfg: EncoderConfig | DenoiserConfig) -> TrunkSize:
    """The size of the transformer blocks a network's config section asks for."""
    return TrunkSize(width=cfg.width, blocks=cfg.blocks, heads=cfg.heads, dropout=cfg.dropout)


@dataclass
class Prepared:
    """What the model sees of a batch of frames (`DiffPoseModel.prepare`): keypoints `(B, J, 2)` and
    mixtures `(B, J, M, 2)` in its 2D frame, the encoder's input `(B, J, in_dim)`, and the person
    frame they were mapped into (None: image uv as they came)."""

    keypoints: torch.Tensor
    gmm: GaussianMixture
    encoder_input: torch.Tensor
    frame: pf.PersonFrame | None

    def points(self, uv: torch.Tensor) -> torch.Tensor:
        """Other image-uv points of the same frames (e.g. the true 2D) in the model's 2D frame."""
        return uv if self.frame is None else self.frame.points(uv)

    def __getitem__(self, index) -> Prepared:
        frame = None if self.frame is None else pf.PersonFrame(self.frame.centre[index], self.frame.size[index])
        return Prepared(self.keypoints[index], self.gmm[index], self.encoder_input[index], frame)


class DiffPoseModel(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        e, g, d = config.model.encoder, config.model.denoiser, config.model.diffusion
        self.skeleton = get_skeleton(config.model.skeleton)
        parents = list(self.skeleton.parents)
        if e.kind not in CONTEXTS:
            raise ConfigError(f"model.encoder.kind: unknown context encoder '{e.kind}' ({' | '.join(CONTEXTS)})")
        if e.inputs not in INPUTS:
            raise ConfigError(f"model.encoder.inputs: unknown 2D normalisation '{e.inputs}' ({' | '.join(INPUTS)})")
        in_dim = pf.CHANNELS if e.inputs == "person" else 2
        self.encoder: nn.Module
        if g.motion_radius < 0:
            raise ConfigError(f"model.denoiser.motion_radius must be >= 0, got {g.motion_radius}")
        if e.kind == "video":
            if not 1 <= e.stride <= e.frames:
                raise ConfigError(f"model.encoder.stride must be in 1..model.encoder.frames={e.frames}, got {e.stride}")
            self.encoder = VideoContextEncoder(parents, in_dim=in_dim, frames=e.frames, size=trunk(e))
        elif e.kind == "tcn":
            try:
                receptive_blocks(e.frames)
            except ValueError as exc:
                raise ConfigError(f"model.encoder.frames: {exc}") from None
            self.encoder = TemporalConvEncoder(len(parents), in_dim, frames=e.frames, width=e.width, channels=e.hidden,
                                               dropout=e.dropout, causal=e.causal)
        else:
            if g.motion_radius:
                raise ConfigError("model.denoiser.motion_radius needs a video context (model.encoder.kind: video or tcn)")
            if e.kind == "mlp":
                self.encoder = MLPContextEncoder(len(parents), in_dim, width=e.width, hidden=e.hidden,
                                                 blocks=e.blocks, dropout=e.dropout)
            else:
                self.encoder = FrameContextEncoder(parents, in_dim=in_dim, size=trunk(e))
        self.denoiser = Denoiser(parents, state_dim=STATE_DIM, context_dim=self.conditioning_dim, num_steps=d.num_steps,
                                 size=trunk(g))
        nn.init.zeros_(self.denoiser.head.weight)
        nn.init.zeros_(self.denoiser.head.bias)
        self.schedule = make_schedule(d.schedule, d.num_steps)
        j = self.skeleton.num_joints
        # Spread of the lifter's residuals per joint and axis (metres), measured on validation data
        # after stage 1: the (x, y, z) part of H_K is centred on the lifter with this spread.
        self.register_buffer("residual_std", torch.full((j, 3), 0.05))
        # Post-hoc calibration of the hypotheses' spread around their mean (fitted on validation
        # data after stage 2, `training.run.fit_spread_scale`): a few DDIM steps contract the spread.
        self.register_buffer("spread_scale", torch.ones(()))
        # Split-conformal factor per joint (`evaluation.calibration.conformal_scale`, fitted on a
        # calibration split by `diffpose3d calibrate`): ones until then.
        self.register_buffer("conformal_scale", torch.ones(j))
        # The radial shape of the hypotheses (`evaluation.calibration.fit_radial_map`, fitted by
        # `diffpose3d calibrate` after the conformal scale): the identity until then.
        self.register_buffer("radial_map", identity_radial_map())
        # The bundle's out-of-domain model (`uncertainty.ood`, its `out_of_domain.npz`): None where the
        # bundle has none; then predictions carry no out_of_domain score and nothing is widened.
        self.out_of_domain = None
        if d.depth_prior not in hk.DEPTH_PRIORS:
            raise ConfigError(f"model.diffusion.depth_prior: unknown prior '{d.depth_prior}' ({' | '.join(hk.DEPTH_PRIORS)})")
        if d.depth_prior == "dataset":
            # z of H_K from a per-joint GMM over the training set's root-relative depth (fitted after
            # stage 1, `set_depth_prior`); until then one broad component.
            mz = max(1, d.depth_components)
            self.register_buffer("depth_weights", torch.zeros(j, mz).index_fill_(1, torch.tensor([0]), 1.0))
            self.register_buffer("depth_means", torch.zeros(j, mz, 1))
            self.register_buffer("depth_covariances", torch.full((j, mz, 1, 1), 0.3**2))
        self._onnx_denoiser: OnnxDenoiser | None = None
        self._bf16 = False  # g's blocks in bfloat16 at inference (`use_precision`)

    @property
    def backend(self) -> str:
        """Where g's network runs at inference: "torch" or "onnxruntime" (`use_backend`)."""
        return "torch" if self._onnx_denoiser is None else "onnxruntime"

    def use_backend(self, backend: str) -> None:
        """Run g's network in "torch" (default) or "onnxruntime" (CPU, `diffpose3d[onnx]`) at
        inference. The ONNX copy is exported from the current weights on first use; call again
        after changing the weights."""
        self._onnx_denoiser = switch_backend(backend, self.denoiser, self.device)

    def use_precision(self, precision: str) -> None:
        """Run g's transformer blocks in "fp32", "bf16", or ("auto") bf16 where this device has it
        natively (`inference.precision`, `inference/precision.py`); inference only, torch backend only."""
        from diffpose3d.inference.precision import PRECISIONS, use_bf16

        if precision not in PRECISIONS:
            raise ConfigError(f"unknown inference precision '{precision}' ({' | '.join(PRECISIONS)})")
        self._bf16 = use_bf16(precision, self.device)

    @property
    def precision(self) -> str:
        """"bf16" or "fp32": what g's blocks run in at inference (`use_precision`)."""
        return "bf16" if self._bf16 else "fp32"

    @property
    def device(self) -> torch.device:
        return self.residual_std.device

    @property
    def is_video(self) -> bool:
        return self.config.model.encoder.kind in VIDEO_CONTEXTS

    @property
    def feature_dim(self) -> int:
        """Channels of f_ST per joint: the encoder's features, then (video, `model.denoiser.motion_radius`
        r > 0) the anchor's local motion, (u, v, x, y, z) differences at offsets -r..-1, 1..r."""
        m = self.config.model
        return m.encoder.width + 2 * m.denoiser.motion_radius * STATE_DIM

    @property
    def conditioning_dim(self) -> int:
        """Channels per joint of what g is conditioned on (`conditioning`)."""
        return self.feature_dim + EVIDENCE_CHANNELS * self.config.model.denoiser.evidence_features + STATE_DIM

    def prepare(self, keypoints_uv: torch.Tensor, uv_gmm: GaussianMixture, focal: torch.Tensor | None = None) -> Prepared:
        """The model's view of (B, J, 2) image-uv keypoints and their (B, J, M, 2) mixtures: as they
        are (`model.encoder.inputs: image`), or in the person's frame with its centre, size and the
        focal length `focal (B,)` (`f / (w / 2)`; None: `evidence.person_frame.focal_guess` of a square
        image) as explicit encoder inputs (`person`, `evidence/person_frame.py`)."""
        if self.config.model.encoder.inputs != "person":
            return Prepared(keypoints_uv, uv_gmm, keypoints_uv, None)
        evidence_spread = uv_gmm.spread()
        frame = pf.person_frame(keypoints_uv, evidence_spread)
        if focal is None:
            focal = torch.full(keypoints_uv.shape[:1], pf.focal_guess((1, 1)))
        keypoints = frame.points(keypoints_uv)
        return Prepared(keypoints, frame.mixture(uv_gmm), pf.encoder_input(keypoints, evidence_spread, frame, focal), frame)

    @property
    def input_mirror(self) -> torch.Tensor:
        """Per channel of the encoder's input, its sign under a left-right mirror (joints swapped
        apart): u and, for person inputs, the person's centre u change sign."""
        sign = torch.ones(self.encoder.in_dim)
        sign[0] = -1.0
        if self.config.model.encoder.inputs == "person":
            sign[pf.CENTRE_U] = -1.0
        return sign

    def context(self, encoder_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame lifter: (B, J, in_dim) `Prepared.encoder_input` -> (xyz (B, J, 3), f_ST (B, J, C)).
        A video model's context needs whole sequences: see `encode`."""
        if self.is_video:
            raise ValueError("a video model's context is computed over whole sequences: use DiffPoseModel.encode")
        return frame_context(self.encoder, encoder_input, self.config.model.encoder, self.skeleton.flip_permutation(),
                             self.input_mirror.to(encoder_input))

    def encode(self, prepared: Prepared, rows: Sequence[np.ndarray] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The context of every frame, `(xyz (F, J, 3), f_ST (F, J, C))` on the CPU, of `prepared`
        frames. `rows` lists each sequence's rows in frame order (a video model encodes each
        sequence with sliding windows); None means one sequence, in row order."""
        xyz, feats = run_encoder(self.encoder, prepared.encoder_input, rows, self.config.model.encoder,
                                 self.skeleton.flip_permutation(), self.input_mirror)
        radius = self.config.model.denoiser.motion_radius
        if radius:
            rows = [np.arange(xyz.shape[0])] if rows is None else rows
            anchor = torch.cat([prepared.keypoints.to(xyz), xyz], dim=-1)
            width = feats.shape[-1]
            # filled in place: a Human3.6M training set's context is gigabytes
            context = torch.zeros(feats.shape[:2] + (width + 2 * radius * STATE_DIM,), dtype=feats.dtype)
            context[..., :width] = feats
            del feats
            local_motion(anchor, rows, radius, MOTION_SCALE, out=context[..., width:])
            feats = context
        return xyz, feats

    def flip_context(self, xyz: torch.Tensor, feats: torch.Tensor, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The context `(xyz (B, J, 3), f_ST (B, J, C))` of the mirrored frames, given a video model's
        context with flip TTA (its features are then exactly joint-swapped under mirroring; the
        motion channels are mirrored: u and x change sign)."""
        feats = feats[:, perm].clone()
        width = self.config.model.encoder.width
        feats[..., width::STATE_DIM] *= -1  # u of each offset
        feats[..., width + 2::STATE_DIM] *= -1  # x of each offset
        return flip_pose(xyz, perm), feats

    def conditioning(
        self, keypoints_uv: torch.Tensor, xyz: torch.Tensor, feats: torch.Tensor, uv_gmm: GaussianMixture
    ) -> torch.Tensor:
        """What g is conditioned on per joint: [f_ST, (`model.denoiser.evidence_features`) the 2D
        evidence's summary, anchor (u, v, x, y, z)] -> (B, J, `conditioning_dim`); the anchor comes last."""
        parts = [feats]
        if self.config.model.denoiser.evidence_features:
            parts.append(evidence_summary(uv_gmm, keypoints_uv).to(feats))
        return torch.cat(parts + [keypoints_uv, xyz], dim=-1)

    def initial_distribution(self, uv_gmm: GaussianMixture, xyz_center: torch.Tensor) -> GaussianMixture:
        """H_K: per-joint mixture over (u, v, x, y, z) with shapes (B, J, M, 5) (`diffusion.hk`)."""
        return hk.initial_distribution(uv_gmm, xyz_center, self.residual_std,
                                       num_components=self.config.model.diffusion.num_components,
                                       depth=self.depth_prior())

    def depth_prior(self) -> GaussianMixture | None:
        """The training-set depth GMM `(J, Mz, 1)` of `model.depth_prior = dataset`, else None."""
        if self.config.model.diffusion.depth_prior != "dataset":
            return None
        return GaussianMixture(self.depth_weights, self.depth_means, self.depth_covariances)

    def set_depth_prior(self, gmm: GaussianMixture) -> None:
        """Store a fitted `(J, Mz, 1)` depth GMM (`diffusion.hk.fit_depth_gmm`)."""
        for buffer, value in zip((self.depth_weights, self.depth_means, self.depth_covariances),
                                 (gmm.weights, gmm.means, gmm.covariances)):
            buffer.copy_(value.to(buffer))

    @torch.inference_mode()
    def sample(
        self,
        keypoints_uv: torch.Tensor,
        uv_gmm: GaussianMixture,
        cfg: InferenceConfig,
        *,
        generator: torch.Generator | None = None,
        context: tuple[torch.Tensor, torch.Tensor] | None = None,
        draws: NoiseDraws | None = None,
        focal: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`cfg.hypotheses` hypotheses per frame (`cfg.steps` DDIM steps, `cfg.eta`, `cfg.mode`,
        `cfg.antithetic`): returns (states (B, N, J, 5), lifter xyz (B, J, 3)).

        `context` is the frames' `(xyz, f_ST)` when already computed (`encode`; a video model needs
        it); `draws` the H_K noise of each frame (`DDIMSampler.sample`), e.g. shared along a sequence;
        `focal (B,)` the frames' focal lengths (`prepare`). The states' (u, v) are in the model's 2D
        frame (`prepare`).
        """
        prep = self.prepare(keypoints_uv, uv_gmm, focal)
        if context is None:
            xyz, feats = self.context(prep.encoder_input)
        else:
            xyz, feats = (c.to(keypoints_uv.device, keypoints_uv.dtype) for c in context)
        cond = self.conditioning(prep.keypoints, xyz, feats, prep.gmm)
        if cfg.mode == "authors":
            # The released code's behaviour, for comparison only: start at the lifter output,
            # no noise, one hypothesis, and g sees only the anchor (zeros for f_ST and the rest).
            cond[..., :-STATE_DIM] = 0.0
            out = deterministic_refine(self.g, torch.cat([prep.keypoints, xyz], dim=-1), cond, ks=[2, 1])
            return out.unsqueeze(1), xyz
        if cfg.mode != "diffpose":
            raise ValueError(f"unknown mode '{cfg.mode}' ({' | '.join(MODES)})")
        hk_mixture = self.initial_distribution(prep.gmm, xyz)
        sampler = DDIMSampler(self.schedule, ddim_steps=cfg.steps, eta=cfg.eta)
        weights, means, chol = hk_mixture.weights, hk_mixture.means, hk_mixture.cholesky()
        # Frames go through the sampler in blocks of about POSES_PER_PASS poses: the denoiser's
        # activations then stay cache-sized, about 1.5x the throughput of one huge batch on a CPU.
        block = max(1, POSES_PER_PASS // cfg.hypotheses)
        states = torch.cat([
            sampler.sample(self.g, weights[sl], means[sl], chol[sl], cond[sl], hypotheses=cfg.hypotheses,
                           antithetic=cfg.antithetic, generator=generator,
                           draws=None if draws is None else draws[sl])
            for sl in (slice(i, i + block) for i in range(0, keypoints_uv.shape[0], block))
        ])
        scaled = reshape_hypotheses(scale_hypotheses(states, self.spread_scale, self.conformal_scale), self.radial_map)
        return (keep_bones(scaled, states, self.skeleton.parents) if cfg.keep_bones else scaled), xyz

    def g(self, h_k: torch.Tensor, k: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """The reverse-process network as the sampler calls it: predicted h_0 (B, J, 5)."""
        network: Callable[..., torch.Tensor] = self.denoiser
        if self._bf16 and not self.training and self._onnx_denoiser is None:
            network = self.denoiser.forward_bf16
        if self._onnx_denoiser is not None and not self.training:
            self._onnx_denoiser = network = current_copy(self._onnx_denoiser, self.denoiser)
        return anchored_prediction(network, h_k, k, conditioning, self.schedule)


def anchored_prediction(
    denoiser: Callable[..., torch.Tensor], h_k: torch.Tensor, k: torch.Tensor, conditioning: torch.Tensor,
    schedule: Schedule,
) -> torch.Tensor:
    """h_0 = a + sqrt(abar_k) (h_k - a) + denoiser(h_k, k, [f_ST, a]); `a` = the conditioning's last 5 channels."""
    anchor = conditioning[..., -STATE_DIM:]
    skip = schedule.at(k, h_k).sqrt()  # (B, 1, 1)
    return anchor + skip * (h_k - anchor) + denoiser(h_k, k, conditioning)
