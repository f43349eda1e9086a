"""Start-up of the command line: `diffpose3d --help`, `predict` on a 1-frame keypoints file and on
one photo, each beside `python -c "import torch"` measured in the same run (fresh processes,
several runs each: min and median of the wall time, and the CPU time of the median run).

    python benchmarks/bench_startup.py [--repeats 5] [--checkpoint DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import header


def timed(cmd: list[str], repeats: int) -> tuple[float, float, float]:
    """(min wall, median wall, CPU seconds of one run, user + system) of `cmd` in fresh processes."""
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return min(walls), statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--checkpoint", default=None)
    args = ap.parse_args()
    header(f"start-up of the command line, {args.repeats} fresh processes each")
    tool = [sys.executable, "-m", "diffpose3d"]
    extra = ["--checkpoint", args.checkpoint] if args.checkpoint else []
    with tempfile.TemporaryDirectory() as tmp:
        kp = np.random.default_rng(0).uniform(100, 400, (1, 17, 3))
        kp[..., 2] = 0.9
        np.savez(Path(tmp) / "one.npz", keypoints=kp, image_size=np.array([640, 480]), layout=np.array("coco17"))
        cases = [
            ('python -c "import torch"', [sys.executable, "-c", "import torch"]),
            ("diffpose3d --help", [*tool, "--help"]),
            ("predict, 1-frame keypoints file",
             [*tool, "predict", str(Path(tmp) / "one.npz"), "--out", str(Path(tmp) / "a"), *extra]),
        ]
        if importlib.util.find_spec("mediapipe") is not None:
            from skimage import data

            from diffpose3d.viz.render import save_image

            save_image(Path(tmp) / "photo.png", data.astronaut())
            cases.append(("predict, 1 photo (detector + heatmaps)",
                          [*tool, "predict", str(Path(tmp) / "photo.png"), "--out", str(Path(tmp) / "b"), *extra]))
        results = {name: timed(cmd, args.repeats) for name, cmd in cases}
    torch_median = results['python -c "import torch"'][1]
    print(f"{'what':42s} {'min s':>7s} {'median s':>9s} {'CPU s':>7s} {'median - import torch':>22s}")
    for name, (low, median, cpu) in results.items():
        print(f"{name:42s} {low:7.2f} {median:9.2f} {cpu:7.2f} {median - torch_median:22.2f}")


if __name__ == "__main__":
    main()
