"""`diffpose3d fit-miss --checkpoint DIR --dataset NAME --data-3d FILE --data-2d FILE [filters]`: measure
what a bundle's 3D misses of a 2D source it trained on, per joint, on held-out frames, and store it
in the bundle's out-of-domain model as that source's layout's tolerance
(`uncertainty.reprojection`): the reprojection widening then grows a joint's spread only where it
misses by more than that.

Use frames the bundle neither trained nor is scored on (the frames `calibrate` uses, e.g.
`--block test --stride 8 --offset 6`); run it after `fit-ood` (which keeps what it stores).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from diffpose3d.commands.calibrate import add_split_arguments, split_cut
from diffpose3d.commands.evaluate import sequences_to_score
from diffpose3d.commands.predict import device_name
from diffpose3d.errors import ConfigError, InputFileError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="the bundle folder (its out_of_domain.npz is rewritten)")
    add_split_arguments(parser)
    parser.add_argument("--quantile", type=float, default=0.97,
                        help="the tolerance is this quantile of the misses (default 0.97)")
    parser.add_argument("--device", type=device_name, default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from diffpose3d.bundle import load_bundle, resolve_device
    from diffpose3d.evaluation.scoring import TEST_SEED_OFFSET, frames_to_score
    from diffpose3d.inference.lifting import predict_frames
    from diffpose3d.io.atomic import save_json_atomic
    from diffpose3d.uncertainty.reprojection import excess_miss, fit_tolerance

    if not 0.0 < args.quantile < 1.0:
        raise ConfigError(f"--quantile must be in (0, 1), got {args.quantile}")
    cut = split_cut(args)
    folder = Path(args.checkpoint)
    if not folder.is_dir():
        raise InputFileError(args.checkpoint, "not a bundle folder (fit-miss writes into a bundle)")
    model, info = load_bundle(folder, device=resolve_device(args.device))
    if model.out_of_domain is None:
        raise InputFileError(folder, "has no out_of_domain.npz: run `diffpose3d fit-ood` on it first")
    sequences = sequences_to_score(args)
    layouts = sorted({s.skeleton for s in sequences})
    if len(layouts) != 1:
        raise ConfigError(f"the sequences mix 2D layouts {layouts}: fit one 2D source at a time")
    evidence = replace(model.config.evidence, source="keypoints")
    frames = frames_to_score(model, sequences, evidence, cut, TEST_SEED_OFFSET // 2)
    inference = replace(model.config.inference, widen_off_domain=False, reprojection_widening=0.0)
    pose = predict_frames(model, frames, inference).pose
    miss = excess_miss(pose, frames.keypoints_uv.numpy(), frames.uv_gmm, frames.focal.numpy())
    tolerance = fit_tolerance(miss, args.quantile)
    model.out_of_domain.miss_tolerance[layouts[0]] = tolerance
    path = model.out_of_domain.save(folder)
    record = {"frames": len(frames), "quantile": args.quantile, "data_2d": args.data_2d or "projected 3D",
              "tolerance_mm": [round(float(t) * 1000, 1) for t in tolerance]}
    info.setdefault("out_of_domain", {}).setdefault("miss_tolerance", {})[layouts[0]] = record
    save_json_atomic(folder / "info.json", info)
    names = model.skeleton.joint_names
    print(f"{layouts[0]}: the {args.quantile:.0%} miss on {len(frames)} frames, mm: "
          + ", ".join(f"{n} {t * 1000:.0f}" for n, t in zip(names, tolerance)) + f"; written to {path}")
    print(f"median miss {np.median(miss) * 1000:.1f} mm over all joints")
    return 0
