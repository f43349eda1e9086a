"""One record per input of a batch, and the summary files: `batch-summary.json` and `.csv`.

The summary lists every input named, in order: `ok` (its result written by this run), `skipped`
(its complete result was already there), `failed` (with the error, one line), or `pending` (not
done yet: a summary written while the run goes on, or one a run that was stopped left). Both
files are written atomically, so a reader never sees half of one.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from diffpose3d.batch.inputs import SUMMARY_STEM
from diffpose3d.io.atomic import atomic_write, save_json_atomic

SUMMARY_SCHEMA = "diffpose3d.batch-summary/1"
CSV_COLUMNS = ("input", "status", "frames", "people", "seconds", "error", "result")
STATUSES = ("ok", "skipped", "failed", "pending")


@dataclass
class BatchRecord:
    """What became of one input."""

    input: str
    status: str  # ok | skipped | failed | pending
    frames: int = 0  # the input's frames (a photo: 1)
    people: int = 0
    seconds: float = 0.0  # this run's time on it (reading, detecting, lifting, writing)
    error: str = ""
    result: str = ""  # the result's name in the output folder (<result>.npz, <result>.json, ...)
    worker: str = ""  # host:pid of the worker that ran it
    peak_memory_mb: float = 0.0  # that worker's peak resident memory when it finished this input
    warnings: str = ""  # corrections made to the input while it was read (one line each, "; ")
    stamp: str = ""  # the input file's size and modification time when it was run ("bytes:mtime_ns")

    @classmethod
    def from_row(cls, row: dict) -> BatchRecord:
        """A record from a Ray Data row (numpy scalars -> Python values)."""
        values = {}
        for f in fields(cls):
            value = row.get(f.name, f.default)
            values[f.name] = value.item() if hasattr(value, "item") else value
        return cls(**values)


@dataclass
class Totals:
    inputs: int
    ok: int
    skipped: int
    failed: int
    pending: int
    frames: int
    seconds: float  # wall-clock seconds of this run
    workers: int

    def line(self, summary: Path) -> str:
        """The one-line total printed at the end."""
        pending = f", {self.pending} not run" if self.pending else ""
        plural = "" if self.inputs == 1 else "s"
        counts = (f"batch: {self.inputs} input{plural}: {self.ok} ok, {self.skipped} skipped, "
                  f"{self.failed} failed{pending}")
        if not self.workers:
            return f"{counts}; nothing left to run ({self.seconds:.1f} s) -> {summary}"
        rate = f", {self.frames / self.seconds:.3g} frames/s" if self.seconds > 0 else ""
        return f"{counts}; {self.frames} frames in {self.seconds:.1f} s on {self.workers} worker(s){rate} -> {summary}"


def totals(records: list[BatchRecord], seconds: float, workers: int) -> Totals:
    count = {s: sum(r.status == s for r in records) for s in STATUSES}
    frames = sum(r.frames for r in records if r.status == "ok")
    return Totals(len(records), count["ok"], count["skipped"], count["failed"], count["pending"], frames,
                  seconds, workers)


def summary_paths(out: Path) -> tuple[Path, Path]:
    return out / f"{SUMMARY_STEM}.json", out / f"{SUMMARY_STEM}.csv"


def input_stamp(path: str | Path) -> str:
    """"bytes:mtime_ns" of a file ("" when it cannot be read): a failure is remembered for this."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


def previous_failures(out: Path) -> dict[str, BatchRecord]:
    """The failed records of the summary a previous run left in `out`, by input (none when there
    is no readable summary)."""
    try:
        data = json.loads(summary_paths(out)[0].read_text(encoding="utf-8"))
        rows = data["inputs"] if data.get("schema") == SUMMARY_SCHEMA else []
        records = [BatchRecord.from_row(row) for row in rows if isinstance(row, dict)]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    return {r.input: r for r in records if r.status == "failed" and r.stamp}


def write_summary(out: Path, records: list[BatchRecord], run_id: str, total: Totals) -> Path:
    """Write both summary files (atomically); returns the CSV's path."""
    json_path, csv_path = summary_paths(out)
    save_json_atomic(json_path, {"schema": SUMMARY_SCHEMA, "run": run_id, "totals": asdict(total),
                                 "inputs": [asdict(r) for r in records]})
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        writer.writerow([r.input, r.status, r.frames, r.people, f"{r.seconds:.3f}", r.error, r.result])
    with atomic_write(csv_path, "w", encoding="utf-8") as handle:
        handle.write(text.getvalue())
    return csv_path
