"""`diffpose3d fit-ood --checkpoint DIR`: fit a bundle's out-of-domain model (`uncertainty.ood`) and
store it in the bundle as `out_of_domain.npz`.

The pose density is fitted on the bundle's training subjects' 2D as training draws it (real and
virtual cameras), the score -> widening map on its held-out subjects (`data.val_subjects`; for a
bundle trained on every subject, the takes' validation blocks) and synthetic shifts of them; no
other dataset is used. Run it after `calibrate` (the map is fitted on
top of the conformal scaling). The data files are the ones the bundle's config names, or
`--data-3d` / `--data-2d`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from diffpose3d.errors import ConfigError, InputFileError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="the bundle folder (out_of_domain.npz is written into it)")
    parser.add_argument("--data-3d", metavar="FILE", help="the training dataset's 3D file (default: the bundle config's)")
    parser.add_argument("--data-2d", metavar="FILE", help="its detections file (default: the bundle config's; 'none': without)")
    parser.add_argument("--train-samples", type=int, default=40_000,
                        help="training-like frames for the pose density (default 40000)")
    parser.add_argument("--calibration-samples", type=int, default=3000, help="held-out in-domain frames (default 3000)")
    parser.add_argument("--shift-samples", type=int, default=1500, help="frames per synthetic shift (default 1500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")


def run(args: argparse.Namespace) -> int:
    from diffpose3d.bundle import load_bundle, resolve_device
    from diffpose3d.io.atomic import save_json_atomic
    from diffpose3d.uncertainty.fit import fit_out_of_domain, widening_floor

    for flag, value, low in (("--train-samples", args.train_samples, 1000),
                             ("--calibration-samples", args.calibration_samples, 500),
                             ("--shift-samples", args.shift_samples, 100)):
        if value < low:
            raise ConfigError(f"{flag} must be >= {low}, got {value}")
    folder = Path(args.checkpoint)
    if not folder.is_dir():
        raise InputFileError(args.checkpoint, "not a bundle folder (fit-ood writes into a bundle)")
    model, info = load_bundle(folder, device=resolve_device(args.device))
    data = model.config.data
    if args.data_3d:
        data = replace(data, data_3d=args.data_3d)
    if args.data_2d:
        data = replace(data, data_2d="" if args.data_2d == "none" else args.data_2d)
    for path in (data.data_3d, data.data_2d):
        if path and not Path(path).is_file():
            raise InputFileError(path, "not found (the bundle's training data; give --data-3d / --data-2d)")
    model.config = replace(model.config, data=data)
    # fit-miss's tolerances measure the mean pose, which the widening leaves alone: they are kept
    kept = model.out_of_domain.miss_tolerance if model.out_of_domain is not None else {}
    model.out_of_domain = None
    ood, record = fit_out_of_domain(model, train_samples=args.train_samples, calibration_samples=args.calibration_samples,
                                    shift_samples=args.shift_samples, seed=args.seed,
                                    floor=widening_floor(info.get("conformal", {})))
    ood.miss_tolerance = dict(kept)
    path = ood.save(folder)
    fitted = info.get("out_of_domain", {}).get("miss_tolerance", {})
    record["miss_tolerance"] = {layout: r for layout, r in fitted.items() if layout in kept}
    info["out_of_domain"] = record
    save_json_atomic(folder / "info.json", info)
    print(json.dumps(record["sets"], indent=1))
    print(f"signals {record['signals']} weights {record['weights']}; warn at score {record['warn_at']}; written to {path}")
    return 0
