"""`diffpose3d predict INPUT --out DIR`: 3D poses with uncertainty from an image, folder, video or file.

Importing this module is cheap (no torch, no detector): `--help` and argument errors answer at
once. Every value is checked before any work (argparse types here, then the model's step count
from its config alone, then the output folder's lock); a bad one ends with one line and exit 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

MAX_HYPOTHESES = 1000
MAX_SEED = 2**32 - 1  # the video path derives per-sequence seeds from it (seed * 1_000_003 + s < 2**64)
MAX_PEOPLE = 100
MAX_SIDE = 1 << 20
MAX_FOCAL_PX = 1e7  # as scene.intrinsics.MAX_FOCAL_PX (not imported here: it brings torch)


def _number_in(cast: type, low: float, high: float, what: str, shown):
    """An argparse type: a `cast` value in [low, high]; `shown(text, value)` is what the error names."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value <= high:
            lo, hi = (low, high) if cast is int else (f"{low:g}", f"{high:g}")
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}, got {shown(text, value)}")
        return value

    parse.__name__ = cast.__name__
    return parse


def int_in(low: int, high: int, what: str = "a whole number"):
    """An argparse type: an integer in [low, high]."""
    return _number_in(int, low, high, what, lambda text, value: value)


def float_in(low: float, high: float):
    """An argparse type: a number in [low, high]."""
    return _number_in(float, low, high, "a number", lambda text, value: text)


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


def focal_px(text: str) -> float:
    """An argparse type: a focal length in pixels, positive and finite."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a focal length in pixels, got {text!r}") from None
    if not (math.isfinite(value) and 0.0 < value <= MAX_FOCAL_PX):
        raise argparse.ArgumentTypeError(f"must be a number of pixels in (0, {MAX_FOCAL_PX:.0e}], got {text}")
    return value


def export_formats(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated export formats (bvh, gltf; glb is gltf)."""
    from diffpose3d.errors import ConfigError
    from diffpose3d.export.formats import parse_formats

    try:
        return parse_formats(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def person_choice(text: str) -> str | int:
    """An argparse type: all, largest, or a person id (0, 1, ...)."""
    if text in ("all", "largest"):
        return text
    return int_in(0, 10**9, "all, largest or a person id")(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", nargs="?", default=None,
                        help="an image, a folder of images, a video, a keypoints .json/.npz or a heatmaps .npz "
                             "(formats: docs/INPUTS.md); or a stream URL (rtsp://, http://, ...): lifted live")
    parser.add_argument("--out", required=True, help="output folder (gets <name>.npz, <name>.json, ... per result)")
    parser.add_argument("--checkpoint", default=None, help="model folder, or a bundled model's name (default: h36m_frame)")
    add_inference_arguments(parser)
    add_result_arguments(parser)
    parser.add_argument("--sequence", action="store_true",
                        help="a folder of images is the frames of one video: one result, people tracked "
                             "(default: one result per image)")
    parser.add_argument("--camera", type=int_in(0, 63), default=None, metavar="N",
                        help="live from capture device N (/dev/videoN): frames lifted as they come, written to "
                             "DIR/camera<N>_live.mp4 with frames/s and latency on them")
    parser.add_argument("--realtime", action="store_true",
                        help="a video file played at its own frame rate through the live path (frames dropped "
                             "when lifting is slower; latency and frames/s reported)")
    parser.add_argument("--show", action="store_true", help="live: also show the frames in a window (needs a display)")
    parser.add_argument("--max-seconds", type=float_in(0.1, 1e7), default=None, metavar="S",
                        help="live: stop after S seconds (default: when the stream ends, or Ctrl-C)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", action="store_true", help="also show the detector's own log lines (MediaPipe, TFLite)")


def add_inference_arguments(parser: argparse.ArgumentParser, device: bool = True) -> None:
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
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=None,
                        help="g's transformer blocks in bfloat16 or float32 (default auto: bf16 where the CPU or GPU "
                             "has it natively; poses within about 0.5 mm of float32)")
    if device:
        parser.add_argument("--device", type=device_name, default="auto",
                            help="cpu, cuda, cuda:1, ... (default: cuda if available)")


def inference_overrides(args: argparse.Namespace) -> dict:
    keys = ("hypotheses", "steps", "aggregate", "mode", "seed", "backend", "precision")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def check_steps(args: argparse.Namespace) -> None:
    """`--steps` within the chosen model's K, read from its config alone (no weights loaded)."""
    if getattr(args, "steps", None) is None:
        return
    import yaml

    from diffpose3d.bundle import CONFIG, resolve_checkpoint
    from diffpose3d.errors import ConfigError, InputFileError
    from diffpose3d.io.limits import read_bytes_bounded

    try:
        text = read_bytes_bounded(resolve_checkpoint(args.checkpoint) / CONFIG).decode("utf-8")
    except (InputFileError, UnicodeDecodeError):
        return  # loading the bundle names the problem with its file
    try:
        values = yaml.safe_load(text) or {}
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
    if is_live(args):
        return run_live(args)
    if args.input is None:
        from diffpose3d.errors import ConfigError

        raise ConfigError("predict needs an INPUT (or --camera N for a live camera)")
    source = Path(args.input)
    if not source.exists():
        raise InputFileError(source, "no such file or folder")
    check_steps(args)
    with OutputFolder(args.out) as out:
        from diffpose3d.inference.api import DiffPose
        from diffpose3d.inference.predict import predict_path

        model = DiffPose.load(args.checkpoint, device=args.device, **inference_overrides(args))
        predict_path(model, source, out, predict_settings(args), progress=not args.quiet and sys.stderr.isatty(),
                     on_result=print_report)
    return 0



def add_result_arguments(parser: argparse.ArgumentParser) -> None:
    """What `predict` and `batch` write for each input, and how they read keypoints files."""
    parser.add_argument("--render", action="store_true", help="also write a picture (image) or an mp4 (video)")
    parser.add_argument("--html", action="store_true", help="also write an interactive 3D page (offline)")
    parser.add_argument("--heatmaps", action=argparse.BooleanOptionalAction, default=None,
                        help="images and videos: H_K from the detector's heatmaps, or (--no-heatmaps) from its "
                             "keypoints + visibility (default: what the model was trained for; h36m_frame: keypoints)")
    parser.add_argument("--max-people", type=int_in(1, MAX_PEOPLE), default=10, metavar="N",
                        help="the most people lifted per image or video frame (default 10)")
    parser.add_argument("--person", type=person_choice, default="all", metavar="WHO",
                        help="all (default), largest (the person largest in the picture), or a person id")
    parser.add_argument("--layout", default=None,
                        help="joint layout of a keypoints file that does not say (coco17, blazepose33, h36m17, ...)")
    parser.add_argument("--image-size", type=int_in(1, MAX_SIDE), nargs=2, metavar=("W", "H"), default=None,
                        help="image size of a keypoints file that does not say (COCO JSON)")
    parser.add_argument("--focal", type=focal_px, default=None, metavar="PX",
                        help="the camera's focal length in pixels, for the people's root positions (default: the "
                             "photo's EXIF, else a field of view of 53.13 degrees across the longer side)")
    parser.add_argument("--export", type=export_formats, default=(), metavar="FORMATS",
                        help="also write the motion for 3D tools: bvh (<name>_person<ID>.bvh, one per person), gltf "
                             "(<name>.glb, a skeleton per person); comma-separated, e.g. bvh,gltf")


def predict_settings(args: argparse.Namespace):
    """The `PredictSettings` of the parsed options (shared with `batch`)."""
    from diffpose3d.inference.predict import PredictSettings

    return PredictSettings(
        render=args.render, html=args.html, use_heatmaps=args.heatmaps, source_layout=args.layout,
        image_size=tuple(args.image_size) if args.image_size else None, max_people=args.max_people,
        person=args.person, sequence=getattr(args, "sequence", False), focal=getattr(args, "focal", None),
        export=tuple(getattr(args, "export", None) or ()),
    )


def is_live(args: argparse.Namespace) -> bool:
    from diffpose3d.io.live import is_stream_url

    return args.camera is not None or args.realtime or (args.input is not None and is_stream_url(args.input))


def run_live(args: argparse.Namespace) -> int:
    """`--camera N`, a stream URL, or a video file `--realtime`: lifted as the frames come."""
    from diffpose3d.errors import ConfigError
    from diffpose3d.inference.live_sinks import live_name, window
    from diffpose3d.io.live import is_stream_url, open_live
    from diffpose3d.io.results import OutputFolder
    from diffpose3d.io.video import is_video

    if args.camera is not None and args.input is not None:
        raise ConfigError(f"give an INPUT ({args.input}) or --camera {args.camera}, not both")
    if args.camera is None and not is_stream_url(args.input) and not is_video(args.input):
        raise ConfigError(f"--realtime plays a video file at its frame rate; {args.input} is not a video")
    unused = [flag for flag, on in (("--render", args.render), ("--html", args.html), ("--sequence", args.sequence))
              if on]
    if unused:
        raise ConfigError(f"{', '.join(unused)}: not for a live source (it writes its own video with the overlay)")
    check_steps(args)
    target = args.camera if args.camera is not None else args.input
    name = f"camera{args.camera}" if args.camera is not None else live_name(args.input)
    show = window() if args.show else None
    with open_live(target, realtime=args.realtime) as source, OutputFolder(args.out) as out:
        from diffpose3d.inference.api import DiffPose
        from diffpose3d.inference.live import run_live as lift_live

        model = DiffPose.load(args.checkpoint, device=args.device, **inference_overrides(args))
        report = lift_live(model, source, out, name, max_people=args.max_people, use_heatmaps=args.heatmaps,
                           show=show, max_seconds=args.max_seconds,
                           log=None if args.quiet else lambda line: print(line, file=sys.stderr, flush=True))
    print(report.summary(), flush=True)
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
