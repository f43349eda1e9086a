"""Run a model over dataset sequences and score it with the dataset's protocol: the one path from a
checkpoint to an `EvaluationReport` (used by `evaluate --checkpoint`, `train --evaluate` and the
benchmarks)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffpose3d.bundle import load_bundle, resolve_device, store_conformal
from diffpose3d.config import EvidenceConfig, InferenceConfig
from diffpose3d.data.base import PoseSequence
from diffpose3d.data.frames import FrameSet, build_frames_cut
from diffpose3d.errors import ConfigError
from diffpose3d.evaluation import calibration as cal
from diffpose3d.evaluation.joint_match import JointMatch, match_joints, restrict_sequence
from diffpose3d.evaluation.tables import EvaluationReport, evaluate_sequences
from diffpose3d.inference.lifting import attach_context, predict_frames
from diffpose3d.model import DiffPoseModel
from diffpose3d.skeleton import get_skeleton

TEST_SEED_OFFSET = 200_000  # synthetic evidence of test frames never repeats a training draw


def score_model(
    model: DiffPoseModel,
    sequences: list[PoseSequence],
    evidence: EvidenceConfig,
    inference: InferenceConfig,
    protocol: str,
    seed_offset: int = TEST_SEED_OFFSET,
    *,
    calibration_samples: int = 0,
    calibration_frames: int = 1000,
    diagram: str | Path | None = None,
    cut: slice = slice(None),
) -> dict[str, EvaluationReport]:
    """{'diffpose': hypotheses scored (mean/median/... pose + best-of-N + calibration),
    'lifter': the context encoder alone} on the same frames and the same 2D evidence (synthetic
    evidence drawn with `seed_offset`: another offset is another realisation of the detector).

    The diffpose report's calibration also holds the conformal ball's coverage (with the bundle's
    conformal scaling and without) and, with `calibration_samples` > 0, the quantile calibration
    protocol on at most `calibration_frames` evenly spaced frames (`quantile_calibration`), its
    reliability diagram written to `diagram`. Only the frames `cut` of each sequence are scored
    (`frames_to_score`)."""
    match = sequences_match(model, sequences)
    frames = frames_to_score(model, sequences, evidence, cut, seed_offset)
    sequences = frames.sequences
    pred = predict_frames(model, frames, inference)
    scored = sequences if match.identity else [restrict_sequence(s, match) for s in sequences]
    keep = match.model_index

    def per_sequence(values: np.ndarray) -> dict[tuple, np.ndarray]:
        return frames.split_by_sequence(values if match.identity else values[..., keep, :])

    hyps, poses, lifter = per_sequence(pred.hypotheses), per_sequence(pred.pose), per_sequence(pred.lifter)
    several = pred.hypotheses.shape[1] > 1
    report = evaluate_sequences(scored, hyps if several and inference.aggregate == "mean" else poses, protocol=protocol)
    if several and inference.aggregate != "mean":
        # the protocol tables score the aggregated pose; keep best-of-N / calibration from the hypotheses
        report.calibration = evaluate_sequences(scored, hyps, protocol=protocol).calibration
    report.hypotheses = pred.hypotheses.shape[1]
    report.joints = match.to_dict()
    if several and frames.target_xyz is not None:
        truth = frames.target_xyz.numpy()[:, match.data_index]
        extra = {"conformal": conformal_coverage(model, pred.pose[:, keep], pred.spread[:, keep], truth, keep)}
        if calibration_samples > 0:
            extra["quantile_calibration"] = quantile_calibration(
                model, frames, inference, calibration_samples, calibration_frames, diagram, match)
        report.calibration = {**(report.calibration or {}), **extra}
    lifter_report = evaluate_sequences(scored, lifter, protocol=protocol)
    lifter_report.joints = report.joints
    return {
        inference.mode: report,
        "lifter": lifter_report,
    }


def frames_to_score(model: DiffPoseModel, sequences: list[PoseSequence], evidence: EvidenceConfig, cut: slice,
                    seed_offset: int) -> FrameSet:
    """The frames `cut` (e.g. every 10th: `slice(5, None, 10)`) of each sequence with their evidence,
    over the sequences cut so; a video model's context computed before the cut, over whole
    sequences, so that its windows see consecutive frames (`data.frames.build_frames_cut`)."""
    every_frame = cut.start in (None, 0) and cut.stop is None and cut.step in (None, 1)
    whole = (lambda f: attach_context(model, f)) if model.is_video and not every_frame else None
    return build_frames_cut(sequences, model.skeleton, evidence, cut, seed_offset=seed_offset, whole=whole)


def sequences_match(model: DiffPoseModel, sequences: list[PoseSequence]) -> JointMatch:
    """The joints the model and the sequences' layout share (one layout for all sequences)."""
    layouts = sorted({s.skeleton for s in sequences})
    if len(layouts) != 1:
        raise ConfigError(f"the sequences mix joint layouts {layouts}: score one layout at a time")
    try:
        return match_joints(model.skeleton.name, layouts[0])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def evaluate_checkpoint(
    checkpoint: str | Path | None,
    *,
    sequences: list[PoseSequence] | None = None,
    split: str = "test",
    evidence_source: str | None = None,
    inference: dict[str, Any] | None = None,
    protocol: str | None = None,
    device: str = "auto",
    calibration_samples: int = 0,
    calibration_frames: int = 1000,
    diagram: str | Path | None = None,
    cut: slice = slice(None),
) -> dict[str, EvaluationReport]:
    """Evaluate a bundle (a folder or a bundled model's name) on `sequences`, or on the `split` its
    own config defines. `evidence_source` replaces the bundle's `evidence.source` (the synthetic
    detector keeps the bundle's settings); `inference` overrides fields of its inference settings;
    the calibration options and `cut` are `score_model`'s."""
    from diffpose3d.data.splits import training_splits

    model, _ = load_bundle(checkpoint, device=resolve_device(device))
    config = model.config
    if sequences is None:
        sequences = training_splits(config)[split]
    evidence = config.evidence if evidence_source is None else replace(config.evidence, source=evidence_source)
    return score_model(model, sequences, evidence, replace(config.inference, **(inference or {})),
                       protocol or config.data.dataset, calibration_samples=calibration_samples,
                       calibration_frames=calibration_frames, diagram=diagram, cut=cut)


def scored_joints(model_joints: int, data_joints: int) -> np.ndarray:
    """The model's joints the data has: all, or without neck_nose for a 17-joint model on the 16
    joints of Stacked-Hourglass input (as `evaluation.tables` scores them)."""
    keep = np.arange(model_joints)
    if model_joints == 17 and data_joints == 16:
        keep = np.delete(keep, get_skeleton("h36m17").index("neck_nose"))
    return keep


def conformal_coverage(model: DiffPoseModel, pose: np.ndarray, spread: np.ndarray, truth: np.ndarray,
                       keep: np.ndarray) -> dict[str, float]:
    """Coverage of the conformal ball (`evaluation.calibration`) over non-root joints, with the
    model's conformal scaling (`after`) and without it (`before`: the scores times the scale, exact for a
    bundle that scales linearly, an estimate for one that keeps bones); `keep` the model's joints scored."""
    scale = model.conformal_scale.detach().cpu().numpy()[keep]
    scores = cal.nonconformity(pose[:, 1:], spread[:, 1:], truth[:, 1:])
    radius = cal.gaussian_ball_radius(cal.CONFORMAL_LEVEL)
    return {"level": cal.CONFORMAL_LEVEL, "after": float(np.mean(scores <= radius)),
            "before": float(np.mean(scores * scale[1:] <= radius)),
            "scaled": bool(np.any(scale != 1.0))}


def uncertain_joints(frames: FrameSet) -> np.ndarray:
    """(F, J) joints whose 2D evidence is more than twice as broad as their frame's median joint
    (occluded, out of frame, no detection): where the calibration matters most."""
    evidence_spread = frames.uv_gmm.spread().numpy()
    return evidence_spread > 2.0 * np.median(evidence_spread, axis=1, keepdims=True)


def quantile_calibration(
    model: DiffPoseModel, frames: FrameSet, inference: InferenceConfig, samples: int, max_frames: int,
    diagram: str | Path | None = None, match: JointMatch | None = None,
) -> dict[str, Any]:
    """The cGNF protocol (`evaluation.calibration`) with `samples` hypotheses per pose on at most
    `max_frames` evenly spaced frames: the curve and ECE over non-root joints and over the joints
    with uncertain 2D evidence (`uncertain_joints`, when at least 50 of them)."""
    attach_context(model, frames)
    if len(frames) > max_frames:
        frames = frames.subset(torch.linspace(0, len(frames) - 1, max_frames).long())
    pred = predict_frames(model, frames, replace(inference, hypotheses=samples))
    truth = frames.target_xyz.numpy()
    if match is None:
        keep, data_keep = scored_joints(pred.hypotheses.shape[2], truth.shape[1]), slice(None)
    else:
        keep, data_keep = match.model_index, match.data_index
    truth = truth[:, data_keep]
    hypotheses = pred.hypotheses[:, :, keep]
    per_joint = cal.quantile_frequencies(hypotheses[:, :, 1:], truth[:, 1:])  # (L, J - 1)
    curve = np.median(per_joint, axis=1)
    result: dict[str, Any] = {"samples": samples, "frames": len(frames), "levels": cal.QUANTILE_LEVELS.tolist(),
                              "curve": curve.tolist(), "ece": cal.expected_calibration_error(curve)}
    curves = {"all non-root joints": curve}
    mask = uncertain_joints(frames)[:, keep][:, 1:]
    if mask.sum() >= 50:
        rows, cols = np.nonzero(mask)
        hyp = hypotheses[:, :, 1:][rows, :, cols][:, :, None]  # (n, S, 1, 3)
        uncertain = cal.calibration_curve(hyp, truth[:, 1:][rows, cols][:, None])
        result.update(uncertain_joints=int(mask.sum()), uncertain_curve=uncertain.tolist(),
                      uncertain_ece=cal.expected_calibration_error(uncertain))
        curves["uncertain 2D evidence"] = uncertain
    if diagram is not None:
        result["diagram"] = str(cal.reliability_diagram(
            diagram, curves, f"{model.config.name}: {samples} samples, {len(frames)} frames"))
    return result


def _fit_radial(model: DiffPoseModel, frames: FrameSet, keep: np.ndarray, samples: int, max_frames: int) -> dict[str, Any]:
    """Fit `model.radial_map` on `frames` (after its conformal scaling) and return its record."""
    if max_frames and len(frames) > max_frames:
        frames = frames.subset(torch.linspace(0, len(frames) - 1, max_frames).long())
    inference = replace(model.config.inference, hypotheses=samples, widen_off_domain=False)
    truth = frames.target_xyz.numpy()[:, 1:]  # the data's joints, in the order of `keep`
    joints = keep[1:]  # the root is exact by construction
    before = predict_frames(model, frames, inference).hypotheses
    source, target = cal.fit_radial_map(before[:, :, joints], truth)
    model.radial_map.copy_(torch.as_tensor(np.stack([source, target]), dtype=model.radial_map.dtype))
    after = predict_frames(model, frames, inference).hypotheses
    ece = lambda h: cal.expected_calibration_error(cal.calibration_curve(h[:, :, joints], truth))
    return {"samples": samples, "frames": len(frames), "ece_before": round(ece(before), 4), "ece_after": round(ece(after), 4),
            "from": [round(float(v), 4) for v in source], "to": [round(float(v), 4) for v in target]}


def calibrate_checkpoint(
    checkpoint: str | Path, sequences: list[PoseSequence], *, evidence_source: str | None = None,
    level: float = cal.CONFORMAL_LEVEL, device: str = "auto", radial_samples: int = 0, radial_frames: int = 2000,
    cut: slice = slice(None),
) -> dict[str, Any]:
    """Fit the bundle's split-conformal scaling and then its radial shape (`evaluation.calibration`;
    `radial_samples` hypotheses on at most `radial_frames` of the frames, evenly spread; 0: no shape,
    the identity) on the frames `cut` of `sequences` (`frames_to_score`; a calibration split: neither
    training nor test data) and store them in the bundle (`bundle.store_conformal`). The scale is
    fitted for hypotheses that keep their bone lengths (`evaluation.calibration.keep_bones`), which
    the bundle's config then switches on."""
    model, info = load_bundle(checkpoint, device=resolve_device(device))
    config = model.config
    evidence = config.evidence if evidence_source is None else replace(config.evidence, source=evidence_source)
    frames = frames_to_score(model, sequences, evidence, cut, TEST_SEED_OFFSET // 2)
    model.conformal_scale.fill_(1.0)
    model.radial_map.copy_(cal.identity_radial_map())  # refitted below, after the scale
    # the hypotheses as the denoiser and the global spread scale leave them, without keeping bones and
    # without the out-of-domain widening (`fit-ood` fits that on top of this scaling: run it after)
    pred = predict_frames(model, frames, replace(config.inference, widen_off_domain=False, keep_bones=False))
    truth = frames.target_xyz.numpy()
    keep = scored_joints(pred.pose.shape[1], truth.shape[1])
    before = cal.nonconformity(pred.pose[:, keep], pred.spread[:, keep], truth)
    spread_scale = float(model.spread_scale)
    centre = pred.hypotheses.mean(1, keepdims=True)
    raw = centre + (pred.hypotheses - centre) / spread_scale
    scale, _ = cal.conformal_scale_keeping_bones(raw, spread_scale, truth, keep, model.skeleton.parents, level)
    model.conformal_scale.copy_(cal.usable_scale(scale, model.conformal_scale.dtype, level))
    config.inference.keep_bones = True
    # the fit took the root-relative hypotheses for g's states (whose root wobbles by a millimetre or
    # two): the coverage stated is measured through the model as it will predict
    pred = predict_frames(model, frames, replace(config.inference, widen_off_domain=False))
    after = cal.nonconformity(pred.pose[:, keep], pred.spread[:, keep], truth)
    radius = cal.gaussian_ball_radius(level)
    record = {
        "level": level, "frames": len(frames), "sequences": len(sequences), "evidence": evidence.source,
        "scale": [round(float(v), 4) for v in scale], "keep_bones": True,
        "coverage_before": float(np.mean(before[:, 1:] <= radius)),
        "coverage_after": float(np.mean(after[:, 1:] <= radius)),
    }
    if radial_samples > 1:
        record["radial"] = _fit_radial(model, frames, keep, radial_samples, radial_frames)
    store_conformal(model, checkpoint, info, record)
    return record


def shift_to_new_subjects(checkpoint: str | Path, pairs: list[tuple[str | Path, str | Path]]) -> dict[str, Any]:
    """Carry a bundle's calibration, fitted on blocks of the subjects it trained on, over to new
    subjects, by what development runs of the same recipe measured: each pair is one run's bundle
    calibrated on its training subjects' blocks and on a subject it never saw. Per joint the
    bundle's conformal scale is multiplied by the ratio of a run's two scales (its errors on a new
    subject over those on its blocks, in units of its spread), the geometric mean over the pairs;
    the radial shape becomes the one fitted on the first pair's new subject; stored in the bundle."""
    model, info = load_bundle(checkpoint)
    ratios, calibrations = [], []
    for dev_blocks, dev_subject in pairs:
        blocks, _ = load_bundle(dev_blocks)
        subject, subject_info = load_bundle(dev_subject)
        if not (blocks.conformal_scale.shape == subject.conformal_scale.shape == model.conformal_scale.shape):
            raise ConfigError(f"{dev_blocks} and {dev_subject} are not of {checkpoint}'s joint layout")
        ratios.append(subject.conformal_scale.double() / blocks.conformal_scale.double().clamp_min(1e-9))
        calibrations.append({k: v for k, v in subject_info.get("conformal", {}).items() if k != "radial"})
        if len(ratios) == 1:
            model.radial_map.copy_(subject.radial_map)
    ratio = torch.stack(ratios).log().mean(0).exp()
    scale = model.conformal_scale.double() * ratio
    model.conformal_scale.copy_(cal.usable_scale(scale.numpy(), model.conformal_scale.dtype, cal.CONFORMAL_LEVEL))
    record = {**info.get("conformal", {}), "new_subjects": {
        "pairs": [[str(a), str(b)] for a, b in pairs], "dev_subject_calibrations": calibrations,
        "ratios": [[round(float(v), 4) for v in r] for r in ratios],
        "ratio": [round(float(v), 4) for v in ratio], "scale": [round(float(v), 4) for v in scale]}}
    store_conformal(model, checkpoint, info, record)
    return record["new_subjects"]
