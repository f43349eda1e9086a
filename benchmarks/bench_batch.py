"""`diffpose3d batch` at 1 and 2 workers beside a plain loop of `predict` calls, on the same videos,
in one run: videos/min, frames/s, and peak memory per worker.

The videos are made from scikit-image's astronaut photograph, moving (as `bench_predict_video.py`).
The loop is what a Python user would write: one process, the model loaded once, `predict_path` per
video (a detector per video, as `predict` makes). Each configuration runs in a fresh process, and
each gets its own output folder. "whole command" is the wall clock of the process (imports, Ray's
start, the workers' model loads included); "inputs" is the time spent on the inputs themselves
(the loop's loop; for batch, the busiest worker's sum of per-input seconds).

    python benchmarks/bench_batch.py [--videos 6] [--frames 24] [--checkpoint NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LOOP = """
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from diffpose3d.inference.api import DiffPose
from diffpose3d.inference.predict import predict_path
videos, out, checkpoint = sorted(Path(sys.argv[1]).iterdir()), Path(sys.argv[2]), sys.argv[3] or None
model = DiffPose.load(checkpoint)
t1 = time.perf_counter()
frames = 0
for video in videos:
    frames += predict_path(model, video, out, progress=False)[0].frames
t2 = time.perf_counter()
print(json.dumps({"frames": frames, "inputs_s": t2 - t1, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_videos(folder: Path, count: int, frames: int) -> None:
    from skimage import data

    from diffpose3d.io.video import VideoWriter

    folder.mkdir(parents=True)
    photo = data.astronaut()[:480, :480]
    for v in range(count):
        with VideoWriter(folder / f"clip{v:02d}.mp4", fps=30) as writer:
            for t in range(frames):
                frame = np.zeros((480, 640, 3), np.uint8)
                shift = int(80 + 60 * np.sin((t + 7 * v) / 9))
                frame[:, shift : shift + 480] = photo
                writer.write(frame)


def run_loop(videos: Path, out: Path, checkpoint: str) -> dict:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", LOOP, str(videos), str(out), checkpoint], check=True,
                          capture_output=True, text=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_s": time.perf_counter() - t0, "frames": figures["frames"], "inputs_s": figures["inputs_s"],
            "peak_mb": [figures["peak_mb"]]}


def run_batch(videos: Path, out: Path, checkpoint: str, workers: int) -> dict | None:
    cmd = [sys.executable, "-m", "diffpose3d", "batch", str(videos), "--out", str(out), "--workers", str(workers),
           "--quiet"] + (["--checkpoint", checkpoint] if checkpoint else [])
    t0 = time.perf_counter()
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:  # e.g. Ray could not start on a starved machine: say so, go on
        print(f"batch --workers {workers}: exit {done.returncode}: {done.stderr.strip()[-400:]}")
        return None
    records = json.loads((out / "batch-summary.json").read_text())["inputs"]
    if any(r["status"] != "ok" for r in records):
        raise SystemExit(f"batch failed on some inputs: {[r['error'] for r in records if r['error']]}")
    busy: dict[str, float] = {}
    peak: dict[str, float] = {}
    for r in records:
        busy[r["worker"]] = busy.get(r["worker"], 0.0) + r["seconds"]
        peak[r["worker"]] = max(peak.get(r["worker"], 0.0), r["peak_memory_mb"])
    return {"wall_s": wall, "frames": sum(r["frames"] for r in records), "inputs_s": max(busy.values()),
            "peak_mb": sorted(peak.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--frames", type=int, default=24, help="frames per video (640x480)")
    ap.add_argument("--checkpoint", default="", help="default: the bundled default model")
    args = ap.parse_args()
    print(f"\n== batch vs a loop of predict: {args.videos} videos of {args.frames} frames (640x480), "
          f"{os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        videos = Path(tmp) / "videos"
        make_videos(videos, args.videos, args.frames)
        rows = [("loop of predict (1 process)", run_loop(videos, Path(tmp) / "loop", args.checkpoint))]
        for workers in (1, 2):
            rows.append((f"batch --workers {workers}",
                         run_batch(videos, Path(tmp) / f"batch{workers}", args.checkpoint, workers)))
    print("| run | whole command s | videos/min | frames/s | inputs s | videos/min (inputs) | frames/s (inputs) "
          "| peak MB per worker |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, r in rows:
        if r is None:
            print(f"| {name} | did not run | | | | | | |")
            continue
        n, f = args.videos, r["frames"]
        print(f"| {name} | {r['wall_s']:.1f} | {60 * n / r['wall_s']:.1f} | {f / r['wall_s']:.1f} | {r['inputs_s']:.1f} "
              f"| {60 * n / r['inputs_s']:.1f} | {f / r['inputs_s']:.1f} | {', '.join(f'{m:.0f}' for m in r['peak_mb'])} |")


if __name__ == "__main__":
    main()
