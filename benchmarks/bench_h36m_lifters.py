"""(a) Human3.6M, held-out training subject S8, per action: a DiffPose bundle vs its own lifter alone vs
a Martinez-style MLP lifter trained on the same data for the same CPU time.

Inputs: the ground-truth 2D (the 3D's projection, lens distortion included) and the real
Stacked-Hourglass detections (16 joints, no neck/nose: scored on those 16). The baseline is the
Martinez et al. (2017) recipe: the 2D centred on the root joint, a 1,024-wide MLP with two residual
blocks, batch norm and dropout 0.5, trained on S1, S5, S6, S7 through their real cameras, half its
samples with the ground-truth 2D and half with the detections, for `--cpu-minutes` of process CPU
time (what the bundle's run used, so a loaded machine does not handicap either).

    python benchmarks/bench_h36m_lifters.py --bundle runs/h36m_frame --cpu-minutes 75 --out runs/bench_h36m
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from diffpose3d.bundle import load_bundle
from diffpose3d.config import EvidenceConfig
from diffpose3d.data.h36m import load_h36m
from diffpose3d.data.pose_table import build_pose_table
from diffpose3d.evaluation.scoring import score_model
from diffpose3d.evaluation.tables import evaluate_sequences
from diffpose3d.skeleton import get_skeleton

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "h36m"
TRAIN = ["S1", "S5", "S6", "S7"]
NECK = get_skeleton("h36m17").index("neck_nose")
INPUT_JOINTS = [j for j in range(17) if j != NECK]


class Martinez(nn.Module):
    def __init__(self, hidden: int = 1024, blocks: int = 2, dropout: float = 0.5) -> None:
        super().__init__()
        def block() -> nn.Sequential:
            return nn.Sequential(nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout))
        self.inp = nn.Linear(len(INPUT_JOINTS) * 2, hidden)
        self.blocks = nn.ModuleList(block() for _ in range(blocks))
        self.out = nn.Linear(hidden, 17 * 3)

    def forward(self, uv: torch.Tensor) -> torch.Tensor:
        x = uv[:, INPUT_JOINTS] - uv[:, :1]
        h = self.inp(x.flatten(1))
        for b in self.blocks:
            h = h + b(h)
        xyz = self.out(h).reshape(-1, 17, 3)
        return xyz - xyz[:, :1]


def train_baseline(data: Path, cpu_minutes: float, seed: int = 0) -> tuple[Martinez, dict]:
    torch.manual_seed(seed)
    gt = load_h36m(data / "data_3d_h36m.npz", None, subjects=TRAIN)
    sh = load_h36m(data / "data_3d_h36m.npz", data / "data_2d_h36m_sh_pt_mpii.npz", subjects=TRAIN)
    table = build_pose_table(gt, sh)
    net, gen = Martinez(), torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
    budget, start, steps = cpu_minutes * 60.0, time.process_time(), 0
    while (spent := time.process_time() - start) < budget:
        for group in opt.param_groups:
            group["lr"] = 1e-3 * (min(1.0, spent / budget / 0.03) * 0.5 * (1 + math.cos(math.pi * spent / budget)) + 1e-3)
        rows = torch.randint(len(table), (256,), generator=gen)
        cams = torch.randint(table.num_cameras, (256,), generator=gen)
        xyz, uv = table.real_views(rows, cams)
        det = table.detections[rows, cams]
        use = (torch.rand(256, generator=gen) < 0.5)[:, None, None] & torch.isfinite(det)
        uv = torch.where(use, det, uv)
        loss = (net(uv) - xyz).norm(dim=-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    return net.eval(), {"steps": steps, "cpu_minutes": (time.process_time() - start) / 60}


@torch.no_grad()
def baseline_predictions(net: Martinez, sequences) -> dict:
    out = {}
    for seq in sequences:
        uv = torch.as_tensor(seq.keypoints_uv(), dtype=torch.float32)
        if seq.skeleton == "h36m16":  # Stacked-Hourglass: insert the missing neck/nose (not an input)
            uv = torch.cat([uv[:, :NECK], uv[:, NECK - 1 : NECK], uv[:, NECK:]], 1)
        out[seq.key] = net(uv).numpy()
    return out


def table(rows: dict[str, dict[str, dict]], metric: str) -> str:
    names = list(rows)
    actions = [a for a in next(iter(rows.values())) if a != "Average"] + ["Average"]
    head = f"{'action':14s}" + "".join(f"{n:>22s}" for n in names)
    lines = [head]
    for a in actions:
        lines.append(f"{a:14s}" + "".join(f"{rows[n][a][metric]:22.1f}" for n in names))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True, help="the DiffPose bundle (trained without S8)")
    ap.add_argument("--cpu-minutes", type=float, required=True, help="the baseline's CPU budget")
    ap.add_argument("--data", default=str(SHARED))
    ap.add_argument("--out", default="runs/bench_h36m")
    ap.add_argument("--stride", type=int, default=5, help="score every n-th frame of S8 (default 5)")
    ap.add_argument("--reuse", action="store_true", help="score the baseline saved in --out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out, data = Path(args.out), Path(args.data)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "martinez.safetensors"
    net = Martinez()
    if args.reuse:
        net.load_state_dict(load_file(str(weights)))
        info = json.loads((out / "martinez.json").read_text())
    else:
        net, info = train_baseline(data, args.cpu_minutes)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
        (out / "martinez.json").write_text(json.dumps(info))
    net.eval()
    model, bundle_info = load_bundle(args.bundle)
    inference = model.config.inference
    results: dict[str, dict[str, dict]] = {}
    for name, data_2d in (("GT 2D", None), ("SH detections", data / "data_2d_h36m_sh_pt_mpii.npz")):
        seqs = [s.slice(step=args.stride) for s in load_h36m(data / "data_3d_h36m.npz", data_2d, subjects=["S8"])]
        reports = score_model(model, seqs, EvidenceConfig(source="keypoints"), inference, "h36m")
        base = evaluate_sequences(seqs, baseline_predictions(net, seqs), protocol="h36m")
        rows = {"DiffPose": reports[inference.mode], "its lifter": reports["lifter"], "Martinez MLP": base}
        results[name] = {k: r.tables["per_action"].rows for k, r in rows.items()}
        frames = sum(len(s) for s in seqs)
        print(f"\n== S8 (held out), {name}, {len(seqs)} sequences, {frames} frames (every {args.stride}th)")
        for metric in ("mpjpe", "p_mpjpe"):
            print(f"-- {metric.upper().replace('_', '-')} (mm)\n{table(results[name], metric)}")
    print(f"\nbaseline: {info['steps']} steps of 256 in {info['cpu_minutes']:.1f} CPU minutes; bundle: "
          f"{bundle_info.get('minutes')}")
    (out / "bench_h36m_lifters.json").write_text(json.dumps({"results": results, "baseline": info}, indent=1))


if __name__ == "__main__":
    main()
