"""`diffpose3d train --config configs/NAME.yaml [--set key=value ...] --out DIR`"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffpose3d.config import load_config
from diffpose3d.errors import ConfigError


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


def run(args: argparse.Namespace) -> int:
    from diffpose3d.training.run import train

    config = load_config(args.config, args.overrides)
    if args.resume and (Path(args.out) / "config.yaml").is_file():
        saved = load_config(Path(args.out) / "config.yaml")
        if saved != config:
            raise ConfigError(f"--resume: the config differs from the one saved in {args.out}/config.yaml")
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
