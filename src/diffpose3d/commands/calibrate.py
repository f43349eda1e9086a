"""`diffpose3d calibrate --checkpoint DIR --dataset NAME --data-3d FILE [filters]`: fit a bundle's
split-conformal spread scaling on a calibration split and store it in the bundle.

The split must be neither training nor test data (e.g. a held-out training subject's frames that
validation did not use: `--subjects S8 --stride 10 --offset 5`). What the scaling guarantees, and
what it does not: `evaluation/calibration.py`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffpose3d.commands.evaluate import FILTER_OPTIONS, add_block_argument, sequences_to_score
from diffpose3d.commands.predict import device_name, int_in
from diffpose3d.data.protocols import BENCHMARKS
from diffpose3d.errors import ConfigError, InputFileError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="DIR", help="the bundle folder to calibrate (rewritten)")
    add_split_arguments(parser)
    parser.add_argument("--evidence", choices=["keypoints", "synthetic"], default="keypoints")
    parser.add_argument("--level", type=float, default=0.9, help="coverage level (default 0.9)")
    parser.add_argument("--radial-samples", type=int_in(0, 1000), default=0, metavar="N",
                        help="fit the hypotheses' radial shape after the scale from N hypotheses per frame (e.g. 50; "
                             "default 0: none; it acts on each joint alone, so check that hypotheses stay bodies)")
    parser.add_argument("--new-subjects", nargs="+", metavar="DIR",
                        help="after fitting on blocks of the training subjects, carry the calibration over to new "
                             "subjects: pairs DEV_BLOCKS DEV_SUBJECT, each a development run of the same recipe "
                             "calibrated on its blocks and on a subject it never saw (the per-joint ratio of their "
                             "scales, geometric mean over the pairs; the first pair's radial shape)")
    parser.add_argument("--radial-frames", type=int_in(1, 1_000_000), default=2000, metavar="F",
                        help="at most this many calibration frames for it, evenly spread (default 2000)")
    parser.add_argument("--device", type=device_name, default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")


def add_split_arguments(parser: argparse.ArgumentParser) -> None:
    """The frames a bundle is fitted on (here and in `fit-miss`): a dataset's files, `evaluate`'s
    filters and blocks, every n-th frame from an offset."""
    parser.add_argument("--dataset", required=True, choices=BENCHMARKS)
    parser.add_argument("--data-3d", required=True, metavar="FILE")
    parser.add_argument("--data-2d", metavar="FILE", help="the 2D file (default: the 3D's projection)")
    for option in FILTER_OPTIONS:
        parser.add_argument(f"--{option}", help="reader filter, as in `evaluate` ('all' lifts it)")
    add_block_argument(parser)
    parser.add_argument("--stride", type=int, default=10,
                        help="every n-th frame (default 10; a video model still sees consecutive frames)")
    parser.add_argument("--offset", type=int, default=5, help="starting at this frame (default 5: not validation's)")


def split_cut(args: argparse.Namespace) -> slice:
    """The frames of each sequence `--stride` and `--offset` ask for (checked)."""
    if args.stride < 1 or args.offset < 0:
        raise ConfigError(f"--stride must be >= 1 and --offset >= 0, got {args.stride}, {args.offset}")
    return slice(args.offset, None, args.stride)


def check_level(level: float) -> None:
    """A level whose Gaussian ball has a usable radius (a level such as 1e-320 gives a radius of
    0, and the conformal scale, the quantile divided by it, would be infinite)."""
    import math

    from diffpose3d.evaluation.calibration import gaussian_ball_radius

    radius = gaussian_ball_radius(level)
    if not (math.isfinite(radius) and radius >= 1e-3):
        raise ConfigError(f"--level {level}: too close to 0 or 1 for a usable conformal scale (its ball's radius is "
                          f"{radius:.3g} standard deviations); choose e.g. 0.5 to 0.99")


def run(args: argparse.Namespace) -> int:
    from diffpose3d.evaluation.scoring import calibrate_checkpoint, shift_to_new_subjects

    if not 0.0 < args.level < 1.0:
        raise ConfigError(f"--level must be in (0, 1), got {args.level}")
    check_level(args.level)
    if args.radial_samples == 1:
        raise ConfigError("--radial-samples must be 0 (no radial shape) or at least 2, got 1")
    cut = split_cut(args)
    if not Path(args.checkpoint).is_dir():
        raise InputFileError(args.checkpoint, "not a bundle folder (calibrate rewrites a bundle you trained)")
    if args.new_subjects and len(args.new_subjects) % 2:
        raise ConfigError(f"--new-subjects takes pairs DEV_BLOCKS DEV_SUBJECT, got {len(args.new_subjects)} folders")
    for folder in args.new_subjects or ():
        if not Path(folder).is_dir():
            raise InputFileError(folder, "not a bundle folder (--new-subjects takes two calibrated bundles)")
    record = calibrate_checkpoint(args.checkpoint, sequences_to_score(args), evidence_source=args.evidence, level=args.level,
                                  device=args.device, radial_samples=args.radial_samples, radial_frames=args.radial_frames,
                                  cut=cut)
    print(f"conformal {record['level']:.0%} ball on {record['frames']} calibration frames: coverage "
          f"{record['coverage_before']:.3f} -> {record['coverage_after']:.3f}; per-joint scale "
          f"{min(record['scale'][1:]):.2f} .. {max(record['scale'][1:]):.2f}; written to {args.checkpoint}")
    if "radial" in record:
        r = record["radial"]
        print(f"radial shape on {r['frames']} frames x {r['samples']} hypotheses: "
              f"ECE {r['ece_before']:.3f} -> {r['ece_after']:.3f}")
    if args.new_subjects:
        pairs = list(zip(args.new_subjects[::2], args.new_subjects[1::2]))
        shift = shift_to_new_subjects(args.checkpoint, pairs)
        print(f"carried over to new subjects: per-joint scale x {min(shift['ratio'][1:]):.2f} .. "
              f"{max(shift['ratio'][1:]):.2f} (from {len(pairs)} development run(s))")
    return 0
