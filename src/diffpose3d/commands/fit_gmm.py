"""`diffpose3d fit-gmm --data-2d FILE --out FILE`: per-joint 2D GMMs for a whole dataset, resumable
(the engine and the file layouts: `data.gmm_fitting`)."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from diffpose3d.config import SyntheticDetectorConfig

# The synthetic detector's settings, as flags named after `evidence.synthetic`'s fields.
SYNTHETIC_FLAGS = ("noise_px", "swap_prob", "occlusion_prob", "occlusion_scale", "secondary_weight", "min_std_px")


def thread_count(text: str) -> int:
    """An argparse type: 0 (torch's default) or 1 to this machine's CPU count."""
    from diffpose3d.config_ranges import max_threads

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= max_threads():
        raise argparse.ArgumentTypeError(f"must be 0 (torch's default) or 1 to {max_threads()} (this machine's CPUs), "
                                         f"got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from diffpose3d.data.gmm_fitting import DATASETS, GmmFitSettings

    d = GmmFitSettings(data_2d="", out="")
    parser.add_argument("--data-2d", required=True, help="2D keypoints file (VideoPose3D layout, .npz)")
    parser.add_argument("--heatmaps", help="optional heatmaps file (see docs); default: synthetic detector")
    parser.add_argument("--dataset", choices=DATASETS, default=d.dataset,
                        help="sets the image size per camera (custom: give --image-size)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), help="image size for --dataset custom")
    parser.add_argument("--components", type=int, default=d.components, help=f"kernels K per joint (default {d.components})")
    synthetic = SyntheticDetectorConfig()
    for name in SYNTHETIC_FLAGS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(synthetic, name),
                            help=f"synthetic detector: evidence.synthetic.{name} (default {getattr(synthetic, name)})")
    parser.add_argument("--top-k", type=int, default=d.top_k, help="heatmap pixels kept per joint for EM")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--chunk-frames", type=int, default=d.chunk_frames, help="frames per resumable chunk")
    parser.add_argument("--threads", type=thread_count, default=0,
                        help="torch CPU threads (0 = torch default; 1 is fastest on a busy, shared CPU)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--out", required=True, help="output .npz (authors' GMM layout)")
    parser.add_argument("--stop-after-chunks", type=int, default=None, help=argparse.SUPPRESS)  # test hook


def run(args: argparse.Namespace) -> int:
    import torch

    from diffpose3d.data.gmm_fitting import GmmFitSettings, fit_dataset, parts_dir

    synthetic = dataclasses.replace(SyntheticDetectorConfig(), **{n: getattr(args, n) for n in SYNTHETIC_FLAGS})
    settings = GmmFitSettings(
        data_2d=args.data_2d, out=args.out, heatmaps=args.heatmaps, dataset=args.dataset,
        image_size=tuple(args.image_size) if args.image_size else None, components=args.components,
        top_k=args.top_k, seed=args.seed, chunk_frames=args.chunk_frames, synthetic=synthetic,
    )
    threads = torch.get_num_threads()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    try:
        finished = fit_dataset(settings, progress=not args.no_progress, stop_after_chunks=args.stop_after_chunks)
    finally:
        torch.set_num_threads(threads)
    if not finished:
        print(f"stopped early; rerun the same command to resume from {parts_dir(Path(args.out))}")
        return 1
    print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0
