"""(b) A rig the model never saw: Human3.6M-trained lifters on the shared HumanEva-I data, with and
without virtual cameras, beside the HumanEva-I bundle trained on that rig.

Two lifters are trained from the Human3.6M config for the same number of steps, one with the
config's share of virtual cameras and one with none (`data.virtual.share=0`); then each, the
shipped Human3.6M bundle and the HumanEva-I bundle are scored on every frame (`--stride`) of the
shared HumanEva-I Train split, ground-truth 2D as input, on the 13 joints both skeletons define
alike (pelvis, hips, knees, ankles, shoulders, elbows, wrists; HumanEva's thorax and head are other
points than Human3.6M's). Root-relative MPJPE and P-MPJPE (mm).

    python benchmarks/bench_unseen_rig.py --steps 8000 --out runs/bench_rig [--bundle h36m_frame]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from diffpose3d import metrics
from diffpose3d.bundle import load_bundle, save_bundle
from diffpose3d.config import EvidenceConfig, load_config
from diffpose3d.data.frames import build_frames
from diffpose3d.data.humaneva import load_humaneva
from diffpose3d.inference.lifting import predict_frames
from diffpose3d.model import DiffPoseModel
from diffpose3d.skeleton import get_skeleton, map_keypoints
from diffpose3d.training.loop import Budget
from diffpose3d.training.run import training_data
from diffpose3d.training.stages import train_encoder

ROOT = Path(__file__).resolve().parents[1]
HUMANEVA = ROOT.parent / "shared" / "data" / "humaneva"
CORE = ["pelvis", "l_hip", "l_knee", "l_ankle", "r_hip", "r_knee", "r_ankle",
        "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist"]


def train_lifter(share: float, steps: int, out: Path) -> Path:
    config = load_config(ROOT / "configs" / "h36m_frame.yaml", [f"data.virtual.share={share}"])
    epochs = max(1, steps // config.train.epoch_steps)
    config = replace(config, train=replace(config.train, encoder_epochs=epochs, max_minutes=0.0, progress=False))
    torch.set_num_threads(1)
    torch.manual_seed(config.train.seed)
    model = DiffPoseModel(config)
    batches, val = training_data(config, model.skeleton)
    info = train_encoder(model, batches, val, config, torch.device("cpu"), Budget(0.0), share=1.0)
    save_bundle(model, config, out, {"stage1": info, "virtual_share": share})
    return out


def core_errors(model_name: str | Path, sequences, inference_hypotheses: int | None = None) -> dict[str, float]:
    """MPJPE / P-MPJPE (mm) on the common joints: the model's mean pose, and its lifter alone."""
    model, _ = load_bundle(model_name)
    frames = build_frames(sequences, model.skeleton, EvidenceConfig(source="keypoints"))
    cfg = model.config.inference
    if inference_hypotheses is not None:
        cfg = replace(cfg, hypotheses=inference_hypotheses, steps=1)
    pred = predict_frames(model, frames, cfg)
    truth = frames.target_xyz.numpy()  # humaneva15, root-relative
    he = get_skeleton("humaneva15")
    t = truth[:, [he.index(n) for n in CORE]]
    out = {}
    for name, poses in (("diffpose", pred.pose), ("lifter", pred.lifter)):
        p = poses
        if model.skeleton.name != "humaneva15":
            p = map_keypoints(poses, model.skeleton.name, "humaneva15", confidence=False)
        p = p[:, [he.index(n) for n in CORE]]
        out[name] = {"mpjpe": 1000 * float(metrics.mpjpe(p, t)), "p_mpjpe": 1000 * float(metrics.p_mpjpe(p, t))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8000, help="training steps of each lifter")
    ap.add_argument("--out", default="runs/bench_rig")
    ap.add_argument("--bundle", default="h36m_frame", help="the shipped Human3.6M bundle")
    ap.add_argument("--stride", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="score lifters already trained in --out")
    args = ap.parse_args()
    out = Path(args.out)
    lifters = {}
    for share in (0.0, load_config(ROOT / "configs" / "h36m_frame.yaml").data.virtual.share):
        folder = out / f"lifter_virtual_{share:g}"
        lifters[f"H36M lifter, virtual share {share:g}"] = folder if args.reuse else train_lifter(share, args.steps, folder)
    seqs = [s.slice(step=args.stride) for s in load_humaneva(
        HUMANEVA / "data_3d_humaneva15_train.npz", HUMANEVA / "data_2d_humaneva15_gt_train.npz", split="Train")]
    rows = {name: core_errors(folder, seqs, inference_hypotheses=1)["lifter"] for name, folder in lifters.items()}
    shipped = core_errors(args.bundle, seqs)
    rows[f"{args.bundle} (DiffPose)"] = shipped["diffpose"]
    rows[f"{args.bundle}, its lifter"] = shipped["lifter"]
    rows["humaneva_frame (trained on this rig)"] = core_errors("humaneva_frame", seqs)["diffpose"]
    frames = sum(len(s) for s in seqs)
    print(f"\n== HumanEva-I Train, all subjects, actions and cameras, every {args.stride}th frame ({frames}), "
          f"GT 2D, {len(CORE)} common joints (mm)")
    print(f"{'model':44s}{'MPJPE':>10s}{'P-MPJPE':>10s}")
    for name, r in rows.items():
        print(f"{name:44s}{r['mpjpe']:10.1f}{r['p_mpjpe']:10.1f}")
    (out / "bench_unseen_rig.json").write_text(json.dumps({"steps": args.steps, "frames": frames, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
