"""End-to-end `predict` on a 2,000-frame keypoints file against the authors' frame sampler
(N = 5 hypotheses, 5 DDIM steps), measured side by side in one run.

    python benchmarks/bench_predict_speed.py [--frames 2000] [--precisions auto,fp32] [--baseline-src DIR]

- `predict`: the whole command in a child process (start-up, reading the file, lifting, the npz and
  JSON written), once per `--precisions` entry; frames/s.
- `--baseline-src DIR`: also the same command from another checkout's `src` (e.g. main before a
  change), so before and after are timed on the same machine in the same minutes.
- the authors' sampler (`authors_sampler.py`: their lifter once per frame, then N x 5 passes of their
  g, float32, batches of 1,024 frames) in this process with the same threads, on `--authors-frames`
  frames; reported in frames/s and in poses/s (N hypotheses per frame, as the issue counts them).
The criterion: `predict` frames/s >= 5 x the authors' poses/s. The machine's load changes from
minute to minute: the runs alternate, and only ratios of one run mean anything.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `predict` runs (cli.py), before torch loads

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from authors_sampler import AuthorsFrameSampler
from bench_predict_memory import synthetic_keypoints
from common import header

HYPOTHESES, STEPS = 5, 5


def time_predict(keypoints: Path, out: Path, src: Path, precision: str | None) -> float:
    """Seconds of one `diffpose3d predict` child (the whole command)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-m", "diffpose3d", "predict", str(keypoints), "--out", str(out), "--quiet"]
    if precision:
        cmd += ["--precision", precision]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def time_authors(frames: int) -> float:
    """Frames/s of the authors' sampler on `frames` frames (after a warm-up batch)."""
    sampler = AuthorsFrameSampler(hypotheses=HYPOTHESES, steps=STEPS)
    uv = torch.rand(frames, 17, 2, generator=torch.Generator().manual_seed(0)) - 0.5
    sampler(uv[:64])
    t0 = time.perf_counter()
    sampler(uv)
    return frames / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2000, help="frames of the keypoints file predict lifts")
    ap.add_argument("--authors-frames", type=int, default=512, help="frames the authors' sampler lifts")
    ap.add_argument("--precisions", default="auto,fp32", help="predict --precision values to time")
    ap.add_argument("--baseline-src", default=None, help="also time predict from this src folder (before a change)")
    args = ap.parse_args()
    here = Path(__file__).resolve().parents[1] / "src"
    runs: list[tuple[str, Path, str | None]] = [(f"predict --precision {p}", here, p) for p in args.precisions.split(",")]
    if args.baseline_src:
        runs.append((f"predict from {args.baseline_src}", Path(args.baseline_src).resolve(), None))
    header(f"predict on {args.frames} frames vs the authors' frame sampler (N = {HYPOTHESES}, {STEPS} steps)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "walk.npz"
        np.savez(path, keypoints=synthetic_keypoints(args.frames), image_size=np.array([640, 480]),
                 layout=np.array("coco17"))
        authors = [time_authors(args.authors_frames)]
        rates = {}
        for i, (name, src, precision) in enumerate(runs):
            rates[name] = args.frames / time_predict(path, Path(tmp) / f"out{i}", src, precision)
            authors.append(time_authors(args.authors_frames))  # between the runs: the load drifts
    a_frames = float(np.median(authors))
    a_poses = a_frames * HYPOTHESES
    print(f"authors' sampler: {a_frames:.1f} frames/s = {a_poses:.1f} poses/s "
          f"(runs: {', '.join(f'{a:.1f}' for a in authors)} frames/s)")
    print(f"{'':45s} {'frames/s':>9} {'/ authors poses/s':>18} {'/ authors frames/s':>19}")
    for name, rate in rates.items():
        print(f"{name:45s} {rate:9.1f} {rate / a_poses:17.2f}x {rate / a_frames:18.1f}x")
    print("criterion: predict frames/s >= 5 x the authors' poses/s")


if __name__ == "__main__":
    main()
