"""`diffpose3d predict INPUT --out DIR`: 3D poses with uncertainty from an image, folder, video or file."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffpose3d.config import InferenceConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="an image, a folder of images, a video, a keypoints .json/.npz or a heatmaps .npz")
    parser.add_argument("--out", required=True, help="output folder (gets <name>.npz and <name>.json)")
    parser.add_argument("--checkpoint", default=None, help="model folder, or a bundled model: humaneva_frame (default), humaneva_video")
    add_inference_arguments(parser)
    parser.add_argument("--render", action="store_true", help="also write a picture (image) or an mp4 (video)")
    parser.add_argument("--html", action="store_true", help="also write an interactive 3D page (offline)")
    parser.add_argument("--no-heatmaps", action="store_true", help="use detector keypoints + visibility, not heatmaps")
    parser.add_argument("--layout", default=None,
                        help="joint layout of a keypoints file that does not say (coco17, blazepose33, h36m17, ...)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), default=None,
                        help="image size of a keypoints file that does not say (COCO JSON)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    d = InferenceConfig()
    parser.add_argument("--hypotheses", type=int, default=None, help=f"N samples per frame (default {d.hypotheses})")
    parser.add_argument("--steps", type=int, default=None, help=f"DDIM reverse steps (default {d.steps})")
    parser.add_argument("--aggregate", choices=["mean", "median", "reprojection"], default=None,
                        help=f"how hypotheses become one pose (default {d.aggregate})")
    parser.add_argument("--mode", choices=["diffpose", "authors"], default=None,
                        help="diffpose (the paper) or authors (the released code's deterministic refinement)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--backend", choices=["torch", "onnxruntime"], default=None,
                        help='run g on PyTorch (default) or ONNX Runtime (CPU, needs "diffpose3d[onnx]")')
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")


def inference_overrides(args: argparse.Namespace) -> dict:
    keys = ("hypotheses", "steps", "aggregate", "mode", "seed", "backend")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def run(args: argparse.Namespace) -> int:
    from diffpose3d.inference.api import DiffPose
    from diffpose3d.inference.predict import predict_path

    model = DiffPose.load(args.checkpoint, device=args.device, **inference_overrides(args))
    written = predict_path(
        model, Path(args.input), Path(args.out), render=args.render, html=args.html,
        use_heatmaps=not args.no_heatmaps, progress=not args.quiet,
        source_layout=args.layout, image_size=tuple(args.image_size) if args.image_size else None,
    )
    for path in written:
        print(path)
    return 0
