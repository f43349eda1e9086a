"""DiffPose vs the deterministic lifter it is conditioned on, under the same CPU budget.

Trains on the shared HumanEva-I Train data (Walk, Jog, Box of S1-S3) with contiguous held-out blocks
as validation and test (never the public test split), then prints, on the held-out test blocks:
(a) the context encoder alone, trained for the whole budget; (b) DiffPose (stage 1 + stage 2 in the
same budget, N hypotheses, mean); (c) the `authors` mode of the same DiffPose weights (deterministic
refinement of the lifter output, one hypothesis, no f_ST); P-MPJPE per action x subject (HumanEva
protocol), MPJPE, best-of-N and the calibration figures.

    python benchmarks/bench_diffpose_vs_lifter.py --minutes 30 --out runs/bench_frame [--parallel]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from dataclasses import replace
from pathlib import Path

import torch

from diffpose3d.checkpoint import load_bundle, save_bundle
from diffpose3d.config import load_config
from diffpose3d.datasets import load_training_splits
from diffpose3d.evaluate_model import score_model
from diffpose3d.frames import build_frames
from diffpose3d.model import DiffPoseModel
from diffpose3d.train import resolve_device, train, train_encoder
from diffpose3d.trainer import Budget

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "humaneva"


def budget_overrides(data_dir: str | Path, minutes: float) -> list[str]:
    """Config overrides shared by the benchmarks: the shared HumanEva-I files and the CPU budget."""
    return [
        f"data.data_3d={Path(data_dir) / 'data_3d_humaneva15_train.npz'}",
        f"data.data_2d={Path(data_dir) / 'data_2d_humaneva15_gt_train.npz'}",
        f"train.max_minutes={minutes}",
    ]


def train_lifter_only(config, out_dir: Path, minutes: float) -> None:
    """Contender (a): the context encoder alone, trained for the whole budget."""
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    torch.manual_seed(config.train.seed)
    cfg = replace(config, train=replace(config.train, encoder_epochs=config.train.encoder_epochs * 4))
    device = resolve_device(cfg.train.device)
    splits = load_training_splits(cfg)
    lifter = DiffPoseModel(cfg).to(device)
    tr = build_frames(splits["train"], lifter.skeleton, cfg.evidence, seed_offset=0)
    va = build_frames(splits["val"], lifter.skeleton, cfg.evidence, seed_offset=100_000)
    info = train_encoder(lifter, tr, va, cfg, device, Budget(minutes), share=1.0)
    save_bundle(lifter, cfg, out_dir, {"stage1": info})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "humaneva_frame.yaml"))
    ap.add_argument("--minutes", type=float, default=30.0, help="the CPU budget of each contender")
    ap.add_argument("--data", default=str(SHARED), help="folder with the HumanEva-I npz files")
    ap.add_argument("--out", default="runs/bench_frame")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--reuse", action="store_true", help="reuse bundles already in --out")
    ap.add_argument("--parallel", action="store_true", help="train the two contenders at once, one core each")
    args = ap.parse_args()
    out = Path(args.out)
    config = load_config(args.config, budget_overrides(args.data, args.minutes) + args.overrides)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, budget {args.minutes} min each")

    diff_dir, lifter_dir = out / "diffpose", out / "lifter_only"
    jobs = []
    if not (args.reuse and (diff_dir / "model.safetensors").is_file()):
        jobs.append((train, (config, diff_dir)))
    if not (args.reuse and (lifter_dir / "model.safetensors").is_file()):
        jobs.append((train_lifter_only, (config, lifter_dir, args.minutes)))
    t0 = time.monotonic()
    if args.parallel and len(jobs) == 2:  # one core each: the same budget, half the wall time
        child = mp.get_context("spawn").Process(target=jobs[1][0], args=jobs[1][1])
        child.start()
        jobs[0][0](*jobs[0][1])
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"lifter-only training failed (exit code {child.exitcode})")
    else:
        for fn, fn_args in jobs:
            fn(*fn_args)
    print(f"trained in {(time.monotonic() - t0) / 60:.1f} min ({'in parallel' if args.parallel else 'one after the other'})")

    model, _ = load_bundle(diff_dir)
    lifter_model, _ = load_bundle(lifter_dir)
    test = load_training_splits(config)["test"]
    inference = config.inference
    results = {}
    lifter_alone = score_model(lifter_model, test, config.evidence, inference, "humaneva")["lifter"]
    diff = score_model(model, test, config.evidence, inference, "humaneva")
    authors = score_model(model, test, config.evidence, replace(inference, mode="authors"), "humaneva")["authors"]
    for name, report in (("(a) lifter alone (full budget)", lifter_alone),
                         ("(b) DiffPose, N=%d, %d steps, %s" % (inference.hypotheses, inference.steps, inference.aggregate), diff["diffpose"]),
                         ("    its own stage-1 lifter", diff["lifter"]),
                         ("(c) authors mode (deterministic refinement, N=1, no f_ST)", authors)):
        print(f"\n===== {name}\n{report.format_table()}")
        results[name] = report.to_dict()
    a, b = lifter_alone.summary["p_mpjpe"], diff["diffpose"].summary["p_mpjpe"]
    print(f"\nP-MPJPE (mean of action x subject cells): lifter alone {a:.1f} mm, DiffPose {b:.1f} mm, "
          f"ratio {b / a:.3f}; authors mode {authors.summary['p_mpjpe']:.1f} mm")
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
