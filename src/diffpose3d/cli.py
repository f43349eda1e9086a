"""The `diffpose3d` command line: thin glue, one module per subcommand in `diffpose3d.commands`.

Only the subcommand being run is imported (its options), so `diffpose3d --help` imports no
command at all. Every refusal is one line on stderr with exit code 2: bad arguments (argparse's
usage block is left out), bad input files and settings (`DiffPoseError`). Warnings about input
that was used after a correction (`io.limits.InputWarning`) are one line each too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

from diffpose3d import __version__
from diffpose3d.errors import DiffPoseError, one_line

# (subcommand, module in diffpose3d.commands, one-line help)
COMMANDS: list[tuple[str, str, str]] = [
    ("demo", "demo", "run the whole pipeline on an embedded real input and write outputs + renders"),
    ("predict", "predict", "3D poses with uncertainty of every person in an image, folder, video or keypoints file"),
    ("batch", "batch", "predict over many photos, videos or keypoints files on Ray Data (resumable; diffpose3d[batch])"),
    ("evaluate", "evaluate", "score predictions or a checkpoint on a dataset split with the published protocols"),
    ("train", "train", "train the context encoder and the diffusion denoiser from a YAML config"),
    ("fit-gmm", "fit_gmm", "fit per-joint GMMs (H_K evidence) for a whole 2D dataset file, resumable"),
    ("calibrate", "calibrate", "fit a bundle's conformal spread scaling on a calibration split"),
    ("fit-ood", "fit_ood", "fit a bundle's out-of-domain score and spread widening from its training data"),
    ("fit-miss", "fit_miss", "measure per joint what a bundle's 3D misses of a 2D source it trained on (its tolerance)"),
]

QUIET_THREADS = ("predict", "demo", "batch")  # commands run with OMP_WAIT_POLICY=PASSIVE (see main)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (`PROG: error: ...`), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def build_parser(command: str | None = "*") -> argparse.ArgumentParser:
    """The parser, with the options of `command` ("*": every command's; None: none, names only)."""
    parser = OneLineParser(
        prog="diffpose3d",
        description="Monocular 3D human pose estimation with calibrated uncertainty (DiffPose).",
    )
    parser.add_argument("--version", action="version", version=f"diffpose3d {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, module_name, help_text in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if command not in ("*", name):
            continue
        try:
            module = importlib.import_module(f"diffpose3d.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"diffpose3d.commands.{module_name}":
                raise
            continue  # command not built yet
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


_default_show = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from diffpose3d.io.limits import InputWarning

    if issubclass(category, InputWarning):
        print(f"diffpose3d: warning: {one_line(str(message))}", file=sys.stderr)
    else:
        _default_show(message, category, filename, lineno, file, line)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = {name for name, _, _ in COMMANDS}
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in QUIET_THREADS:
        # OpenMP's default (spinning) wait makes a shared or busy CPU crawl: a 1-frame predict took
        # 5 s instead of 0.5, an 1800-frame one 137 s instead of 23 (2 cores, another job running).
        # Set before torch is imported; a value the user set wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser(command if command in names else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad argument (one line printed)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    except Exception as exc:
        print(f"diffpose3d: error: {one_line(f'{type(exc).__name__}: {exc}')[:300]}", file=sys.stderr)
        return 2
    if not hasattr(args, "_run"):
        parser.print_help()
        return 1
    from diffpose3d.io.limits import InputWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", InputWarning)
        warnings.showwarning = _show_warning
        return run_command(args.command, lambda: args._run(args))


def run_command(command: str, run) -> int:
    """The one error handler every command runs under: each failure is one line on stderr.

    Refusals (`DiffPoseError`), files the system would not open or write (`OSError`) and memory
    exhaustion exit 2; anything else is a bug, reported in one line with exit 1
    (`DIFFPOSE3D_TRACEBACK=1` shows where)."""
    prefix = f"diffpose3d {command}"
    try:
        return int(run() or 0)
    except DiffPoseError as exc:
        print(f"{prefix}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{prefix}: error: out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{prefix}: error: {one_line(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return 2
    except Exception as exc:
        if os.environ.get("DIFFPOSE3D_TRACEBACK"):
            raise
        print(f"{prefix}: error: unexpected {type(exc).__name__}: {one_line(str(exc))[:300]} "
              "(a bug: please report it; DIFFPOSE3D_TRACEBACK=1 shows where)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
