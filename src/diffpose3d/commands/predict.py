"""`diffpose3d predict INPUT --out DIR`: 3D poses with uncertainty from an image, folder, video or file.

Importing this module is cheap (no torch, no detector): `--help` and argument errors answer at
once. Every value is checked before any work (argparse types here, then the model's step count
from its config alone, then the output folder's lock); a bad one ends with one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MAX_HYPOTHESES = 1000
MAX_SEED = 2**32 - 1  # the video path derives per-sequence seeds from it (seed * 1_000_003 + s < 2**64)
MAX_PEOPLE = 100
MAX_SIDE = 1 << 20


def int_in(low: int, high: int, what: str = "a whole number"):
    """An argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def device_name(text: str) -> str:
    """An argparse type: "auto", or a device this machine has (cpu, cuda, cuda:1, mps)."""
    if text in ("auto", "cpu"):
        return text
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            built = "a CUDA build" if torch.version.cuda else "a build without CUDA"
            raise argparse.ArgumentTypeError(f"{text!r}: no CUDA device on this machine (torch {torch.__version__} is "
                                             f"{built}); use --device cpu")
        if device.index is not None and device.index >= count:
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {count} CUDA device(s), 0 to {count - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: no MPS device on this machine; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"{text!r}: unsupported device type (use auto, cpu, cuda, cuda:N or mps)")
    return text


def person_choice(text: str) -> str | int:
    """An argparse type: all, largest, or a person id (0, 1, ...)."""
    if text in ("all", "largest"):
        return text
    return int_in(0, 10**9, "all, largest or a person id")(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="an image, a folder of images, a video, a keypoints .json/.npz or a heatmaps .npz "
                                      "(formats: docs/INPUTS.md)")
    parser.add_argument("--out", required=True, help="output folder (gets <name>.npz, <name>.json, ... per result)")
    parser.add_argument("--checkpoint", default=None, help="model folder, or a bundled model's name (default: h36m_frame)")
    add_inference_arguments(parser)
    parser.add_argument("--render", action="store_true", help="also write a picture (image) or an mp4 (video)")
    parser.add_argument("--html", action="store_true", help="also write an interactive 3D page (offline)")
    parser.add_argument("--heatmaps", action=argparse.BooleanOptionalAction, default=None,
                        help="images and videos: H_K from the detector's heatmaps, or (--no-heatmaps) from its "
                             "keypoints + visibility (default: what the model was trained for; h36m_frame: keypoints)")
    parser.add_argument("--max-people", type=int_in(1, MAX_PEOPLE), default=10, metavar="N",
                        help="the most people lifted per image or video frame (default 10)")
    parser.add_argument("--person", type=person_choice, default="all", metavar="WHO",
                        help="all (default), largest (the person largest in the picture), or a person id")
    parser.add_argument("--sequence", action="store_true",
                        help="a folder of images is the frames of one video: one result, people tracked "
                             "(default: one result per image)")
    parser.add_argument("--layout", default=None,
                        help="joint layout of a keypoints file that does not say (coco17, blazepose33, h36m17, ...)")
    parser.add_argument("--image-size", type=int_in(1, MAX_SIDE), nargs=2, metavar=("W", "H"), default=None,
                        help="image size of a keypoints file that does not say (COCO JSON)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", action="store_true", help="also show the detector's own log lines (MediaPipe, TFLite)")


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hypotheses", type=int_in(1, MAX_HYPOTHESES), default=None, metavar="N",
                        help="N samples per frame (default: the model's, 5 for the bundled ones)")
    parser.add_argument("--steps", type=int_in(1, 10**6), default=None, metavar="S",
                        help="DDIM reverse steps, 1 to the model's K (default: the model's, 5 for the bundled ones)")
    parser.add_argument("--aggregate", choices=["mean", "median", "reprojection"], default=None,
                        help="how hypotheses become one pose (default mean)")
    parser.add_argument("--mode", choices=["diffpose", "authors"], default=None,
                        help="diffpose (the paper) or authors (the released code's deterministic refinement)")
    parser.add_argument("--seed", type=int_in(0, MAX_SEED), default=None, help=f"0 to {MAX_SEED} (default 0)")
    parser.add_argument("--backend", choices=["torch", "onnxruntime"], default=None,
                        help='run g on PyTorch (default) or ONNX Runtime (CPU, needs "diffpose3d[onnx]")')
    parser.add_argument("--device", type=device_name, default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")


def inference_overrides(args: argparse.Namespace) -> dict:
    keys = ("hypotheses", "steps", "aggregate", "mode", "seed", "backend")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def check_steps(args: argparse.Namespace) -> None:
    """`--steps` within the chosen model's K, read from its config alone (no weights loaded)."""
    if getattr(args, "steps", None) is None:
        return
    import yaml

    from diffpose3d.checkpoint import CONFIG, resolve_checkpoint
    from diffpose3d.errors import ConfigError

    try:
        values = yaml.safe_load((resolve_checkpoint(args.checkpoint) / CONFIG).read_text()) or {}
        k = int(values.get("model", {}).get("diffusion", {}).get("num_steps", 50))
    except (OSError, yaml.YAMLError, AttributeError, TypeError, ValueError):
        return  # loading the bundle names the problem with its file
    if args.steps > k:
        raise ConfigError(f"--steps {args.steps}: the model has K = {k} diffusion steps; choose 1 to {k}")


def run(args: argparse.Namespace) -> int:
    from diffpose3d.detect.quiet import set_verbose
    from diffpose3d.errors import InputFileError
    from diffpose3d.io.results import OutputFolder

    set_verbose(args.verbose)
    source = Path(args.input)
    if not source.exists():
        raise InputFileError(source, "no such file or folder")
    check_steps(args)
    with OutputFolder(args.out) as out:
        from diffpose3d.inference.api import DiffPose
        from diffpose3d.inference.predict import predict_path

        model = DiffPose.load(args.checkpoint, device=args.device, **inference_overrides(args))
        predict_path(
            model, source, out, render=args.render, html=args.html, use_heatmaps=args.heatmaps,
            progress=not args.quiet and sys.stderr.isatty(), source_layout=args.layout,
            image_size=tuple(args.image_size) if args.image_size else None, max_people=args.max_people,
            person=args.person, sequence=args.sequence, on_result=print_report,
        )
    return 0


def print_report(report) -> None:
    """A result's one-line summary on stdout; an input without anybody, one line on stderr."""
    if report.result is None:
        print(f"diffpose3d predict: warning: {report.summary()}", file=sys.stderr)
    else:
        print(report.summary(), flush=True)
        warning = report.warning()
        if warning:
            print(f"diffpose3d predict: warning: {report.input}: {warning}", file=sys.stderr)
