"""`diffpose3d evaluate --predictions FILE --dataset NAME --data-3d FILE [filters] --out report.json`

Scores a predictions file (layout in docs/PREDICTIONS.md) against a dataset split with the
published protocol of that dataset, prints the tables and writes the JSON report atomically.
Without filters the protocol's test set is used (``data.protocol_filters(dataset, "test")``:
Human3.6M S9 and S11; HumanEva-I Validate, Walk/Jog/Box; 3DHP TS1-TS6). ``all`` lifts a filter.
Reading predictions (``predictions_from_file``) is kept apart from scoring (``score``) so that other
sources of predictions (a checkpoint) can feed the same path.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from diffpose3d.data import load_dataset, protocol_filters
from diffpose3d.data.base import PoseSequence, load_pickled_npz, require_dict
from diffpose3d.errors import ConfigError, InputFileError
from diffpose3d.evaluation import PROTOCOLS, EvaluationReport, PredictionKey, evaluate_sequences
from diffpose3d.commands.predict import add_inference_arguments, inference_overrides
from diffpose3d.io.atomic import save_json_atomic

UNIT_SCALE = {"m": 1.0, "mm": 0.001}
FILTER_OPTIONS = ("subjects", "split", "actions", "cameras")

FileKey = tuple[str, str, int]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--predictions", metavar="FILE",
                      help="npz with positions_3d[subject][action] -> list per camera (docs/PREDICTIONS.md)")
    what.add_argument("--checkpoint", nargs="?", const="", metavar="CKPT",
                      help="run a model bundle on the split instead: a folder or a bundled model's name (no value: humaneva_frame)")
    parser.add_argument("--dataset", required=True, choices=PROTOCOLS, help="dataset and protocol")
    parser.add_argument("--data-3d", required=True, metavar="FILE",
                        help="the dataset's 3D file (3dhp: data_test_3dhp.npz or data_train_3dhp.npz)")
    parser.add_argument("--data-2d", metavar="FILE", help="the dataset's 2D file (h36m, humaneva; optional)")
    parser.add_argument("--subjects", help="comma-separated subjects (3dhp: sequences), or 'all' "
                        "(default: the protocol's test set, e.g. h36m S9,S11)")
    parser.add_argument("--split", help="humaneva: Train or Validate, or 'all' (default: Validate)")
    parser.add_argument("--actions", help="comma-separated actions, or 'all' (humaneva default: Walk,Jog,Box)")
    parser.add_argument("--cameras", help="comma-separated camera indices or ids (default: all)")
    parser.add_argument("--out", required=True, metavar="FILE", help="JSON report to write")
    parser.add_argument("--evidence", choices=["keypoints", "synthetic", "gmm_file"], default="keypoints",
                        help="with --checkpoint: the 2D evidence of H_K: the 2D file's keypoints (default), "
                             "synthetic detector-like evidence made from them, or --gmm-file")
    parser.add_argument("--gmm-file", metavar="FILE", help="an authors'-layout *_gmm.npz for --evidence gmm_file")
    add_inference_arguments(parser)


def _csv(value: str) -> list[str] | None:
    """Comma-separated items; None for 'all' (no restriction)."""
    if value.strip().lower() == "all":
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"empty filter value {value!r}")
    return items


def dataset_filters(args: argparse.Namespace) -> dict[str, Any]:
    """Reader filters: the protocol's test set (`data.protocol_filters`), overridden by the options."""
    filters = protocol_filters(args.dataset, "test")
    for option in FILTER_OPTIONS:
        value = getattr(args, option, None)
        if value is None:
            continue
        key = option
        if args.dataset == "3dhp":
            if option != "subjects":
                raise ConfigError(f"--{option} does not apply to 3dhp (filter with --subjects TS1,TS2)")
            key = "sequences"
        items = _csv(value)
        if items is None:
            filters.pop(key, None)
        elif option == "cameras":
            filters[key] = [int(c) if c.isdigit() else c for c in items]
        else:
            filters[key] = items
    return filters


def load_sequences(args: argparse.Namespace) -> list[PoseSequence]:
    """The dataset sequences to score, with ground truth, after the filters."""
    filters = dataset_filters(args)
    try:
        sequences = load_dataset(args.dataset, args.data_3d, args.data_2d, **filters)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not sequences:
        raise InputFileError(args.data_3d, f"no sequences match the filters {filters} ('all' lifts one)")
    return sequences


def _pose_array(value: Any, path: str | Path, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float32)  # float32 keeps a whole test set in memory
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
    """Re-key file predictions by `PoseSequence.key`; a "Split/Subject" file key wins over "Subject"."""
    matched: dict[PredictionKey, np.ndarray] = {}
    for seq in sequences:
        candidates = [(seq.subject, seq.name, seq.camera_index)]
        if seq.split:
            candidates.insert(0, (f"{seq.split}/{seq.subject}", seq.name, seq.camera_index))
        for key in candidates:
            if key in predictions:
                matched[seq.key] = predictions[key]
                break
    return matched


def score(sequences: Sequence[PoseSequence], predictions: Mapping[PredictionKey, np.ndarray],
          protocol: str, source: str | Path) -> EvaluationReport:
    """Evaluate and name `source` in any error about the predictions."""
    return evaluate_sequences(sequences, predictions, protocol=protocol, source=source)


def run_checkpoint(args: argparse.Namespace, sequences: list[PoseSequence]) -> dict[str, EvaluationReport]:
    """Score a model bundle: its hypotheses (mode, N, steps, aggregation from the options) and its
    context encoder alone, on the same frames and evidence."""
    from dataclasses import replace

    from diffpose3d.checkpoint import load_bundle
    from diffpose3d.data.gmm_files import attach_gmm
    from diffpose3d.evaluate_model import score_model
    from diffpose3d.train import resolve_device

    model, _ = load_bundle(args.checkpoint or None, device=resolve_device(args.device))
    if args.evidence == "gmm_file":
        if not args.gmm_file:
            raise InputFileError("--gmm-file", "--evidence gmm_file needs --gmm-file FILE")
        sequences = attach_gmm(sequences, args.gmm_file)
    evidence = replace(model.config.evidence, source=args.evidence)  # synthetic keeps the model's noise settings
    inference = replace(model.config.inference, **inference_overrides(args))
    return score_model(model, sequences, evidence, inference, args.dataset)


def run(args: argparse.Namespace) -> int:
    sequences = load_sequences(args)
    if args.predictions is None:
        reports = run_checkpoint(args, sequences)
        for name, report in reports.items():
            print(f"== {name}\n{report.format_table()}\n")
        result = {name: report.to_dict() for name, report in reports.items()}
    else:
        predictions = match_predictions(predictions_from_file(args.predictions), sequences)
        report = score(sequences, predictions, args.dataset, args.predictions)
        print(report.format_table())
        result = report.to_dict()
    result["inputs"] = {
        "predictions": str(Path(args.predictions).resolve()) if args.predictions else None,
        "checkpoint": None if args.predictions else (args.checkpoint or "bundled"),
        "dataset": args.dataset,
        "data_3d": str(Path(args.data_3d).resolve()),
        "data_2d": str(Path(args.data_2d).resolve()) if args.data_2d else None,
        "filters": dataset_filters(args),
    }
    save_json_atomic(args.out, result)
    print(f"\nreport written to {args.out}")
    return 0
