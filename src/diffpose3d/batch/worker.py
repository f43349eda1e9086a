"""A batch worker (one Ray actor): the model and the 2D detector loaded once, then `predict_one`
per input, exactly as `predict` runs it. Whatever an input does (a corrupt file, nobody in it,
too large, an error deep in a decoder) ends as that input's record; the worker goes on."""

from __future__ import annotations

import os
import resource
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from diffpose3d.batch.records import BatchRecord, input_stamp
from diffpose3d.errors import DiffPoseError, one_line
from diffpose3d.inference.predict import PredictSettings
from diffpose3d.io.limits import InputWarning


@dataclass(frozen=True)
class BatchJob:
    """What every worker of a batch is given (pickled to each actor)."""

    out: str  # the output folder (on a cluster: a path every node sees)
    run_id: str  # the driver's run id (the driver holds the folder's lock)
    settings: PredictSettings = field(default_factory=PredictSettings)
    checkpoint: str | None = None  # a bundled model's name or a folder (on a cluster: on every node)
    overrides: dict = field(default_factory=dict)  # inference settings: hypotheses, steps, seed, ...
    device: str = "auto"
    verbose: bool = False


def peak_memory_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KB on Linux


class BatchWorker:
    """A callable class for Ray Data's `map_batches`: rows with `input` and `name` in, one
    `BatchRecord` per row out (as columns)."""

    def __init__(self, job: BatchJob) -> None:
        from diffpose3d.detect.quiet import set_verbose
        from diffpose3d.inference.api import DiffPose
        from diffpose3d.inference.predict import KeptDetector
        from diffpose3d.io.results import OutputFolder

        set_verbose(job.verbose)
        self.job = job
        self.where = f"{socket.gethostname()}:{os.getpid()}"
        self.out = OutputFolder.joined(job.out, job.run_id)
        self.model = None
        self.problem = ""
        try:
            self.model = DiffPose.load(job.checkpoint, device=job.device, **job.overrides)
        except DiffPoseError as exc:
            self.problem = f"the model could not be loaded: {one_line(str(exc))}"
        except Exception as exc:
            self.problem = f"the model could not be loaded: {type(exc).__name__}: {one_line(str(exc))}"
        use_heatmaps = job.settings.heatmaps_for(self.model) if self.model is not None else False
        self.detector = KeptDetector(use_heatmaps, max_people=job.settings.max_people)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        records = [self.run_one(Path(str(p)), str(n)) for p, n in zip(batch["input"], batch["name"])]
        return {f.name: [getattr(r, f.name) for r in records] for f in fields(BatchRecord)}

    def run_one(self, path: Path, name: str) -> BatchRecord:
        """Input `path` as result `name`: an `ok` record, or a `failed` one with the error."""
        from diffpose3d.inference.predict import predict_one

        start = time.perf_counter()
        stamp = input_stamp(path)
        record = BatchRecord(str(path), "failed", result=name, error=self.problem)
        if self.model is not None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", InputWarning)
                try:
                    report = predict_one(self.model, path, self.out, self.job.settings, name=name,
                                         detector=self.detector)
                    record = BatchRecord(str(path), "ok", frames=report.frames, people=report.people, result=name)
                except DiffPoseError as exc:
                    record.error = one_line(str(exc))
                except MemoryError:
                    record.error = "out of memory"
                except Exception as exc:
                    record.error = f"{type(exc).__name__}: {one_line(str(exc))}"
                    self.detector.close()  # a fresh detector for the next input
            record.warnings = "; ".join(one_line(str(w.message)) for w in caught if issubclass(w.category, InputWarning))
        record.seconds = time.perf_counter() - start
        record.stamp = stamp
        record.worker = self.where
        record.peak_memory_mb = round(peak_memory_mb(), 1)
        return record

