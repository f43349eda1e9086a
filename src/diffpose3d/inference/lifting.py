"""Batched inference over many frames: N hypotheses, aggregation and per-joint uncertainty."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from diffpose3d.config import InferenceConfig
from diffpose3d.data.frames import FrameSet
from diffpose3d.diffusion.sampler import NoiseDraws
from diffpose3d.evaluation.calibration import keep_bones
from diffpose3d.evidence.person_frame import focal_guess
from diffpose3d.inference.aggregate import aggregate
from diffpose3d.metrics import hypothesis_covariance, spread_from_covariance
from diffpose3d.mixtures.gmm import GaussianMixture
from diffpose3d.model import STATE_DIM, DiffPoseModel
from diffpose3d.uncertainty.reprojection import excess_miss, sequence_floor, widening_factors


@dataclass
class FramePredictions:
    """Per-frame outputs in metres, root-relative camera frame."""

    pose: np.ndarray  # (F, J, 3) aggregated
    hypotheses: np.ndarray  # (F, N, J, 3)
    covariance: np.ndarray  # (F, J, 3, 3)
    spread: np.ndarray  # (F, J) RMS standard deviation
    lifter: np.ndarray  # (F, J, 3) the context encoder's own 3D guess
    # With the bundle's out-of-domain model (`uncertainty.ood`): per frame the score, the
    # standardised signals (F, S) and the factor the hypotheses were scaled by around their mean.
    out_of_domain: np.ndarray | None = None
    ood_signals: np.ndarray | None = None
    widening: np.ndarray | None = None
    # With `inference.reprojection_widening`: per frame and joint the metres by which the 3D misses
    # its 2D beyond the evidence's noise (`uncertainty.reprojection`), which widened the spread.
    reprojection_miss: np.ndarray | None = None


def sequence_draws(num_sequences: int, cfg: InferenceConfig, joints: int) -> NoiseDraws:
    """H_K (and, with eta > 0, step) noise for each of `num_sequences` sequences, to be shared by
    all their frames. Sequence s's draws depend only on the seed and s, however frames are batched."""
    per_sequence = [
        NoiseDraws.draw(1, cfg.hypotheses, joints, STATE_DIM,
                        generator=torch.Generator().manual_seed((cfg.seed * 1_000_003 + s) % 2**63),
                        steps=cfg.steps if cfg.eta > 0 else 0)
        for s in range(num_sequences)
    ]
    steps = None if per_sequence[0].steps is None else torch.cat([d.steps for d in per_sequence])
    return NoiseDraws(torch.cat([d.uniform for d in per_sequence]), torch.cat([d.normal for d in per_sequence]), steps)


def lift_batches(
    model: DiffPoseModel,
    keypoints_uv: torch.Tensor,
    uv_gmm: GaussianMixture,
    cfg: InferenceConfig,
    *,
    context: tuple[torch.Tensor, torch.Tensor] | None = None,
    sequences: list[np.ndarray] | None = None,
    focal: torch.Tensor | None = None,
    image_size: tuple[int, int] | None = None,
    widen: bool = True,
    layout: str | None = None,
) -> FramePredictions:
    """Run the model over (F, J, 2) keypoints and their (F, J, M, 2) mixtures in batches.

    `sequences` lists each sequence's rows in frame order (default: the F frames are one sequence,
    in order): a video model's context and `cfg.coherent` hypotheses follow them. `context`: the
    frames' `(xyz, f_ST)` if already computed. `focal (F,)`: the cameras' focal lengths `f / (w / 2)`;
    unknown, the guess for an image of `image_size` (w, h) (`evidence.person_frame.focal_guess`).
    `layout`: the 2D's joint layout, whose expected reprojection miss (the out-of-domain model's
    `miss_tolerance`, where it has one) the reprojection widening leaves alone.
    """
    device = model.device
    if model.backend != cfg.backend:
        model.use_backend(cfg.backend)
    model.use_precision(cfg.precision)
    n = keypoints_uv.shape[0]
    sequences = [np.arange(n)] if sequences is None else sequences
    if focal is None:
        focal = torch.full((n,), focal_guess(image_size or (1, 1)))
    if context is None and model.is_video:
        context = model.encode(model.prepare(keypoints_uv, uv_gmm, focal), sequences)
    coherent = cfg.coherent and cfg.mode == "diffpose"
    if coherent:
        sequence_of_frame = torch.zeros(n, dtype=torch.long)
        for s, rows in enumerate(sequences):
            sequence_of_frame[torch.as_tensor(rows)] = s
        draws = sequence_draws(len(sequences), cfg, keypoints_uv.shape[1])
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    outs: dict[str, list[np.ndarray]] = {k: [] for k in ("pose", "hyp", "lifter")}
    for start in range(0, n, cfg.batch_frames):
        idx = torch.arange(start, min(start + cfg.batch_frames, n))
        kp = keypoints_uv[idx].to(device)
        gmm = uv_gmm[idx].to(device)
        batch_draws = draws[sequence_of_frame[idx]] if coherent else None
        states, lifter = model.sample(
            kp, gmm, cfg, generator=generator,
            context=None if context is None else (context[0][idx], context[1][idx]), draws=batch_draws,
            focal=focal[idx].to(device),
        )
        xyz = states[..., 2:]
        xyz = xyz - xyz[..., :1, :]  # root-relative
        outs["pose"].append(aggregate(xyz, cfg.aggregate, kp).cpu().numpy())
        outs["hyp"].append(xyz.cpu().numpy())
        outs["lifter"].append(lifter.cpu().numpy())
    pose, hypotheses, lifter = (np.concatenate(outs[k]) for k in ("pose", "hyp", "lifter"))
    cov = hypothesis_covariance(hypotheses)
    pred = FramePredictions(pose=pose, hypotheses=hypotheses, covariance=cov, spread=spread_from_covariance(cov),
                            lifter=lifter)
    ood = getattr(model, "out_of_domain", None)
    if ood is not None and cfg.mode == "diffpose" and n:
        z = ood.standardise(ood.raw_signals(keypoints_uv, uv_gmm, pose, lifter, pred.spread))
        pred.out_of_domain, pred.ood_signals = ood.score(z), z
        if widen and cfg.widen_off_domain and hypotheses.shape[1] > 1:
            # a whole-pose factor: the hypotheses keep their bones where the calibration kept them
            pred = widened(pred, ood.factor(pred.out_of_domain), model.skeleton.parents if cfg.keep_bones else None)
    if widen and cfg.reprojection_widening > 0 and cfg.mode == "diffpose" and hypotheses.shape[1] > 1 and n:
        tolerance = ood.miss_tolerance.get(layout) if ood is not None and layout else None
        miss = excess_miss(pred.pose, keypoints_uv.cpu().numpy(), uv_gmm.to("cpu"), focal.cpu().numpy(), tolerance)
        miss = sequence_floor(miss, sequences)
        # per joint, bones free: a joint put elsewhere (a hip nearer the pelvis) is a bone of another length
        pred = widened(pred, widening_factors(miss, pred.spread, cfg.reprojection_widening))
        pred.reprojection_miss = miss
    return pred


def widened(pred: FramePredictions, factor: np.ndarray, parents: tuple[int, ...] | None = None) -> FramePredictions:
    """`pred` with each frame's hypotheses scaled around their mean by `factor`, `(F,)` or per joint
    `(F, J)` (spread x factor, covariance x factor^2; the aggregated pose is kept); with the skeleton's
    `parents`, each hypothesis then keeps its bone lengths (`evaluation.calibration.keep_bones`: the
    spread grows a little less)."""
    f = np.asarray(factor, pred.hypotheses.dtype)
    per_joint = f if f.ndim == 2 else np.repeat(f[:, None], pred.spread.shape[1], 1)  # (F, J)
    centre = pred.hypotheses.mean(1, keepdims=True)
    hyps = centre + per_joint[:, None, :, None] * (pred.hypotheses - centre)
    if parents is None:
        cov, spread = pred.covariance * (per_joint**2)[..., None, None], pred.spread * per_joint
    else:
        hyps = keep_bones(torch.from_numpy(hyps), torch.from_numpy(pred.hypotheses), parents).numpy()
        cov = hypothesis_covariance(hyps)
        spread = spread_from_covariance(cov)
    return replace(pred, hypotheses=hyps, covariance=cov, spread=spread,
                   widening=factor if f.ndim == 1 else pred.widening)


def attach_context(model: DiffPoseModel, frames: FrameSet) -> FrameSet:
    """Compute a video model's per-frame context over `frames`' whole sequences (a frame model's
    is computed batch by batch when needed, so nothing is stored), in place; returns `frames`."""
    if model.is_video and frames.context is None:
        frames.context = model.encode(model.prepare(frames.keypoints_uv, frames.uv_gmm, frames.focal), frames.sequence_rows())
    return frames


def predict_frames(model: DiffPoseModel, frames: FrameSet, cfg: InferenceConfig) -> FramePredictions:
    """Run the model over every frame of `frames` (a video model's context over their sequences,
    unless `attach_context` stored it; hypotheses coherent per sequence with `cfg.coherent`)."""
    layouts = {s.skeleton for s in frames.sequences}
    return lift_batches(model, frames.keypoints_uv, frames.uv_gmm, cfg, context=frames.context, focal=frames.focal,
                        sequences=frames.sequence_rows(), layout=layouts.pop() if len(layouts) == 1 else None)
