"""`diffpose3d train --config configs/NAME.yaml [--set key=value ...] --out DIR`"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from diffpose3d.config import Config, load_config
from diffpose3d.errors import ConfigError, InputFileError, OutputFileError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config (see configs/)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set train.max_minutes=30 (repeatable)",
    )
    parser.add_argument("--out", required=True, help="output folder for the model bundle")
    parser.add_argument("--resume", action="store_true",
                        help="continue a killed run from OUT/checkpoints (same config), exactly where it stopped")
    parser.add_argument("--evaluate", action="store_true", help="afterwards, score the held-out test split")


def check_resumable(config: Config, out: Path) -> None:
    """`--resume` continues the run in `out` only with the config saved there (`OUT/config.yaml`):
    refused in one line when that file is missing (with checkpoints left), unreadable or different."""
    saved_path = out / "config.yaml"
    if not saved_path.exists():
        if (out / "checkpoints").exists():
            raise InputFileError(saved_path, "missing, so the checkpoints beside it cannot be matched to this config "
                                             "(restore it, or start over without --resume)")
        return  # the run was killed before it wrote anything: it starts
    try:
        saved = load_config(saved_path)
    except ConfigError as exc:
        raise InputFileError(saved_path, str(exc)) from None
    if saved != config:
        raise ConfigError(f"--resume: the config differs from the one saved in {saved_path}")


def run(args: argparse.Namespace) -> int:
    from diffpose3d.training.run import train

    config = load_config(args.config, args.overrides)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise OutputFileError(out, "is a file: --out names the folder of the run")
    if args.resume:
        check_resumable(config, out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFileError(out, f"cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK):
        raise OutputFileError(out, "the folder is not writable")
    info = train(config, args.out, resume=args.resume)
    if info.get("rank", 0) != 0:
        return 0
    print(f"stage 1 (context encoder): best validation MPJPE {info['stage1']['best_val_mpjpe_mm']:.1f} mm "
          f"(epoch {info['stage1']['best_epoch']})")
    print(f"stage 2 (denoiser g):      best validation MPJPE {info['stage2']['best_val_mpjpe_mm']:.1f} mm "
          f"(epoch {info['stage2']['best_epoch']})")
    print(f"model bundle written to {Path(args.out).resolve()}")
    if args.evaluate:
        from diffpose3d.evaluation.scoring import evaluate_checkpoint
        from diffpose3d.io.atomic import save_json_atomic

        reports = evaluate_checkpoint(args.out, split="test")
        for name, report in reports.items():
            print(f"\n== {name} (held-out test split)\n{report.format_table()}")
        save_json_atomic(Path(args.out) / "test_report.json", {k: r.to_dict() for k, r in reports.items()})
    return 0
