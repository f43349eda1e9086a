"""Honest uncertainty off-domain (#28): the Human3.6M bundle in-domain (what it never trained on:
its held-out subject, or its takes' test blocks) beside off-domain (the shared HumanEva-I Train
split, a rig and people it never saw), on the joints both layouts share (`evaluation.joint_match`:
13), with ground-truth 2D and the synthetic detector.

Per signal (the hypotheses' spread, the lifter-g disagreement, the pose density, the combined
`out_of_domain` score) the Spearman correlation of the signal with the error per (frame, joint);
and for the reported spread without and with the out-of-domain widening (the bundle's
`out_of_domain.npz`, fitted by `fit-ood` on Human3.6M only): mean error, 50 / 90 % coverage of the
per-joint Gaussian ball, the quantile-calibration ECE, and Spearman(spread, error); with the bundle's
`inference.reprojection_widening`, also the per-joint reprojection miss (`uncertainty.reprojection`).

    nice -n 15 python benchmarks/bench_ood.py --stride 40
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from diffpose3d import metrics
from diffpose3d.bundle import load_bundle
from diffpose3d.data.frames import build_frames
from diffpose3d.data.h36m import load_h36m
from diffpose3d.data.humaneva import load_humaneva
from diffpose3d.data.splits import heldout_blocks
from diffpose3d.evaluation import calibration as cal
from diffpose3d.evaluation.joint_match import match_joints
from diffpose3d.inference.lifting import predict_frames

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def measure(model, sequences, source: str, samples: int) -> dict:
    """Rows 'before' (no widening) and 'after' (the bundle's widening), and the signals' Spearman."""
    match = match_joints(model.skeleton.name, sequences[0].skeleton)
    frames = build_frames(sequences, model.skeleton, replace(model.config.evidence, source=source), seed_offset=200_000)
    truth = frames.target_xyz.numpy()[:, match.data_index][:, 1:]
    keep = match.model_index[1:]
    out: dict = {"frames": len(frames), "joints": list(match.names)}
    inference = replace(model.config.inference, hypotheses=samples)
    for name, widen in (("before", False), ("after", True)):
        # 'before': no widening at all; 'after': the out-of-domain widening and the bundle's reprojection one
        pred = predict_frames(model, frames, replace(inference, widen_off_domain=widen,
                                                     reprojection_widening=inference.reprojection_widening if widen else 0.0))
        hyps = pred.hypotheses[:, :, keep]
        error = np.linalg.norm(pred.pose[:, keep] - truth, axis=-1)
        spread = pred.spread[:, keep]
        d2 = metrics.mahalanobis_sq(hyps, truth)
        cover = metrics.coverage_from_mahalanobis(d2.ravel(), (0.5, 0.9), hyps.shape[1])
        curve = np.median(cal.quantile_frequencies(hyps, truth), axis=1)
        out[name] = {"error_mm": 1000 * float(error.mean()), "coverage_50": cover[0.5], "coverage_90": cover[0.9],
                     "ece": cal.expected_calibration_error(curve), "spearman_spread": metrics.rank_correlation(spread, error),
                     "mean_spread_mm": 1000 * float(spread.mean())}
        if widen and pred.ood_signals is not None:
            per_frame = lambda v, joints=error.shape[1]: np.repeat(v[:, None], joints, 1)
            out["spearman_signals"] = {
                "disagreement": metrics.rank_correlation(
                    np.linalg.norm(pred.lifter[:, keep] - pred.pose[:, keep], axis=-1), error),
                "density": metrics.rank_correlation(per_frame(pred.ood_signals[:, 0]), error),
                "out_of_domain": metrics.rank_correlation(per_frame(pred.out_of_domain), error),
            }
            if pred.reprojection_miss is not None:
                out["spearman_signals"]["reprojection_miss"] = metrics.rank_correlation(
                    pred.reprojection_miss[:, keep], error)
            out["mean_out_of_domain"] = float(np.mean(pred.out_of_domain))
            out["mean_factor"] = float(np.mean(pred.widening)) if pred.widening is not None else 1.0
    return out


def in_domain(config, stride: int) -> tuple[list, str]:
    """Human3.6M frames the bundle never trained on: its held-out subjects (every 5 x `stride`-th frame
    from frame 3) or, for a bundle trained on every subject, its takes' test blocks (every
    `stride`-th frame from frame 2)."""
    d = config.data
    if d.val_subjects:
        seqs = load_h36m(SHARED / "h36m" / "data_3d_h36m.npz", None, subjects=list(d.val_subjects))
        return [s.slice(start=3, step=stride * 5) for s in seqs], f"H36M {'+'.join(d.val_subjects)} (in)"
    seqs = heldout_blocks(load_h36m(SHARED / "h36m" / "data_3d_h36m.npz", None, subjects=list(d.train_subjects)), d, "test")
    return [s.slice(start=2, step=stride) for s in seqs], "H36M test blocks (in)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="h36m_frame", help="a bundle name or folder")
    ap.add_argument("--stride", type=int, default=40, help="every n-th frame of each HumanEva-I sequence (S8: 5 x this)")
    ap.add_argument("--samples", type=int, default=20, help="hypotheses per pose (coverage, ECE)")
    ap.add_argument("--out", default="runs/bench_ood.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, _ = load_bundle(args.bundle)
    if model.out_of_domain is None:
        raise SystemExit(f"{args.bundle} has no out_of_domain.npz: run `diffpose3d fit-ood --checkpoint` first")
    he = [s.slice(step=args.stride) for s in load_humaneva(
        SHARED / "humaneva" / "data_3d_humaneva15_train.npz", SHARED / "humaneva" / "data_2d_humaneva15_gt_train.npz",
        split="Train")]
    home, where_home = in_domain(model.config, args.stride)
    results = {}
    print(f"{'data':>22s} {'2D':>10s} {'widen':>6s} {'error':>6s} {'cov50':>6s} {'cov90':>6s} {'ECE':>6s} {'rho spread':>10s}"
          f"  rho: disagreement density out_of_domain [reprojection_miss]")
    for where, seqs in ((where_home, home), ("HumanEva-I Train (off)", he)):
        for source in ("keypoints", "synthetic"):
            r = measure(model, seqs, source, args.samples)
            results[f"{where} / {source}"] = r
            sig = r.get("spearman_signals", {})
            for row in ("before", "after"):
                v = r[row]
                signals = ("disagreement", "density", "out_of_domain", "reprojection_miss")
                extra = "  ".join(f"{sig[k]:.2f}" for k in signals if k in sig) if row == "after" and sig else ""
                print(f"{where:>22s} {source:>10s} {row:>6s} {v['error_mm']:6.1f} {v['coverage_50']:6.3f} "
                      f"{v['coverage_90']:6.3f} {v['ece']:6.3f} {v['spearman_spread']:10.2f}  {extra}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
