"""The `diffpose3d` command line: thin glue, one module per subcommand in `diffpose3d.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from diffpose3d import __version__
from diffpose3d.errors import DiffPoseError

# (subcommand, module in diffpose3d.commands, one-line help)
COMMANDS: list[tuple[str, str, str]] = [
    ("demo", "demo", "run the whole pipeline on an embedded real input and write outputs + renders"),
    ("predict", "predict", "3D poses with uncertainty from an image, folder, video or keypoints file"),
    ("evaluate", "evaluate", "score predictions or a checkpoint on a dataset split with the published protocols"),
    ("train", "train", "train the context encoder and the diffusion denoiser from a YAML config"),
    ("fit-gmm", "fit_gmm", "fit per-joint GMMs (H_K evidence) for a whole 2D dataset file, resumable"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffpose3d",
        description="Monocular 3D human pose estimation with calibrated uncertainty (DiffPose).",
    )
    parser.add_argument("--version", action="version", version=f"diffpose3d {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in COMMANDS:
        try:
            module = importlib.import_module(f"diffpose3d.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"diffpose3d.commands.{module_name}":
                raise
            continue  # command not built yet
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
        return 1
    try:
        return int(args._run(args) or 0)
    except DiffPoseError as exc:
        print(f"diffpose3d {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"diffpose3d {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
