"""Root positions in the scene on held-out Human3.6M S8: the camera-frame root fitted to the 2D with a
known focal length (`scene.root`, `scene.smoothing`), against the ground truth's root.

S8 is the bundled h36m_frame model's validation subject (trained on S1, S5, S6, S7). For every action
and camera, a contiguous chunk of `--frames` frames (50 Hz) from the middle of the take is lifted
from its 2D, told the calibrated focal length; the root is fitted with that focal length and the
calibrated principal point (pinhole: the lens distortion is left out, as a user's camera would be).
Rows:

- `oracle pose`: the ground truth's own root-relative 3D placed by the solver (the solver's error
  alone: lens distortion, the 2D of a pose the 3D explains exactly);
- `model, raw` / `model, smoothed`: the model's mean pose placed frame by frame, then smoothed over the
  chunk (`scene.smoothing`, 50 fps);
- `model, default focal`: as smoothed, but told the default field of view (an unknown camera).

Inputs: the ground-truth 2D (the 3D's projection with the lens distortion) and, with
`--detections`, also the real Stacked-Hourglass detections (16 joints). Errors: the root's 3D error
(mm), its relative depth error |dz| / z, and the error over the camera distance |dt| / |t| (the
target: below 10 %); `z within 2 sd`: how often the depth error is within twice the hypotheses'
root depth spread.

    nice -n 15 python benchmarks/bench_root.py --frames 100 [--detections] [--out runs/bench_root.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from diffpose3d.data.h36m import load_h36m
from diffpose3d.inference.api import DiffPose
from diffpose3d.scene.intrinsics import Intrinsics, camera_for
from diffpose3d.scene.root import solve_root
from diffpose3d.scene.trajectory import add_trajectory, root_std

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "h36m"
FPS = 50.0


def chunk(n: int, frames: int) -> slice:
    start = max(0, (n - frames) // 2)
    return slice(start, start + frames)


def scores(pred: np.ndarray, truth: np.ndarray, std_z: np.ndarray | None = None) -> dict:
    ok = np.isfinite(pred).all(1)
    err = np.linalg.norm(pred[ok] - truth[ok], axis=1)
    dz = np.abs(pred[ok, 2] - truth[ok, 2])
    out = {"rows": int(ok.sum()), "placed": round(float(ok.mean()), 4),
           "root_mm_mean": round(float(err.mean() * 1000), 1), "root_mm_median": round(float(np.median(err) * 1000), 1),
           "depth_rel_mean": round(float((dz / truth[ok, 2]).mean()), 4),
           "over_distance_mean": round(float((err / np.linalg.norm(truth[ok], axis=1)).mean()), 4),
           "over_distance_p90": round(float(np.quantile(err / np.linalg.norm(truth[ok], axis=1), 0.9)), 4)}
    if std_z is not None:
        out["z_within_2sd"] = round(float((dz <= 2 * std_z[ok]).mean()), 3)
    return out


def lift(model: DiffPose, parts: list, focal: float | None, known: Intrinsics):
    """Lift the chunks of one camera in one call; each chunk's rows get frame numbers of their own
    (far apart, so smoothing never joins two takes). Returns the result and its raw roots."""
    kp = np.concatenate([p[0] for p in parts])
    conf = np.concatenate([p[1] for p in parts])
    seq = parts[0][2]
    result = model.from_keypoints(kp, conf, image_size=seq.camera.image_size, layout=seq.skeleton, focal=focal)
    result.frame_indices = np.concatenate([k * 100_000 + np.arange(len(p[0])) for k, p in enumerate(parts)])
    raw = add_trajectory(result, known, FPS, smooth=False).root.copy()
    return add_trajectory(result, known, FPS, smooth=True), raw


def run(args: argparse.Namespace) -> dict:
    model = DiffPose.load(args.checkpoint)
    sequences = load_h36m(SHARED / "data_3d_h36m.npz", SHARED / "data_2d_h36m_sh_pt_mpii.npz" if args.detections else None,
                          subjects="S8")
    rows: dict[str, list] = {k: [] for k in ("truth", "oracle", "raw", "smooth", "default", "std")}
    start = time.perf_counter()
    for camera in sorted({s.camera_index for s in sequences}):
        parts = []
        for seq in (s for s in sequences if s.camera_index == camera):
            part = chunk(len(seq.keypoints_2d), args.frames)
            conf = np.ones(seq.keypoints_2d[part].shape[:2], np.float32) if seq.confidence is None else seq.confidence[part]
            parts.append((seq.keypoints_2d[part], conf, seq, seq.pose_3d[part].astype(np.float64)))
        cam = parts[0][2].camera
        focal = float(np.mean(cam.focal))
        known = Intrinsics(focal, tuple(float(c) for c in cam.center), "h36m calibration")
        truth = np.concatenate([p[3] for p in parts])
        kp = np.concatenate([p[0] for p in parts])
        conf = np.concatenate([p[1] for p in parts])
        rows["oracle"].append(solve_root(truth - truth[:, :1], kp, conf, known.focal_px, known.center))
        result, raw = lift(model, parts, focal, known)
        rows["raw"].append(raw)
        rows["smooth"].append(result.root.copy())
        rows["std"].append(root_std(result.root_hypotheses)[:, 2])
        guess = Intrinsics(camera_for(cam.image_size).focal_px, known.center, "default")
        rows["default"].append(lift(model, parts, None, guess)[0].root.copy())
        rows["truth"].append(truth[:, 0])
    cat = {k: np.concatenate(v) for k, v in rows.items()}
    return {
        "subject": "S8", "input": "Stacked-Hourglass detections" if args.detections else "ground-truth 2D",
        "sequences": len(sequences), "frames": len(cat["truth"]),
        "camera_distance_m_mean": round(float(np.linalg.norm(cat["truth"], axis=1).mean()), 3),
        "seconds": round(time.perf_counter() - start, 1),
        "oracle pose": scores(cat["oracle"], cat["truth"]),
        "model, raw": scores(cat["raw"], cat["truth"], cat["std"]),
        "model, smoothed": scores(cat["smooth"], cat["truth"], cat["std"]),
        "model, default focal": scores(cat["default"], cat["truth"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="h36m_frame")
    parser.add_argument("--frames", type=int, default=100, help="frames per take and camera (a chunk from the middle)")
    parser.add_argument("--detections", action="store_true", help="also lift the Stacked-Hourglass detections")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not (SHARED / "data_3d_h36m.npz").is_file():
        raise SystemExit(f"Human3.6M files not found in {SHARED}")
    reports = [run(args)]
    if args.detections:
        args.detections = False
        reports.insert(0, run(args))
    for report in reports:
        print(f"\n== root position, {report['subject']}, {report['input']}: {report['frames']} frames of "
              f"{report['sequences']} takes x cameras, camera {report['camera_distance_m_mean']} m away on average "
              f"({report['seconds']} s)")
        print(f"{'':22s} {'mean mm':>8s} {'median':>8s} {'|dz|/z':>8s} {'|dt|/|t|':>9s} {'p90':>7s} {'z in 2sd':>9s}")
        for name in ("oracle pose", "model, raw", "model, smoothed", "model, default focal"):
            s = report[name]
            within = f"{100 * s['z_within_2sd']:8.0f}%" if "z_within_2sd" in s else ""
            print(f"{name:22s} {s['root_mm_mean']:8.1f} {s['root_mm_median']:8.1f} {100 * s['depth_rel_mean']:7.1f}% "
                  f"{100 * s['over_distance_mean']:8.1f}% {100 * s['over_distance_p90']:6.1f}% {within}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
