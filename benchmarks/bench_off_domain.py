"""Honesty off-domain (#19): does the spread grow where the input is unlike training, and which
signals track the error there?

Each model is run on a rig it never saw: the Human3.6M bundle on the shared HumanEva-I data and the
HumanEva-I bundle on Human3.6M's held-out S8, ground-truth 2D as input, on the joints both
skeletons define alike. Per (frame, joint) the error of the mean pose is set against:
- the hypotheses' spread (what the bundle reports);
- the lifter's disagreement with g: the distance between the encoder's pose and the mean pose;
- the lifter's instability under perturbed evidence: the spread of its poses over `--jitters`
  copies of the 2D moved by 2 % of the person's size per joint;
and for each the Spearman correlation with the error and the coverage of the 90 % ball (2.5
spreads) before and after the spread is widened by that signal, `sqrt(spread^2 + (a s)^2)`, with
`a` fitted in-domain (the model's own validation data) so that its ball covers 90 % there.

    python benchmarks/bench_off_domain.py --stride 20
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy import optimize

from diffpose3d import metrics
from diffpose3d.bundle import load_bundle
from diffpose3d.config import EvidenceConfig
from diffpose3d.data.frames import FrameSet, build_frames
from diffpose3d.data.h36m import load_h36m
from diffpose3d.data.humaneva import load_humaneva
from diffpose3d.evaluation import calibration as cal
from diffpose3d.inference.lifting import predict_frames
from diffpose3d.skeleton import get_skeleton, map_keypoints

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CORE = ["pelvis", "l_hip", "l_knee", "l_ankle", "r_hip", "r_knee", "r_ankle",
        "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist"]


@torch.no_grad()
def signals(model, frames: FrameSet, jitters: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Per frame and joint (model layout): mean pose, spread, lifter pose, lifter instability."""
    pred = predict_frames(model, frames, model.config.inference)
    gen = torch.Generator().manual_seed(seed)
    size = (frames.keypoints_uv - frames.keypoints_uv.mean(1, keepdim=True)).square().sum(-1).mean(-1).sqrt()
    poses = []
    for _ in range(jitters):
        kp = frames.keypoints_uv + 0.02 * size[:, None, None] * torch.randn(frames.keypoints_uv.shape, generator=gen)
        moved = replace(frames, keypoints_uv=kp, context=None)
        poses.append(predict_frames(model, moved, replace(model.config.inference, hypotheses=1, steps=1)).lifter)
    poses = np.stack(poses, 1)  # (F, K, J, 3)
    instability = np.sqrt(np.square(poses - poses.mean(1, keepdims=True)).sum(-1).mean(1))
    return {"pose": pred.pose, "spread": pred.spread, "lifter": pred.lifter,
            "disagreement": np.linalg.norm(pred.lifter - pred.pose, axis=-1), "instability": instability}


def to_core(values: np.ndarray, layout: str) -> np.ndarray:
    """(F, J, ...) values of a layout's joints -> the CORE joints (by name)."""
    names = get_skeleton(layout).joint_names
    return values[:, [names.index(n) for n in CORE]]


def widen(spread: np.ndarray, signal: np.ndarray, a: float) -> np.ndarray:
    return np.sqrt(spread**2 + (a * signal) ** 2)


def fit_a(spread: np.ndarray, signal: np.ndarray, error: np.ndarray) -> float:
    """The smallest `a >= 0` whose widened 90 % ball covers 90 % of the in-domain joints."""
    radius = cal.gaussian_ball_radius(0.9)

    def gap(a: float) -> float:
        return float(np.mean(error <= radius * widen(spread, signal, a))) - 0.9

    if gap(0.0) >= 0:
        return 0.0
    return float(optimize.brentq(gap, 0.0, 100.0)) if gap(100.0) > 0 else 100.0


def measure(name: str, model_name: str, in_domain, off_domain, jitters: int) -> dict:
    model, _ = load_bundle(model_name)
    layout = model.skeleton.name
    out = {}
    for where, seqs in (("in", in_domain), ("off", off_domain)):
        frames = build_frames(seqs, model.skeleton, EvidenceConfig(source="keypoints"))
        sig = signals(model, frames, jitters)
        truth = frames.target_xyz.numpy()
        data_layout = seqs[0].skeleton
        if data_layout != layout:  # score in the data's layout
            for k in ("pose", "lifter"):
                sig[k] = map_keypoints(sig[k], layout, data_layout, confidence=False)
            for k in ("spread", "disagreement", "instability"):
                sig[k] = map_keypoints(sig[k][..., None], layout, data_layout, confidence=False)[..., 0]
        core = {k: to_core(v, data_layout)[:, 1:] for k, v in sig.items()}  # no root
        error = np.linalg.norm(core["pose"] - to_core(truth, data_layout)[:, 1:], axis=-1)
        out[where] = {"core": core, "error": error}
    result = {"model": model_name, "rows": {}}
    radius = cal.gaussian_ball_radius(0.9)
    for signal in ("spread", "disagreement", "instability"):
        row = {}
        for where in ("in", "off"):
            c, e = out[where]["core"], out[where]["error"]
            row[f"spearman_{where}"] = metrics.rank_correlation(c[signal], e)
        a = 0.0 if signal == "spread" else fit_a(out["in"]["core"]["spread"], out["in"]["core"][signal], out["in"]["error"])
        for where in ("in", "off"):
            c, e = out[where]["core"], out[where]["error"]
            row[f"coverage_{where}"] = float(np.mean(e <= radius * widen(c["spread"], c[signal], a)))
            row[f"mean_spread_{where}_mm"] = 1000 * float(np.mean(widen(c["spread"], c[signal], a)))
        row["a"] = a
        result["rows"][signal] = row
    for where in ("in", "off"):
        result[f"mean_error_{where}_mm"] = 1000 * float(out[where]["error"].mean())
    print(f"\n== {name}: mean error in-domain {result['mean_error_in_mm']:.1f} mm, off-domain "
          f"{result['mean_error_off_mm']:.1f} mm ({len(CORE) - 1} non-root common joints)")
    print(f"{'signal':14s}{'rho in':>8s}{'rho off':>8s}{'a':>7s}{'cover in':>10s}{'cover off':>10s}{'spread off':>12s}")
    for signal, r in result["rows"].items():
        print(f"{signal:14s}{r['spearman_in']:8.2f}{r['spearman_off']:8.2f}{r['a']:7.2f}{r['coverage_in']:10.3f}"
              f"{r['coverage_off']:10.3f}{r['mean_spread_off_mm']:10.1f} mm")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--h36m-bundle", default="h36m_frame")
    ap.add_argument("--humaneva-bundle", default="humaneva_frame")
    ap.add_argument("--stride", type=int, default=20, help="every n-th frame of each sequence")
    ap.add_argument("--jitters", type=int, default=8)
    ap.add_argument("--out", default="runs/bench_off_domain.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    he = [s.slice(step=args.stride) for s in load_humaneva(
        SHARED / "humaneva" / "data_3d_humaneva15_train.npz", SHARED / "humaneva" / "data_2d_humaneva15_gt_train.npz",
        split="Train")]
    h36 = [s.slice(step=args.stride * 5) for s in load_h36m(SHARED / "h36m" / "data_3d_h36m.npz", None, subjects=["S8"])]
    results = [
        measure("Human3.6M bundle: in-domain S8, off-domain HumanEva-I", args.h36m_bundle, h36, he, args.jitters),
        measure("HumanEva-I bundle: in-domain HumanEva-I (its training split), off-domain Human3.6M S8",
                args.humaneva_bundle, he, h36, args.jitters),
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
