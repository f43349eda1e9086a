"""Video DiffPose vs frame DiffPose vs the video context encoder alone, under the same CPU budget.

All three train on the shared HumanEva-I Train data (Walk, Jog, Box of S1-S3) with the same
contiguous held-out blocks as validation and test, for `--minutes` each:
(a) video DiffPose (`configs/humaneva_video.yaml`: stage 1 + stage 2 in the budget);
(b) frame DiffPose (`configs/humaneva_frame.yaml`, same budget);
(c) the video context encoder alone (stage 1 for the whole budget, deterministic).
For reference it also prints (c) with its whole pose low-passed by a Gaussian of REFERENCE_SIGMA
frames: MPJVE is dominated by the jitter that per-frame 2D noise leaves, which any temporal filter
removes (a's g learns to remove it from the anchor's motion channels, `model.denoiser.motion_radius`).
Then prints, on the held-out test blocks (every frame, 60 Hz), P-MPJPE per action x subject
(HumanEva protocol), MPJPE and MPJVE for each, and the ratios the issue asks about.

    python benchmarks/bench_video_vs_frame.py --minutes 18 --frame-set train.encoder_share=0.8 --out runs/bench_video [--jobs 2]

`--jobs 2` trains two contenders at a time, one core each (each config uses one thread).
`--reuse` keeps bundles already in --out (e.g. a frame DiffPose from bench_diffpose_vs_lifter.py
trained with the same budget: copy its `diffpose` folder to `<out>/frame_diffpose`).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

import torch
from bench_diffpose_vs_lifter import SHARED, budget_overrides, train_lifter_only
from scipy.ndimage import gaussian_filter1d

from diffpose3d.bundle import load_bundle
from diffpose3d.config import load_config
from diffpose3d.data.frames import build_frames
from diffpose3d.data.splits import training_splits
from diffpose3d.evaluation.scoring import TEST_SEED_OFFSET, score_model
from diffpose3d.evaluation.tables import evaluate_sequences
from diffpose3d.inference.lifting import predict_frames
from diffpose3d.training.run import train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
REFERENCE_SIGMA = 2.0  # frames at 60 Hz


def smoothed_encoder(model, test, config, sigma: float = REFERENCE_SIGMA):
    """For reference, not a contender: the encoder alone with its poses low-passed by a Gaussian."""
    frames = build_frames(test, model.skeleton, config.evidence, seed_offset=TEST_SEED_OFFSET)
    lifter = frames.split_by_sequence(predict_frames(model, frames, replace(config.inference, hypotheses=1)).lifter)
    poses = {k: gaussian_filter1d(v, sigma, axis=0, mode="nearest") if len(v) > 1 and sigma > 0 else v for k, v in lifter.items()}
    return evaluate_sequences(test, poses, protocol="humaneva")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=18.0, help="the CPU budget of each contender")
    ap.add_argument("--data", default=str(SHARED), help="folder with the HumanEva-I npz files")
    ap.add_argument("--out", default="runs/bench_video")
    ap.add_argument("--video-set", action="append", default=[], help="override for the video config")
    ap.add_argument("--frame-set", action="append", default=[], help="override for the frame config")
    ap.add_argument("--reuse", action="store_true", help="reuse bundles already in --out")
    ap.add_argument("--jobs", type=int, default=1, help="contenders trained at once (one core each)")
    args = ap.parse_args()
    out = Path(args.out)
    common = budget_overrides(args.data, args.minutes) + ["train.progress=false"]
    video = load_config(CONFIGS / "humaneva_video.yaml", common + args.video_set)
    frame = load_config(CONFIGS / "humaneva_frame.yaml", common + args.frame_set)
    print(f"torch {torch.__version__}, budget {args.minutes} min each, {args.jobs} at a time")

    dirs = {"video": out / "video_diffpose", "frame": out / "frame_diffpose", "encoder": out / "video_encoder_only"}
    jobs = {"video": (train, (video, dirs["video"])), "frame": (train, (frame, dirs["frame"])),
            "encoder": (train_lifter_only, (video, dirs["encoder"], args.minutes))}
    todo = {k: v for k, v in jobs.items() if not (args.reuse and (dirs[k] / "model.safetensors").is_file())}
    t0 = time.monotonic()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=get_context("spawn")) as pool:
        for name, future in [(k, pool.submit(fn, *fn_args)) for k, (fn, fn_args) in todo.items()]:
            future.result()
            print(f"trained {name} ({(time.monotonic() - t0) / 60:.1f} min since start)", flush=True)

    test = training_splits(video)["test"]
    assert [s.key for s in test] == [s.key for s in training_splits(frame)["test"]], "test blocks differ"
    video_model, _ = load_bundle(dirs["video"])
    frame_model, _ = load_bundle(dirs["frame"])
    encoder_model, _ = load_bundle(dirs["encoder"])
    v = score_model(video_model, test, video.evidence, video.inference, "humaneva")
    f = score_model(frame_model, test, frame.evidence, frame.inference, "humaneva")
    e = score_model(encoder_model, test, video.evidence, replace(video.inference, hypotheses=1), "humaneva")["lifter"]
    e_smooth = smoothed_encoder(encoder_model, test, video)
    vi, fi = video.inference, frame.inference
    rows = [(f"(a) video DiffPose, N={vi.hypotheses}, {vi.steps} steps, mean, coherent", v["diffpose"]),
            ("    its own stage-1 video encoder", v["lifter"]),
            (f"(b) frame DiffPose, N={fi.hypotheses}, {fi.steps} steps, mean", f["diffpose"]),
            ("(c) video encoder alone (full budget)", e),
            (f"    reference: (c) with its whole pose low-passed (sigma {REFERENCE_SIGMA:.1f} frames)", e_smooth)]
    results = {}
    for name, report in rows:
        print(f"\n===== {name}\n{report.format_table()}")
        results[name] = report.to_dict()
    print("\nsummary (mean of action x subject cells; MPJVE in mm per frame step at 60 Hz):")
    for name, report in rows:
        s = report.summary
        print(f"  {name:58s} P-MPJPE {s['p_mpjpe']:6.1f}  MPJPE {s['mpjpe']:6.1f}  MPJVE {s['mpjve']:5.2f}")
    a = v["diffpose"].summary
    for label, other in (("frame DiffPose", f["diffpose"].summary), ("video encoder alone", e.summary)):
        print(f"  video DiffPose / {label}: P-MPJPE {a['p_mpjpe'] / other['p_mpjpe']:.3f}, "
              f"MPJVE {a['mpjve'] / other['mpjve']:.3f}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
