"""Run a model bundle over a dataset split and score it with the dataset's protocol."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from diffpose3d.checkpoint import load_bundle
from diffpose3d.config import Config, EvidenceConfig, InferenceConfig
from diffpose3d.data.base import PoseSequence
from diffpose3d.datasets import load_training_splits
from diffpose3d.evaluation import EvaluationReport, evaluate_sequences
from diffpose3d.frames import build_frames
from diffpose3d.inference import predict_frames
from diffpose3d.model import DiffPoseModel
from diffpose3d.train import resolve_device

TEST_SEED_OFFSET = 200_000  # synthetic evidence of test frames never repeats a training draw


def score_model(
    model: DiffPoseModel,
    sequences: list[PoseSequence],
    evidence: EvidenceConfig,
    inference: InferenceConfig,
    protocol: str,
    seed_offset: int = TEST_SEED_OFFSET,
) -> dict[str, EvaluationReport]:
    """{'diffpose': hypotheses scored (mean/median/... pose + best-of-N + calibration),
    'lifter': the context encoder alone} on the same frames and the same 2D evidence (synthetic
    evidence drawn with `seed_offset`: another offset is another realisation of the detector)."""
    frames = build_frames(sequences, model.skeleton, evidence, seed_offset=seed_offset)
    pred = predict_frames(model, frames, inference)
    hyps = frames.split_by_sequence(pred.hypotheses)
    poses = frames.split_by_sequence(pred.pose)
    lifter = frames.split_by_sequence(pred.lifter)
    several = pred.hypotheses.shape[1] > 1
    report = evaluate_sequences(sequences, hyps if several and inference.aggregate == "mean" else poses, protocol=protocol)
    if several and inference.aggregate != "mean":
        # the protocol tables score the aggregated pose; keep best-of-N / calibration from the hypotheses
        report.calibration = evaluate_sequences(sequences, hyps, protocol=protocol).calibration
    report.hypotheses = pred.hypotheses.shape[1]
    return {
        inference.mode: report,
        "lifter": evaluate_sequences(sequences, lifter, protocol=protocol),
    }


def evaluate_checkpoint(
    checkpoint: str | Path | None,
    *,
    split: str = "test",
    config_overrides: dict | None = None,
    inference: InferenceConfig | None = None,
    sequences: list[PoseSequence] | None = None,
    evidence: EvidenceConfig | None = None,
    protocol: str | None = None,
    device: str = "auto",
) -> dict[str, EvaluationReport]:
    """Evaluate a bundle on `sequences`, or on the `split` its own config defines."""
    model, _ = load_bundle(checkpoint, device=resolve_device(device))
    config: Config = model.config
    if config_overrides:
        config = replace(config, data=replace(config.data, **config_overrides))
    if sequences is None:
        sequences = load_training_splits(config)[split]
    return score_model(
        model,
        sequences,
        evidence or config.evidence,
        inference or config.inference,
        protocol or config.data.dataset,
    )
