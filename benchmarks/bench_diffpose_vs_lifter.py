"""DiffPose vs the deterministic lifter it is conditioned on, under the same CPU budget.

Trains on the shared HumanEva-I Train data (Walk, Jog, Box of S1-S3) with contiguous held-out blocks
as validation and test (never the public test split), then prints, on the held-out test blocks:
(a) the context encoder alone, trained for the whole budget; (b) DiffPose (stage 1 + stage 2 in the
same budget, N hypotheses, mean); (c) the `authors` mode of the same DiffPose weights (deterministic
refinement of the lifter output, one hypothesis, no f_ST); P-MPJPE per action x subject (HumanEva
protocol), MPJPE, best-of-N and the calibration figures. With `--draws K`, both contenders are then
scored again on K - 1 further realisations of the synthetic detector on the same test frames, and the
paired difference (DiffPose minus lifter alone, same draw) is printed per draw with its mean and
standard deviation: how much of the gap is the model and how much the noise of one realisation.

    python benchmarks/bench_diffpose_vs_lifter.py --minutes 30 --out runs/bench_frame [--parallel] [--draws 4]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from dataclasses import replace
from pathlib import Path

import torch

from diffpose3d.bundle import load_bundle, resolve_device, save_bundle
from diffpose3d.config import load_config
from diffpose3d.data.frames import build_frames
from diffpose3d.data.splits import training_splits
from diffpose3d.evaluation.scoring import TEST_SEED_OFFSET, score_model
from diffpose3d.model import DiffPoseModel
from diffpose3d.training.batches import FrameBatches
from diffpose3d.training.loop import Budget
from diffpose3d.training.run import train
from diffpose3d.training.stages import train_encoder

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "humaneva"
DRAW_STRIDE = 10_007  # seed offset between two realisations of the test evidence
CELLS = "p_mpjpe_action_subject"


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
    splits = training_splits(cfg)
    lifter = DiffPoseModel(cfg).to(device)
    tr = build_frames(splits["train"], lifter.skeleton, cfg.evidence, seed_offset=0)
    va = build_frames(splits["val"], lifter.skeleton, cfg.evidence, seed_offset=100_000)
    info = train_encoder(lifter, FrameBatches(tr), va, cfg, device, Budget(minutes), share=1.0)
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
    ap.add_argument("--draws", type=int, default=1, help="score both on this many realisations of the test evidence")
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
    test = training_splits(config)["test"]
    inference = config.inference
    results = {}
    lifter_alone = score_lifter(lifter_model, test, config)
    diff = score_model(model, test, config.evidence, inference, "humaneva")
    authors = score_model(model, test, config.evidence, replace(inference, mode="authors"), "humaneva")["authors"]
    for name, report in (("(a) lifter alone (full budget)", lifter_alone),
                         (f"(b) DiffPose, N={inference.hypotheses}, {inference.steps} steps, {inference.aggregate}",
                          diff["diffpose"]),
                         ("    its own stage-1 lifter", diff["lifter"]),
                         ("(c) authors mode (deterministic refinement, N=1, no f_ST)", authors)):
        print(f"\n===== {name}\n{report.format_table()}")
        results[name] = report.to_dict()
    a, b = lifter_alone.summary["p_mpjpe"], diff["diffpose"].summary["p_mpjpe"]
    print(f"\nP-MPJPE (mean of action x subject cells): lifter alone {a:.1f} mm, DiffPose {b:.1f} mm, "
          f"ratio {b / a:.3f}; authors mode {authors.summary['p_mpjpe']:.1f} mm")
    if args.draws > 1:
        results["paired draws"] = paired_draws(model, lifter_model, test, config, args.draws,
                                               first=(lifter_alone, diff["diffpose"]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_results.json").write_text(json.dumps(results, indent=2))


def score_lifter(lifter_model, test, config, seed_offset: int = TEST_SEED_OFFSET):
    """The context encoder's own report (its untrained g draws one hypothesis, in one step, unscored)."""
    cheap = replace(config.inference, hypotheses=1, steps=1)
    return score_model(lifter_model, test, config.evidence, cheap, "humaneva", seed_offset)["lifter"]


def better_cells(ours, theirs) -> tuple[int, int]:
    """(cells where `ours` has the lower P-MPJPE, cells in all) of two reports' action x subject tables."""
    a, b = ours.tables[CELLS].rows, theirs.tables[CELLS].rows
    pairs = [(a[r][c], b[r][c]) for r in a for c in a[r] if c in b.get(r, {})]
    return sum(x < y for x, y in pairs), len(pairs)


def paired_draws(model, lifter_model, test, config, draws: int, first) -> list[dict[str, float]]:
    """DiffPose vs the lifter alone on `draws` realisations of the test evidence (the first given)."""
    rows = []
    print("\n===== paired draws of the test evidence (P-MPJPE, mean of action x subject cells, mm)")
    for d in range(draws):
        if d == 0:
            lifter, diff = first
        else:
            offset = TEST_SEED_OFFSET + DRAW_STRIDE * d
            lifter = score_lifter(lifter_model, test, config, offset)
            diff = score_model(model, test, config.evidence, config.inference, "humaneva", offset)["diffpose"]
        won, cells = better_cells(diff, lifter)
        row = {"lifter": lifter.summary["p_mpjpe"], "diffpose": diff.summary["p_mpjpe"], "cells_better": won}
        row["difference"] = row["diffpose"] - row["lifter"]
        rows.append(row)
        print(f"draw {d}: lifter alone {row['lifter']:.2f}, DiffPose {row['diffpose']:.2f}, "
              f"difference {row['difference']:+.2f} mm; DiffPose better in {won} of {cells} cells", flush=True)
    diffs = torch.tensor([r["difference"] for r in rows], dtype=torch.float64)
    print(f"difference over {draws} draws: {diffs.mean().item():+.2f} +- {diffs.std().item():.2f} mm "
          f"(mean +- standard deviation); DiffPose better in {sum(r['difference'] < 0 for r in rows)} of {draws} draws")
    return rows


if __name__ == "__main__":
    main()
