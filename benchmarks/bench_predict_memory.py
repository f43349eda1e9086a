"""Peak memory of `diffpose3d predict` on a 1-minute and a 10-minute keypoints sequence (30 fps).

Each run is a separate process; its peak RSS comes from the operating system (getrusage). The
lifting runs in fixed-size batches and the JSON is streamed, so the two should differ by < 20 %.

    python benchmarks/bench_predict_memory.py [--checkpoint DIR]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_keypoints(frames: int, seed: int = 0) -> np.ndarray:
    """A walking-like COCO-17 figure in a 640x480 image, with detector-like jitter and dropouts."""
    rng = np.random.default_rng(seed)
    base = np.array([[320, 100], [330, 90], [310, 90], [340, 95], [300, 95], [360, 150], [280, 150],
                     [375, 210], [265, 210], [380, 265], [260, 265], [345, 270], [295, 270],
                     [350, 350], [290, 350], [352, 430], [288, 430]], np.float32)
    t = np.arange(frames)[:, None]
    swing = np.zeros((frames, 17, 2), np.float32)
    swing[:, [13, 15], 0] = 15 * np.sin(t / 10)
    swing[:, [14, 16], 0] = -15 * np.sin(t / 10)
    kp = base[None] + swing + rng.normal(0, 2, size=(frames, 17, 2))
    conf = rng.uniform(0.6, 1.0, size=(frames, 17, 1))
    conf[rng.random((frames, 17, 1)) < 0.02] = 0.0
    return np.concatenate([kp, conf], -1).astype(np.float32)


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """Run `cmd` in a child and return (peak RSS MB of the children so far, seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024.0, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        # ru_maxrss of RUSAGE_CHILDREN is the maximum over all children: run the short one first
        for minutes in (1, 10):
            frames = minutes * 60 * 30
            path = Path(tmp) / f"walk_{minutes}min.npz"
            np.savez(path, keypoints=synthetic_keypoints(frames), image_size=np.array([640, 480]), layout=np.array("coco17"))
            cmd = [sys.executable, "-m", "diffpose3d", "predict", str(path), "--out", str(Path(tmp) / "out"), "--quiet"]
            if args.checkpoint:
                cmd += ["--checkpoint", args.checkpoint]
            rss, sec = peak_rss_mb(cmd)
            results[minutes] = rss
            print(f"{minutes:>2} min ({frames} frames): peak RSS {rss:.0f} MB, {sec:.1f} s, "
                  f"{frames / sec:.0f} frames/s end to end")
    print(f"10-min / 1-min peak RSS: {results[10] / results[1]:.3f} (target < 1.20)")


if __name__ == "__main__":
    main()
