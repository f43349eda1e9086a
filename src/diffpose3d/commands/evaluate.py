"""`diffpose3d evaluate --predictions FILE --dataset NAME --data-3d FILE [filters] --out report.json`

Scores a predictions file (layout in docs/PREDICTIONS.md) against a dataset split with the
published protocol of that dataset, prints the tables and writes the JSON report atomically.
Without filters the protocol's test set is used (``data.protocol_filters(dataset, "test")``:
Human3.6M S9 and S11; HumanEva-I Validate, Walk/Jog/Box; 3DHP TS1-TS6). ``all`` lifts a filter.
Predictions files are read by ``evaluation.predictions``; a checkpoint is scored by
``evaluation.scoring.evaluate_checkpoint``; both feed ``evaluation.tables.evaluate_sequences``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from diffpose3d.commands.predict import add_inference_arguments, inference_overrides
from diffpose3d.data.base import PoseSequence
from diffpose3d.data.protocols import BENCHMARKS, protocol_filters
from diffpose3d.errors import ConfigError, InputFileError

FILTER_OPTIONS = ("subjects", "split", "actions", "cameras")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--predictions", metavar="FILE",
                      help="npz with positions_3d[subject][action] -> list per camera (docs/PREDICTIONS.md)")
    what.add_argument("--checkpoint", nargs="?", const="", metavar="CKPT",
                      help="run a model bundle on the split instead: a folder or a bundled model's name "
                           "(no value: h36m_frame, the default)")
    parser.add_argument("--dataset", required=True, choices=BENCHMARKS, help="dataset and protocol")
    parser.add_argument("--data-3d", required=True, metavar="FILE",
                        help="the dataset's 3D file (3dhp: data_test_3dhp.npz or data_train_3dhp.npz)")
    parser.add_argument("--data-2d", metavar="FILE", help="the dataset's 2D file (h36m, humaneva; optional)")
    parser.add_argument("--subjects", help="comma-separated subjects (3dhp: sequences), or 'all' "
                        "(default: the protocol's test set, e.g. h36m S9,S11)")
    parser.add_argument("--split", help="humaneva: Train or Validate, or 'all' (default: Validate)")
    parser.add_argument("--actions", help="comma-separated actions, or 'all' (humaneva default: Walk,Jog,Box)")
    parser.add_argument("--cameras", help="comma-separated camera indices or ids (default: all)")
    add_block_argument(parser)
    parser.add_argument("--out", required=True, metavar="FILE", help="JSON report to write")
    parser.add_argument("--evidence", choices=["keypoints", "synthetic", "gmm_file"], default="keypoints",
                        help="with --checkpoint: the 2D evidence of H_K: the 2D file's keypoints (default), "
                             "synthetic detector-like evidence made from them, or --gmm-file")
    parser.add_argument("--gmm-file", metavar="FILE", help="an authors'-layout *_gmm.npz for --evidence gmm_file")
    parser.add_argument("--stride", type=int, default=1,
                        help="score every n-th frame of each sequence (default 1: all); a video model still sees "
                             "consecutive frames")
    parser.add_argument("--offset", type=int, default=0,
                        help="with --stride: starting at this frame (e.g. frames neither validation nor calibrate used)")
    parser.add_argument("--calibration-samples", type=int, default=200,
                        help="with --checkpoint: hypotheses per pose for the quantile-calibration protocol (ECE; "
                             "0: skip it); its reliability diagram is written beside the report (default 200)")
    parser.add_argument("--calibration-frames", type=int, default=1000,
                        help="evenly spaced frames the calibration protocol runs on (default 1000)")
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
    """Reader filters: the protocol's test set (`data.protocols.protocol_filters`), overridden by the options."""
    filters = protocol_filters(args.dataset, "test")
    for option in FILTER_OPTIONS:
        value = getattr(args, option, None)
        if value is None:
            continue
        key = option
        if option == "split" and args.dataset != "humaneva":
            raise ConfigError(f"--split applies to humaneva only ({args.dataset} has no Train/Validate split; "
                              "filter with --subjects)")
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


def sequences_to_score(args: argparse.Namespace) -> list[PoseSequence]:
    """The dataset sequences to score, with ground truth, after the filters."""
    from diffpose3d.data.loading import load_dataset

    filters = dataset_filters(args)
    try:
        sequences = load_dataset(args.dataset, args.data_3d, args.data_2d, **filters)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not sequences:
        raise InputFileError(args.data_3d, f"no sequences match the filters {filters} ('all' lifts one)")
    block = getattr(args, "block", None)
    if block:
        from diffpose3d.bundle import bundle_config
        from diffpose3d.data.splits import heldout_blocks

        if getattr(args, "checkpoint", None) is None:
            raise ConfigError("--block needs --checkpoint: the blocks are cut as that bundle's training cut them")
        _, config = bundle_config(args.checkpoint or None)
        sequences = heldout_blocks(sequences, config.data, block)
        if not sequences:
            raise InputFileError(args.data_3d, f"no sequence is long enough to hold a {block} block")
    return sequences


def cut_prediction(value: Any, key: tuple, cut: slice, sequences: list[PoseSequence]) -> Any:
    """A file's prediction for the sequence `key`, cut as the sequence is when it has the sequence's
    whole length (a file of the strided frames alone is taken as it is)."""
    length = next(len(s) for s in sequences if s.key == key)
    return value[cut] if len(value) == length else value


def add_block_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--block", choices=["train", "val", "test"],
                        help="only this block of every sequence, cut as the bundle's own training cut its takes "
                             "(data.holdout_fractions): 'val' validated the bundle, 'test' was never seen")


def run(args: argparse.Namespace) -> int:
    from diffpose3d.commands.predict import check_steps
    from diffpose3d.io.atomic import check_output_file, save_json_atomic

    check_output_file(args.out)  # before any work: a folder, device, FIFO or link is refused
    if args.predictions is None:
        check_output_file(Path(args.out).with_suffix(".reliability.png"))
        check_steps(args)
    dataset_filters(args)

    for flag, value, low in (("--stride", args.stride, 1), ("--offset", args.offset, 0),
                             ("--calibration-samples", args.calibration_samples, 0),
                             ("--calibration-frames", args.calibration_frames, 1)):
        if value < low:
            raise ConfigError(f"{flag} must be >= {low}, got {value}")
    if args.calibration_samples == 1:
        raise ConfigError("--calibration-samples must be 0 (skip) or >= 2, got 1")
    sequences = sequences_to_score(args)
    cut = slice(args.offset, None, args.stride)
    if args.predictions is None:
        from diffpose3d.data.gmm_files import attach_gmm
        from diffpose3d.evaluation.scoring import evaluate_checkpoint

        if args.evidence == "gmm_file":
            if not args.gmm_file:
                raise InputFileError("--gmm-file", "--evidence gmm_file needs --gmm-file FILE")
            sequences = attach_gmm(sequences, args.gmm_file)
        reports = evaluate_checkpoint(
            args.checkpoint or None, sequences=sequences, evidence_source=args.evidence,
            inference=inference_overrides(args), protocol=args.dataset, device=args.device,
            calibration_samples=args.calibration_samples, calibration_frames=args.calibration_frames,
            diagram=Path(args.out).with_suffix(".reliability.png"), cut=cut,
        )
        for name, report in reports.items():
            print(f"== {name}\n{report.format_table()}\n")
        result: dict[str, Any] = {name: report.to_dict() for name, report in reports.items()}
    else:
        from diffpose3d.evaluation.predictions import match_predictions, predictions_from_file
        from diffpose3d.evaluation.tables import evaluate_sequences

        predictions = match_predictions(predictions_from_file(args.predictions), sequences)
        predictions = {key: cut_prediction(value, key, cut, sequences) for key, value in predictions.items()}
        sequences = [s.slice(cut.start, cut.stop, cut.step) for s in sequences]
        report = evaluate_sequences(sequences, predictions, protocol=args.dataset, source=args.predictions)
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
