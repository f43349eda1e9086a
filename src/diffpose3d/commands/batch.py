"""`diffpose3d batch INPUTS... --out DIR`: `predict` over many inputs on Ray Data, resumable.

Inputs are files, folders (the photos, videos and keypoints files in them) and lists of paths
(`@list.txt`, or a `.txt`). Each input's result is what `predict` writes for it. An input whose
complete result is in DIR already is skipped, so a stopped run, run again, does the rest. A
failing input gets a failed record; the others go on. Exit 0 when every input has its result,
2 when some failed. Importing this module is cheap (no torch, no Ray).
"""

from __future__ import annotations

import argparse
import sys

from diffpose3d.commands.predict import (
    add_inference_arguments,
    add_result_arguments,
    check_steps,
    int_in,
)

MAX_WORKERS = 4096


def gpu_share(text: str) -> float:
    """An argparse type: GPUs per worker, 0 to 64 (fractions share a GPU)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 64.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be between 0 and 64, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="photos, videos, keypoints .json/.npz, folders of them, or lists of paths "
                             "(@list.txt or a .txt: one path a line, relative to the list)")
    parser.add_argument("--out", required=True, help="output folder: one result per input, as predict writes it, "
                                                     "and batch-summary.json/.csv")
    parser.add_argument("--checkpoint", default=None, help="model folder, or a bundled model's name (default: h36m_frame)")
    add_inference_arguments(parser, device=False)
    parser.add_argument("--workers", type=int_in(1, MAX_WORKERS), default=None, metavar="N",
                        help="workers (Ray actors, one CPU each; each loads the model and the detector once) "
                             "(default and most: the CPUs of this machine or cluster)")
    parser.add_argument("--address", default=None,
                        help="join this Ray cluster (auto, HOST:6379 or ray://HOST:10001) (default: start Ray on "
                             "this machine); inputs, --out and --checkpoint must be paths every node sees")
    parser.add_argument("--gpus-per-worker", type=gpu_share, default=0.0, metavar="G",
                        help="GPUs each worker takes (Ray's num_gpus; default 0: the workers run on CPU)")
    add_result_arguments(parser)
    parser.add_argument("--retry-failed", action="store_true",
                        help="run again the inputs that failed in the previous run on --out (default: an input "
                             "unchanged since it failed keeps its failed record)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="also show the workers' and Ray's own log lines")


def run(args: argparse.Namespace) -> int:
    from diffpose3d.batch.inputs import expand_inputs
    from diffpose3d.batch.pipeline import run_batch
    from diffpose3d.batch.worker import BatchJob
    from diffpose3d.commands.predict import inference_overrides, predict_settings

    check_steps(args)
    inputs = expand_inputs(args.inputs)
    job = BatchJob(out=args.out, run_id="", settings=predict_settings(args), checkpoint=args.checkpoint,
                   overrides=inference_overrides(args), verbose=args.verbose)

    def failed(record) -> None:
        error = record.error if record.error.startswith(record.input) else f"{record.input}: {record.error}"
        print(f"diffpose3d batch: failed: {error}", file=sys.stderr, flush=True)

    outcome = run_batch(inputs, job, workers=args.workers, address=args.address,
                        gpus_per_worker=args.gpus_per_worker, progress=not args.quiet and sys.stderr.isatty(),
                        retry_failed=args.retry_failed, on_failure=failed)
    print(outcome.totals.line(outcome.summary), flush=True)
    return 2 if outcome.failed else 0
