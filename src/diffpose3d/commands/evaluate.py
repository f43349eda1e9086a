"""`diffpose3d evaluate --predictions FILE --dataset NAME --data-3d FILE [filters] --out report.json`

Scores a predictions file (layout in docs/PREDICTIONS.md) against a dataset split with the
published protocol of that dataset, prints the tables and writes the JSON report atomically.
Without filters the protocol's test set is used: Human3.6M S9 and S11; HumanEva-I Validate,
Walk/Jog/Box. Give ``all`` to a filter to lift it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from diffpose3d.data.base import PoseSequence, load_pickled_npz, require_dict
from diffpose3d.errors import InputFileError
from diffpose3d.evaluation import PROTOCOLS, EvaluationReport, PredictionKey, evaluate_sequences
from diffpose3d.io.atomic import save_json_atomic

UNIT_SCALE = {"m": 1.0, "mm": 0.001}
# The protocol's test set when the user gives no filter (None = no restriction).
PROTOCOL_DEFAULTS: dict[str, dict[str, str | None]] = {
    "h36m": {"subjects": "S9,S11", "split": None, "actions": None},
    "humaneva": {"subjects": None, "split": "Validate", "actions": "Walk,Jog,Box"},
    "3dhp": {"subjects": None, "split": None, "actions": None},
}

FileKey = tuple[str, str, int]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", required=True, metavar="FILE",
                        help="npz with positions_3d[subject][action] -> list per camera (docs/PREDICTIONS.md)")
    parser.add_argument("--dataset", required=True, choices=PROTOCOLS, help="dataset and protocol")
    parser.add_argument("--data-3d", required=True, metavar="FILE", help="the dataset's 3D file")
    parser.add_argument("--data-2d", metavar="FILE", help="the dataset's 2D file (if the reader needs one)")
    parser.add_argument("--subjects", help="comma-separated subjects, or 'all' (h36m default: S9,S11)")
    parser.add_argument("--split", help="Train or Validate, or 'all' (humaneva default: Validate)")
    parser.add_argument("--actions", help="comma-separated actions, or 'all' (humaneva default: Walk,Jog,Box)")
    parser.add_argument("--cameras", help="comma-separated camera indices (default: all)")
    parser.add_argument("--out", required=True, metavar="FILE", help="JSON report to write")


def _csv(value: str | None) -> list[str] | None:
    if value is None or value.strip().lower() == "all":
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def dataset_filters(args: argparse.Namespace) -> dict[str, Any]:
    """Reader filters from the arguments, falling back to the protocol's test set."""
    defaults = PROTOCOL_DEFAULTS[args.dataset]
    filters: dict[str, Any] = {}
    for name in ("subjects", "actions"):
        chosen = _csv(getattr(args, name) if getattr(args, name) is not None else defaults[name])
        if chosen is not None:
            filters[name] = chosen
    split = args.split if args.split is not None else defaults["split"]
    if split is not None and split.lower() != "all":
        filters["split"] = split
    cameras = _csv(args.cameras)
    if cameras is not None:
        try:
            filters["cameras"] = [int(c) for c in cameras]
        except ValueError:
            raise InputFileError("--cameras", f"camera indices must be integers, got {args.cameras!r}") from None
    return filters


def load_sequences(args: argparse.Namespace) -> list[PoseSequence]:
    """The dataset sequences to score, with ground truth, after the filters."""
    from diffpose3d.data import load_dataset

    return load_dataset(args.dataset, args.data_3d, args.data_2d, **dataset_filters(args))


def _pose_array(value: Any, path: str | Path, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputFileError(path, f"{where}: not a numeric array") from None
    if arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise InputFileError(path, f"{where}: expected (T, J, 3) or (T, N, J, 3), got {arr.shape}")
    return arr


def _units(path: str | Path) -> str:
    """The optional `units` entry ("m" unless given)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return str(data["units"]) if "units" in data.files else "m"
    except ValueError:
        raise InputFileError(path, "units must be a plain string array ('m' or 'mm')") from None


def predictions_from_file(path: str | Path) -> dict[FileKey, np.ndarray]:
    """Read a predictions npz: `{(subject key, action key, camera): (T, [N,] J, 3) metres}`."""
    raw = require_dict(load_pickled_npz(path, "positions_3d"), path, "positions_3d")
    units = _units(path)
    if units not in UNIT_SCALE:
        raise InputFileError(path, f"units must be 'm' or 'mm', got {units!r}")
    scale = UNIT_SCALE[units]
    out: dict[FileKey, np.ndarray] = {}
    for subject, actions in raw.items():
        require_dict(actions, path, f"positions_3d[{subject!r}]")
        for action, cameras in actions.items():
            where = f"positions_3d[{subject!r}][{action!r}]"
            if not isinstance(cameras, (list, tuple)):
                raise InputFileError(path, f"{where} should be a list with one array per camera")
            for cam, value in enumerate(cameras):
                if value is not None:
                    out[(str(subject), str(action), cam)] = _pose_array(value, path, f"{where}[{cam}]") * scale
    if not out:
        raise InputFileError(path, "positions_3d holds no predictions")
    return out


def match_predictions(
    predictions: Mapping[FileKey, np.ndarray], sequences: Sequence[PoseSequence]
) -> dict[PredictionKey, np.ndarray]:
    """Re-key file predictions by `PoseSequence.key`; the file's subject may carry the split prefix."""
    matched: dict[PredictionKey, np.ndarray] = {}
    for seq in sequences:
        candidates = [(seq.subject, seq.name, seq.camera_index)]
        if seq.split:
            candidates.append((f"{seq.split}/{seq.subject}", seq.name, seq.camera_index))
        for key in candidates:
            if key in predictions:
                matched[seq.key] = predictions[key]
                break
    return matched


def score(sequences: Sequence[PoseSequence], predictions: Mapping[PredictionKey, np.ndarray],
          protocol: str, source: str | Path) -> EvaluationReport:
    """Evaluate and name `source` in any error about the predictions."""
    return evaluate_sequences(sequences, predictions, protocol=protocol, source=source)


def run(args: argparse.Namespace) -> int:
    sequences = load_sequences(args)
    predictions = match_predictions(predictions_from_file(args.predictions), sequences)
    report = score(sequences, predictions, args.dataset, args.predictions)
    print(report.format_table())
    result = report.to_dict()
    result["inputs"] = {
        "predictions": str(Path(args.predictions).resolve()),
        "dataset": args.dataset,
        "data_3d": str(Path(args.data_3d).resolve()),
        "data_2d": str(Path(args.data_2d).resolve()) if args.data_2d else None,
        "filters": dataset_filters(args),
    }
    save_json_atomic(args.out, result)
    print(f"\nreport written to {args.out}")
    return 0
