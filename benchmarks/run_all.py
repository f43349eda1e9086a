"""Run every benchmark in turn and print their figures (each prints its own ratios and threads).

    python benchmarks/run_all.py [--quick]

Training benchmarks (bench_diffpose_vs_lifter.py) take tens of minutes and are not included; run
them on their own.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    args = ap.parse_args()
    runs = [
        ["bench_em.py"] + (["--fits", "1000", "--sklearn-fits", "20"] if args.quick else []),
        ["bench_sampler.py"] + (["--frames", "256"] if args.quick else []),
        ["bench_predict_video.py"] + (["--frames", "20"] if args.quick else []),
        ["bench_predict_memory.py"],
        ["bench_predict_speed.py"] + (["--frames", "500", "--authors-frames", "128"] if args.quick else []),
        ["bench_train.py"] + (["--steps", "5"] if args.quick else []),
        ["bench_startup.py"],
    ]
    for run in runs:
        print(f"\n######## {' '.join(run)}", flush=True)
        subprocess.run([sys.executable, str(HERE / run[0]), *run[1:]], cwd=HERE, check=False)


if __name__ == "__main__":
    main()
