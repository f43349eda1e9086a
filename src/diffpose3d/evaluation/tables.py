"""Score 3D predictions against dataset sequences with the published protocols.

Every sequence is compared root-relative (joint 0, the pelvis, subtracted from both sides) in
millimetres, frame by frame; the frame errors are then averaged the way each benchmark reports them:

- ``h36m``: per action over all frames of that action (every subject, trial and camera), then the
  plain mean over the actions (the "Average" row, the headline numbers).
- ``humaneva``: per action x subject cell (Walk/Jog/Box x S1/S2/S3, every camera); the headline is
  the mean over the cells. P-MPJPE is the published figure.
- ``3dhp``: over the valid frames only (``PoseSequence.valid``), pooled over all test sequences, with
  PCK at 150 mm and AUC over 0-150 mm (percent) beside MPJPE.

Every table also holds MPJPE, P-MPJPE, N-MPJPE, MPJVE (per frame step), PCK and AUC. A prediction may
hold N hypotheses ``(T, N, J, 3)``: their mean is the scored pose, and the report adds best-of-N
errors and calibration (coverage of the per-joint Gaussian ellipsoids, spread-error Spearman
correlation) over every non-root joint of every valid frame (the root is zero by construction).
Predictions with 16 joints are scored on Human3.6M against the 16 joints without ``neck_nose``
(the Stacked-Hourglass setting), and so are 17-joint predictions on 16-joint (Stacked-Hourglass)
sequences.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diffpose3d import metrics
from diffpose3d.data.base import PoseSequence
from diffpose3d.data.protocols import BENCHMARKS, preferred_actions
from diffpose3d.errors import InputFileError
from diffpose3d.skeleton import get_skeleton

METRIC_LABELS: dict[str, str] = {
    "mpjpe": "MPJPE", "p_mpjpe": "P-MPJPE", "n_mpjpe": "N-MPJPE", "mpjve": "MPJVE",
    "pck": "PCK", "auc": "AUC", "best_mpjpe": "best MPJPE", "best_p_mpjpe": "best P-MPJPE",
}
UNITS: dict[str, str] = {name: ("%" if name in ("pck", "auc") else "mm") for name in METRIC_LABELS}
AVERAGE_ROW = "Average"
ALL_ROW = "All frames"

PredictionKey = tuple[str, str, int]
Row = dict[str, float]


@dataclass
class Table:
    """One result table: ``rows[row][column]`` (missing cells are absent)."""

    title: str
    row_label: str
    columns: list[str]
    rows: dict[str, Row]

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "row_label": self.row_label, "columns": list(self.columns),
                "rows": {r: dict(v) for r, v in self.rows.items()}}

    def format(self) -> str:
        """Aligned text: a header, one line per row, ``-`` for a missing cell."""
        header = [self.row_label] + [METRIC_LABELS.get(c, c) for c in self.columns]
        body = [[row] + [f"{v[c]:.1f}" if c in v else "-" for c in self.columns]
                for row, v in self.rows.items()]
        widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
        lines = [self.title]
        for line in [header] + body:
            cells = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:], widths[1:])]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)


@dataclass
class EvaluationReport:
    """Protocol tables (mm, PCK/AUC in %), headline ``summary`` and optional calibration."""

    protocol: str
    summary: Row
    tables: dict[str, Table]
    sequences: int
    frames: int
    hypotheses: int | None = None
    calibration: dict[str, Any] | None = None
    joints: dict[str, Any] | None = None  # the layouts and the joints scored, when they differ (`joint_match`)
    units: dict[str, str] = field(default_factory=lambda: dict(UNITS))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dicts (calibration coverage keyed by the level as text)."""
        return {
            "protocol": self.protocol,
            "sequences": self.sequences,
            "frames": self.frames,
            "hypotheses": self.hypotheses,
            "units": dict(self.units),
            "summary": dict(self.summary),
            "tables": {name: table.to_dict() for name, table in self.tables.items()},
            "calibration": self.calibration,
            "joints": self.joints,
        }

    def format_table(self) -> str:
        """Readable multi-table text for the terminal."""
        hyp = f", {self.hypotheses} hypotheses (scored pose = mean)" if self.hypotheses else ""
        parts = [f"protocol {self.protocol}: {self.sequences} sequences, {self.frames} frames{hyp}; "
                 "errors in mm, PCK/AUC in %"]
        if self.joints and self.joints.get("model_layout") != self.joints.get("data_layout"):
            parts.append(f"{self.joints['model_layout']} model on {self.joints['data_layout']} data: "
                         f"{len(self.joints['joints'])} shared joints scored ({', '.join(self.joints['joints'])})")
        parts += [table.format() for table in self.tables.values()]
        summary = "  ".join(f"{METRIC_LABELS[k]} {v:.1f}" for k, v in self.summary.items())
        parts.append(f"headline: {summary}")
        if self.calibration:
            cov = "  ".join(f"{float(k):.0%}: {v:.3f}" for k, v in self.calibration["coverage"].items())
            parts.append(
                f"calibration ({self.calibration['joints']} joints): coverage {cov}; spread-error "
                f"Spearman {self.calibration['spread_error_spearman']:.3f}; mean spread "
                f"{self.calibration['mean_spread_mm']:.1f} mm"
            )
            conformal = self.calibration.get("conformal")
            if conformal:
                parts.append(f"conformal {conformal['level']:.0%} ball: coverage {conformal['after']:.3f} "
                             f"(without the conformal scaling {conformal['before']:.3f})")
            quantile = self.calibration.get("quantile_calibration")
            if quantile:
                line = (f"quantile calibration ({quantile['samples']} samples, {quantile['frames']} frames): "
                        f"ECE {quantile['ece']:.3f}")
                if "uncertain_ece" in quantile:
                    line += (f"; on {quantile['uncertain_joints']} joints with uncertain 2D evidence "
                             f"{quantile['uncertain_ece']:.3f}")
                parts.append(line)
        return "\n\n".join(parts)


class _Sums:
    """Running frame-weighted sums per row and metric."""

    def __init__(self) -> None:
        self.data: dict[Any, dict[str, list[float]]] = {}

    def add(self, row: Any, values: Mapping[str, np.ndarray]) -> None:
        cells = self.data.setdefault(row, {})
        for name, array in values.items():
            if array.size:
                cell = cells.setdefault(name, [0.0, 0])
                cell[0] += float(array.sum())
                cell[1] += int(array.size)

    def means(self, row: Any) -> Row:
        return {name: s / n for name, (s, n) in self.data.get(row, {}).items() if n}


def _mean_of_rows(rows: Sequence[Row]) -> Row:
    names = [n for n in METRIC_LABELS if any(n in r for r in rows)]
    return {n: float(np.mean([r[n] for r in rows if n in r])) for n in names}


def _natural(text: str) -> tuple[Any, ...]:
    """Sort key putting "S9" before "S11"."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _ordered(keys: Sequence[str], preferred: Sequence[str]) -> list[str]:
    present = set(keys)
    rest = sorted((k for k in present if k not in preferred), key=_natural)
    return [k for k in preferred if k in present] + rest


def _prepare(seq: PoseSequence, value: Any, key: PredictionKey, source: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth `(T, J, 3)` and prediction `(T, [N,] J, 3)`, root-relative mm, joints matched."""
    if seq.pose_3d is None:
        raise InputFileError(source, f"sequence {key} has no 3D ground truth to score against")
    gt = np.asarray(seq.pose_3d, dtype=np.float64)
    gt = (gt - gt[:, :1]) * 1000.0  # as PoseSequence.pose_3d_root_relative, in float64
    pred = np.asarray(value, dtype=np.float64)
    if pred.ndim not in (3, 4) or pred.shape[-1] != 3:
        raise InputFileError(source, f"prediction {key} has shape {pred.shape}; expected (T, J, 3) or (T, N, J, 3)")
    if pred.shape[0] != gt.shape[0]:
        raise InputFileError(source, f"prediction {key} has {pred.shape[0]} frames; the sequence has {gt.shape[0]}")
    if not np.all(np.isfinite(pred)):
        raise InputFileError(source, f"prediction {key} contains NaN or infinite values")
    joints = pred.shape[-2]
    if joints != gt.shape[1]:
        neck = get_skeleton("h36m17").index("neck_nose")
        if seq.skeleton == "h36m17" and joints == 16:
            gt = np.delete(gt, neck, axis=1)
        elif seq.skeleton == "h36m16" and joints == 17:  # a 17-joint model on Stacked-Hourglass input
            pred = np.delete(pred, neck, axis=-2)
        else:
            raise InputFileError(
                source, f"prediction {key} has {joints} joints; the {seq.skeleton} sequence has {gt.shape[1]}"
            )
    pred = (pred - pred[..., :1, :]) * 1000.0
    return gt, pred


def _frame_values(gt: np.ndarray, pred: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame (and per frame step for MPJVE) errors of one sequence over its valid frames."""
    hyps = pred if pred.ndim == 4 else None
    pose = pred.mean(axis=1) if hyps is not None else pred
    g, p = gt[valid], pose[valid]
    values = {
        "mpjpe": metrics.mpjpe(p, g, per_frame=True),
        "p_mpjpe": metrics.p_mpjpe(p, g, per_frame=True),
        "n_mpjpe": metrics.n_mpjpe(p, g, per_frame=True),
        "pck": 100.0 * metrics.pck(p, g, per_frame=True),
        "auc": 100.0 * metrics.auc(p, g, per_frame=True),
    }
    steps = valid[1:] & valid[:-1]
    values["mpjve"] = metrics.mpjve(pose, gt, per_frame=True)[steps] if len(gt) > 1 else np.zeros(0)
    if hyps is not None:
        values["best_mpjpe"] = metrics.best_of_n(hyps[valid], g, per_frame=True)
        values["best_p_mpjpe"] = metrics.best_of_n(hyps[valid], g, metric="p_mpjpe", per_frame=True)
    return values


class _CalibrationPool:
    """Per (frame, non-root joint) squared Mahalanobis distance, spread and error, pooled."""

    def __init__(self) -> None:
        self.d2: list[np.ndarray] = []
        self.num_hypotheses: list[int] = []  # N of each entry of d2: its prediction region depends on N
        self.spread: list[np.ndarray] = []
        self.error: list[np.ndarray] = []

    def add(self, hyps: np.ndarray, gt: np.ndarray) -> None:
        if len(gt) == 0:
            return
        h, g = hyps[:, :, 1:], gt[:, 1:]
        self.num_hypotheses.append(h.shape[1])
        self.d2.append(metrics.mahalanobis_sq(h, g).astype(np.float32).ravel())
        self.spread.append(metrics.hypothesis_spread(h).astype(np.float32).ravel())
        self.error.append(np.linalg.norm(h.mean(axis=1) - g, axis=-1).astype(np.float32).ravel())

    def result(self, levels: Sequence[float]) -> dict[str, Any] | None:
        if not self.d2:
            return None
        spread, error = np.concatenate(self.spread), np.concatenate(self.error)
        total = sum(d2.size for d2 in self.d2)
        cover = {float(level): 0.0 for level in levels}
        for d2, n in zip(self.d2, self.num_hypotheses):
            for level, value in metrics.coverage_from_mahalanobis(d2, levels, n).items():
                cover[level] += value * d2.size / total
        return {
            "joints": "non-root",
            "coverage": {f"{level:g}": value for level, value in cover.items()},
            "spread_error_spearman": metrics.rank_correlation(spread, error),
            "mean_spread_mm": float(spread.mean()),
            "mean_error_mm": float(error.mean()),
        }


def _check_keys(sequences: Sequence[PoseSequence], predictions: Mapping[PredictionKey, Any], source: str | Path) -> None:
    keys = [(s.subject, s.name, s.camera_index) for s in sequences]
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise InputFileError(source, f"sequence {twice} occurs twice (evaluate one split at a time)")
    missing = [k for k in keys if k not in predictions]
    if missing:
        shown = ", ".join(str(k) for k in missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise InputFileError(source, f"no prediction for {len(missing)} of {len(sequences)} sequences: {shown}")


def evaluate_sequences(
    sequences: Sequence[PoseSequence],
    predictions: Mapping[PredictionKey, Any],
    *,
    protocol: str,
    source: str | Path = "predictions",
    levels: Sequence[float] = metrics.COVERAGE_LEVELS,
) -> EvaluationReport:
    """Score `predictions[(subject, name, camera_index)]` (metres) against `sequences`.

    `source` names the predictions in error messages (a path for the CLI). Bad or missing
    predictions raise `InputFileError`.
    """
    if protocol not in BENCHMARKS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(BENCHMARKS)}")
    if not sequences:
        raise InputFileError(source, "no sequences to evaluate (check the dataset filters)")
    _check_keys(sequences, predictions, source)
    by_action, by_subject, by_cell, pooled = _Sums(), _Sums(), _Sums(), _Sums()
    calibration = _CalibrationPool()
    counts: set[int] = set()
    frames = 0
    for seq in sequences:
        key = (seq.subject, seq.name, seq.camera_index)
        gt, pred = _prepare(seq, predictions[key], key, source)
        counts.add(pred.shape[1] if pred.ndim == 4 else 0)
        valid = np.ones(len(gt), bool) if seq.valid is None else np.asarray(seq.valid, bool)
        values = _frame_values(gt, pred, valid)
        for sums, row in ((by_action, seq.action), (by_subject, seq.subject),
                          (by_cell, (seq.action, seq.subject)), (pooled, ALL_ROW)):
            sums.add(row, values)
        if pred.ndim == 4:
            calibration.add(pred[valid], gt[valid])
        frames += int(valid.sum())
    if len(counts) > 1:
        raise InputFileError(source, f"predictions mix hypothesis counts {sorted(counts)} (0 = single pose)")
    hypotheses = counts.pop() or None
    columns = [n for n in METRIC_LABELS if hypotheses or not n.startswith("best_")]
    tables, summary = _protocol_tables(protocol, columns, by_action, by_subject, by_cell, pooled)
    return EvaluationReport(protocol, summary, tables, len(sequences), frames, hypotheses,
                            calibration.result(levels) if hypotheses else None)


def _protocol_tables(
    protocol: str, columns: list[str], by_action: _Sums, by_subject: _Sums, by_cell: _Sums, pooled: _Sums
) -> tuple[dict[str, Table], Row]:
    """The protocol's tables and its headline row."""
    actions = _ordered(list(by_action.data), preferred_actions(protocol))
    subjects = _ordered(list(by_subject.data), ())
    action_rows = {a: by_action.means(a) for a in actions}
    subject_rows = {s: by_subject.means(s) for s in subjects}
    subject_rows[ALL_ROW] = pooled.means(ALL_ROW)
    tables: dict[str, Table] = {}
    if protocol == "3dhp":
        tables["per_subject"] = Table("per test sequence (valid frames)", "sequence", columns, subject_rows)
        return tables, dict(subject_rows[ALL_ROW])
    if protocol == "humaneva":
        cells = {c: by_cell.means(c) for c in by_cell.data}
        for metric in ("p_mpjpe", "mpjpe"):
            grid = {a: {s: cells[(a, s)][metric] for s in subjects if metric in cells.get((a, s), {})}
                    for a in actions}
            tables[f"{metric}_action_subject"] = Table(
                f"{METRIC_LABELS[metric]} per action x subject", "action", subjects, grid)
        summary = _mean_of_rows(list(cells.values()))
        action_rows[AVERAGE_ROW] = dict(summary)
        tables["per_action"] = Table("per action (frames pooled; Average = mean over action x subject cells)", "action",
                                     columns, action_rows)
    else:
        summary = _mean_of_rows(list(action_rows.values()))
        action_rows[AVERAGE_ROW] = dict(summary)
        tables["per_action"] = Table("per action (frames pooled; Average = mean over actions)", "action",
                                     columns, action_rows)
    tables["per_subject"] = Table("per subject (frames pooled)", "subject", columns, subject_rows)
    return tables, summary
