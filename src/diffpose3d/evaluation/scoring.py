"""Run a model over dataset sequences and score it with the dataset's protocol: the one path from a
checkpoint to an `EvaluationReport` (used by `evaluate --checkpoint`, `train --evaluate` and the
benchmarks)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from diffpose3d.checkpoint import load_bundle, resolve_device
from diffpose3d.config import EvidenceConfig, InferenceConfig
from diffpose3d.data.base import PoseSequence
from diffpose3d.data.frames import build_frames
from diffpose3d.evaluation.tables import EvaluationReport, evaluate_sequences
from diffpose3d.inference.lifting import predict_frames
from diffpose3d.model import DiffPoseModel

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
    sequences: list[PoseSequence] | None = None,
    split: str = "test",
    evidence_source: str | None = None,
    inference: dict[str, Any] | None = None,
    protocol: str | None = None,
    device: str = "auto",
) -> dict[str, EvaluationReport]:
    """Evaluate a bundle (a folder or a bundled model's name) on `sequences`, or on the `split` its
    own config defines. `evidence_source` replaces the bundle's `evidence.source` (the synthetic
    detector keeps the bundle's settings); `inference` overrides fields of its inference settings."""
    from diffpose3d.data.splits import training_splits

    model, _ = load_bundle(checkpoint, device=resolve_device(device))
    config = model.config
    if sequences is None:
        sequences = training_splits(config)[split]
    evidence = config.evidence if evidence_source is None else replace(config.evidence, source=evidence_source)
    return score_model(model, sequences, evidence, replace(config.inference, **(inference or {})),
                       protocol or config.data.dataset)
