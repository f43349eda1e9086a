"""End-to-end `predict` on a video: frames/s of detection (with heatmaps) + lifting at N = 5, and
where the time goes. The clip is made from scikit-image's astronaut photograph, moving.

    python benchmarks/bench_predict_video.py [--frames 60] [--checkpoint DIR] [--no-heatmaps]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import header
from skimage import data

from diffpose3d.inference.api import DiffPose
from diffpose3d.inference.inputs import read_input
from diffpose3d.inference.predict import PredictSettings, detector_factory, predict_path
from diffpose3d.io.video import VideoWriter


def make_clip(path: Path, frames: int) -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    photo = data.astronaut()[:480, :480]
    with VideoWriter(path, fps=30) as writer:
        for t in range(frames):
            shift = int(60 + 50 * np.sin(t / 15))
            frame = image.copy()
            frame[:, shift : shift + 480] = photo
            writer.write(frame)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--hypotheses", type=int, default=5)
    ap.add_argument("--no-heatmaps", action="store_true")
    args = ap.parse_args()
    header(f"predict on a {args.frames}-frame 640x480 video, N = {args.hypotheses}")
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        make_clip(clip, args.frames)
        model = DiffPose.load(args.checkpoint, hypotheses=args.hypotheses)
        t0 = time.perf_counter()
        evidence = read_input(clip, detector_factory(not args.no_heatmaps, static=False), layout=model.layout, progress=False)
        t1 = time.perf_counter()
        model.from_evidence(evidence)
        t2 = time.perf_counter()
        predict_path(model, clip, Path(tmp) / "out", PredictSettings(use_heatmaps=not args.no_heatmaps), progress=False)
        t3 = time.perf_counter()
    n = args.frames
    print(f"detection {'+ heatmaps ' if not args.no_heatmaps else ''}: {n / (t1 - t0):7.1f} frames/s")
    print(f"lifting (N={args.hypotheses}, 5 steps): {n / (t2 - t1):7.1f} frames/s")
    print(f"end to end (predict, files written): {n / (t3 - t2):7.1f} frames/s")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak_mb:.0f} MB; torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
