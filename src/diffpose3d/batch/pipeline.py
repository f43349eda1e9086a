"""The batch run: the inputs left to do, on Ray Data, with progress and a summary.

Ray Data runs `worker.BatchWorker` as a pool of actors (`map_batches` with an `ActorPoolStrategy`,
one input per call, one call in flight per actor so no input waits behind a long video), each
actor loading the model and the detector once. Without an address Ray starts embedded on this
machine and stops at the end; with one (`auto`, `HOST:6379`, `ray://HOST:10001`) the run joins that
cluster, whose nodes must see the inputs, the output folder and the model at the same paths. A
test or a caller that has started Ray already keeps its session.

The driver holds the output folder's lock for the whole run (workers commit results under its
run id), skips the inputs whose results are done (`resume`), and writes the summary at the end,
and every `SUMMARY_EVERY_S` seconds while the run goes on, so a run that is killed leaves one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from diffpose3d.batch.inputs import BatchInput, assign_names
from diffpose3d.batch.records import (
    BatchRecord,
    Totals,
    input_stamp,
    previous_failures,
    summary_paths,
    totals,
    write_summary,
)
from diffpose3d.batch.resume import Expected, OutputIndex
from diffpose3d.batch.worker import BatchJob, BatchWorker
from diffpose3d.errors import DiffPoseError, one_line
from diffpose3d.io.results import OutputFolder

SUMMARY_EVERY_S = 30.0
LOST = "its worker stopped on this input (a crash in a native library, or killed for memory)"


@dataclass
class BatchOutcome:
    records: list[BatchRecord]  # one per input, in the order named
    totals: Totals
    summary: Path  # the CSV (the JSON beside it)

    @property
    def failed(self) -> bool:
        return self.totals.failed > 0


def expected_result(job: BatchJob) -> Expected:
    """What a kept result must have been made with; checks the model's config and the inference
    settings on the driver (one line, before any work), without loading the weights."""
    from diffpose3d.bundle import bundle_config
    from diffpose3d.config_ranges import check_config

    _, config = bundle_config(job.checkpoint)
    inference = replace(config.inference, **job.overrides)
    check_config(replace(config, inference=inference))
    return Expected(config.name, vars(inference).copy(), job.settings.render, job.settings.html)


def run_batch(
    inputs: list[BatchInput],
    job: BatchJob,
    *,
    workers: int | None = None,
    address: str | None = None,
    gpus_per_worker: float = 0.0,
    progress: bool = True,
    retry_failed: bool = False,
    on_failure: Callable[[BatchRecord], None] | None = None,
) -> BatchOutcome:
    """Run `predict` on every input not done yet, into `job.out` (`job.run_id` becomes the run's
    own); returns every input's record. `workers`: the actor pool's size (default, and at most:
    the CPUs Ray has; an actor takes one). An input that failed in the run before, unchanged since
    (size and modification time), fails again without running, unless `retry_failed`.
    `on_failure` hears of each input that fails in this run."""
    expected = expected_result(job)
    with OutputFolder(job.out) as out:
        job = replace(job, out=str(out.path.resolve()), run_id=out.run_id)
        run = _Run(out.path, out.run_id, inputs, on_failure)
        run.look_up(OutputIndex(out.path), expected, {} if retry_failed else previous_failures(out.path))
        try:
            todo = run.todo()
            if todo:
                stream = _run_on_ray(todo, job, workers, address, gpus_per_worker, progress, run)
                with contextlib.closing(stream):  # Ray stops here, even when interrupted
                    for record in stream:
                        run.add(record)
                run.lost(todo)
        finally:
            run.write()
    return run.outcome()


class _Run:
    """The records of one batch run, and its summary files."""

    def __init__(self, out: Path, run_id: str, inputs: list[BatchInput],
                 on_failure: Callable[[BatchRecord], None] | None) -> None:
        self.out, self.run_id, self.inputs, self.on_failure = out, run_id, inputs, on_failure
        self.records: dict[Path, BatchRecord] = {}
        self.start = self.written = time.perf_counter()
        self.workers = 0
        self.csv = summary_paths(out)[1]

    def look_up(self, index: OutputIndex, expected: Expected, failed_before: dict[str, BatchRecord]) -> None:
        """Name every input's result; one done is `skipped`; one refused, or failed before and
        unchanged, `failed`; the rest `pending`."""
        names = assign_names([i.path for i in self.inputs if not i.problem], index.owner)
        for item in self.inputs:
            if item.problem:
                self.add(BatchRecord(str(item.path), "failed", error=f"{item.path}: {item.problem}"))
                continue
            name = names[item.path]
            record = index.done(item.path, name, expected)
            before = failed_before.get(str(item.path))
            if record is None and before is not None and before.stamp == input_stamp(item.path):
                record = replace(before, seconds=0.0, result=name)
            self.records[item.path] = record or BatchRecord(str(item.path), "pending", result=name)

    def todo(self) -> list[BatchRecord]:
        return [r for r in self.records.values() if r.status == "pending"]

    def add(self, record: BatchRecord) -> None:
        self.records[Path(record.input)] = record
        if record.status == "failed" and self.on_failure is not None:
            self.on_failure(record)
        if time.perf_counter() - self.written > SUMMARY_EVERY_S:
            self.write()

    def lost(self, todo: list[BatchRecord]) -> None:
        """Inputs the pipeline gave nothing back for (Ray drops the input of a worker that died)."""
        for record in todo:
            if self.records[Path(record.input)].status == "pending":
                self.add(replace(record, status="failed", error=LOST))

    def listed(self) -> list[BatchRecord]:
        return [self.records[i.path] for i in self.inputs]

    def totals(self) -> Totals:
        return totals(self.listed(), time.perf_counter() - self.start, self.workers)

    def write(self) -> None:
        write_summary(self.out, self.listed(), self.run_id, self.totals())
        self.written = time.perf_counter()

    def outcome(self) -> BatchOutcome:
        return BatchOutcome(self.listed(), self.totals(), self.csv)


def _run_on_ray(todo: list[BatchRecord], job: BatchJob, workers: int | None, address: str | None,
                gpus_per_worker: float, progress: bool, run: _Run):
    """The records of `todo`'s inputs as the actors finish them (in no particular order)."""
    ray = _import_ray()
    with contextlib.ExitStack() as stack:
        if not job.verbose:
            stack.enter_context(_native_stderr_hidden())
        yield from _on_ray(ray, todo, job, workers, address, gpus_per_worker, progress, run)


def _on_ray(ray, todo: list[BatchRecord], job: BatchJob, workers: int | None, address: str | None,
            gpus_per_worker: float, progress: bool, run: _Run):
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=job.verbose,
                     logging_level=logging.INFO if job.verbose else logging.ERROR)
        except Exception as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise DiffPoseError(f"cannot start or join {where} ({type(exc).__name__}: {one_line(str(exc))})") from None
    try:
        run.workers = pool_size(workers, int(ray.cluster_resources().get("CPU", 1)), len(todo))
        yield from _stream(todo, job, run.workers, gpus_per_worker, progress)
    finally:
        if started:
            ray.shutdown()


def pool_size(requested: int | None, cpus: int, inputs: int) -> int:
    """Actors to start: as requested, at most one per CPU Ray has and one per input; at least 1."""
    return max(1, min(requested or cpus, cpus, inputs))


def _stream(todo: list[BatchRecord], job: BatchJob, workers: int, gpus_per_worker: float, progress: bool):
    import ray.data
    from tqdm.auto import tqdm

    if not job.verbose:
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours is over inputs and frames
    context.print_on_execution_start = False
    context.max_errored_blocks = -1  # an actor that dies loses its input, not the run
    context.execution_no_progress_timeout_s = -1  # one long video is no stall
    rows = [{"input": r.input, "name": r.result} for r in todo]
    with warnings.catch_warnings():
        # max_restarts / max_task_retries have no named parameter in Ray 2.60 (the extra pins it):
        # a worker that dies is restarted, and its input is not tried again (it is the likely cause)
        warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            BatchWorker, fn_constructor_args=(job,), batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
            num_cpus=1, num_gpus=gpus_per_worker or None, max_restarts=-1, max_task_retries=0,
            runtime_env={"env_vars": {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}},
        )
    frames, start = 0, time.perf_counter()
    with tqdm(total=len(todo), desc="batch", unit="input", disable=not progress, file=sys.stderr) as bar:
        for row in dataset.iter_rows():
            record = BatchRecord.from_row(row)
            frames += record.frames
            bar.update(1)
            bar.set_postfix(frames=frames, fps=f"{frames / max(time.perf_counter() - start, 1e-9):.1f}", refresh=False)
            yield record


@contextlib.contextmanager
def _native_stderr_hidden():
    """Ray's C++ core writes log lines (warnings about its own settings) straight to file
    descriptor 2: within the block, descriptor 2 goes to /dev/null while Python's `sys.stderr`
    (the progress bar, the lines about failed inputs, warnings) keeps writing to the terminal."""
    try:
        sys.stderr.flush()
        real = sys.stderr.fileno() == 2
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no descriptor 2 (captured, embedded): nothing to hide
        yield
        return
    stream = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                       errors="backslashreplace")
    devnull = os.open(os.devnull, os.O_WRONLY)
    before = sys.stderr
    try:
        if real:
            sys.stderr = stream
        os.dup2(devnull, 2)
        yield
    finally:
        stream.flush()
        os.dup2(saved, 2)
        sys.stderr = before
        for fd in (saved, devnull):
            os.close(fd)
        stream.close()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise DiffPoseError("batch runs on Ray: pip install 'diffpose3d[batch]'") from None
    return ray
