"""(c) The image path on photographs with motion-capture 3D, beside the 3D the detector gives for free.

For each photograph of `../shared/data/photos` (four Human3.6M frames; S8's is the only one of a
subject the Human3.6M bundle never trained on): the whole `predict` path (MediaPipe's landmarks and
heatmaps -> 2D evidence -> lifting) with a bundle, and MediaPipe's own `pose_world_landmarks` from the
same detection, on the same joints: all 17 Human3.6M joints (for MediaPipe pelvis = mean of the hips,
thorax = mean of the shoulders, spine = their mean, neck/nose = the nose, head = mean of the eyes)
and the 13 limb joints both define alike. Root-aligned MPJPE and P-MPJPE (mm), and the share of the
model's joints inside its 90 % ball (2.5 spreads).

    python benchmarks/bench_photos.py [--checkpoint h36m_frame]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from diffpose3d import metrics
from diffpose3d.evaluation.calibration import gaussian_ball_radius
from diffpose3d.inference.api import DiffPose
from diffpose3d.inference.inputs import read_input
from diffpose3d.inference.predict import detector_factory
from diffpose3d.skeleton import get_skeleton

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"
H36M = get_skeleton("h36m17")
CORE = ["pelvis", "l_hip", "l_knee", "l_ankle", "r_hip", "r_knee", "r_ankle",
        "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist"]


def mediapipe_to_h36m(world: np.ndarray) -> np.ndarray:
    """(33, 3) BlazePose world landmarks -> (17, 3) on the Human3.6M joints, as the issue states them."""
    bp = get_skeleton("blazepose33")
    p = {n: world[bp.index(n)] for n in bp.joint_names}
    pelvis = (p["l_hip"] + p["r_hip"]) / 2
    thorax = (p["l_shoulder"] + p["r_shoulder"]) / 2
    named = {"pelvis": pelvis, "thorax": thorax, "spine": (pelvis + thorax) / 2, "neck_nose": p["nose"],
             "head": (p["l_eye"] + p["r_eye"]) / 2}
    return np.stack([named[n] if n in named else p[n] for n in H36M.joint_names])


def errors(pred: np.ndarray, truth: np.ndarray, joints: list[str]) -> dict[str, float]:
    idx = [H36M.index(n) for n in joints]
    p, t = pred[idx] - pred[0], truth[idx] - truth[0]
    return {"mpjpe": 1000 * float(metrics.mpjpe(p[None], t[None])), "p_mpjpe": 1000 * float(metrics.p_mpjpe(p[None], t[None]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="h36m_frame")
    ap.add_argument("--photos", default=str(PHOTOS))
    ap.add_argument("--out", default="runs/bench_photos.json")
    ap.add_argument("--heatmaps", action=argparse.BooleanOptionalAction, default=None,
                    help="H_K from the detector's heatmaps or its keypoints (default: the model's setting)")
    args = ap.parse_args()
    photos = Path(args.photos)
    gt = np.load(photos / "ground_truth.npz")
    model = DiffPose.load(args.checkpoint)
    heatmaps = model.inference.heatmaps if args.heatmaps is None else args.heatmaps
    if model.layout != "h36m17":
        raise SystemExit(f"{args.checkpoint} lifts to {model.layout}; this benchmark scores h36m17 joints")
    rows = []
    radius = gaussian_ball_radius(0.9)
    for name, truth in zip(gt["image"], gt["pose_3d"]):
        evidence = read_input(photos / str(name), detector_factory(heatmaps), layout=model.layout, progress=False)
        result = model.from_evidence(evidence)
        best = int(np.argmax(result.detector_score)) if result.detector_score is not None else 0
        pose, spread = result.pose_3d[best], result.uncertainty[best]
        world = mediapipe_to_h36m(result.detector_world_3d[best])
        rel = truth - truth[0]
        inside = np.linalg.norm(pose - rel, axis=-1)[1:] <= radius * spread[1:]
        row = {"photo": str(name), "held_out": str(name).startswith("S8"), "people": len(result.people),
               "coverage_90": float(inside.mean()), "mean_spread_mm": 1000 * float(spread[1:].mean())}
        for joints, label in ((list(H36M.joint_names), "all17"), (CORE, "core13")):
            row[label] = {"diffpose": errors(pose, truth, joints), "mediapipe": errors(world, truth, joints)}
        rows.append(row)
    path = "heatmaps" if heatmaps else "keypoints + visibility"
    print(f"\n== {args.checkpoint} ({path}) vs MediaPipe's world landmarks, {len(rows)} photographs (mm; * held out)")
    for label in ("all17", "core13"):
        print(f"-- {label}")
        print(f"{'photo':42s}{'ours MPJPE':>11s}{'MP MPJPE':>10s}{'ours P-MPJPE':>13s}{'MP P-MPJPE':>12s}")
        for r in rows:
            d, m = r[label]["diffpose"], r[label]["mediapipe"]
            star = "*" if r["held_out"] else " "
            print(f"{star}{r['photo']:41s}{d['mpjpe']:11.1f}{m['mpjpe']:10.1f}{d['p_mpjpe']:13.1f}{m['p_mpjpe']:12.1f}")
        mean = {k: {m: float(np.mean([r[label][k][m] for r in rows])) for m in ("mpjpe", "p_mpjpe")}
                for k in ("diffpose", "mediapipe")}
        ratio = mean["diffpose"]["p_mpjpe"] / mean["mediapipe"]["p_mpjpe"]
        print(f"{'mean':42s}{mean['diffpose']['mpjpe']:11.1f}{mean['mediapipe']['mpjpe']:10.1f}"
              f"{mean['diffpose']['p_mpjpe']:13.1f}{mean['mediapipe']['p_mpjpe']:12.1f}   P-MPJPE ratio {ratio:.2f}")
    print("coverage of the 90 % ball per photo: " + ", ".join(f"{r['coverage_90']:.2f}" for r in rows)
          + "; mean spread " + ", ".join(f"{r['mean_spread_mm']:.0f}" for r in rows) + " mm")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
