"""Validation MPJPE against core-hours: the learning curve of one or more training runs.

    python benchmarks/learning_curve.py runs/h36m_frame [runs/other ...] [--png curve.png]

Reads each run's `train_log.jsonl` (one record per validation) and prints, per stage, the
validation MPJPE after each checkpointed stretch of training against the CPU time the run had
used (`cpu_minutes`: every thread of the process, resumed processes included; a log written before
that field existed falls back to wall-clock `minutes`, marked "wall"). With `--png` it also draws
the curves, one line per run and stage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_log(run: Path) -> list[dict]:
    lines = (run / "train_log.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--png", type=Path)
    args = ap.parse_args()
    curves = {}
    for run in args.runs:
        records = read_log(run)
        clock = "cpu_minutes" if records and all("cpu_minutes" in r for r in records) else "minutes"
        print(f"\n== {run}  (x: {'CPU' if clock == 'cpu_minutes' else 'wall'} hours)")
        print(f"{'stage':<16}{'epoch':>6}{'hours':>8}{'val MPJPE mm':>14}")
        for r in records:
            print(f"{r['stage']:<16}{r['epoch']:>6}{r[clock] / 60:>8.2f}{r['val_mpjpe_mm']:>14.1f}")
            curves.setdefault((run.name, r["stage"]), []).append((r[clock] / 60, r["val_mpjpe_mm"]))
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for (name, stage), points in curves.items():
            ax.plot(*zip(*points), marker=".", label=f"{name}: {stage}")
        ax.set_xlabel("core-hours")
        ax.set_ylabel("validation MPJPE (mm)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.png, dpi=120)
        print(f"\ncurve written to {args.png}")


if __name__ == "__main__":
    main()
