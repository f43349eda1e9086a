"""Predict for one input path: evidence -> lifting -> npz/json (+ renders), used by `predict`, `batch`
and `demo`. `predict_one` is one result's whole work; `predict` and `batch` both call it, with the
same `PredictSettings`, so they write the same files.

Each result (a photo, a video, a keypoints file, a `sequence` of photos) is written as one unit
into the output folder (`io.results`): `<name>.npz`, `<name>.json`, `<name>_render.png|mp4`,
`<name>.html` and `<name>.manifest.json`. The render and the page share one colour scale.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diffpose3d.errors import InputFileError
from diffpose3d.inference.api import DiffPose
from diffpose3d.inference.inputs import Evidence2D, NoPersonFound, read_inputs, select_people
from diffpose3d.inference.outputs import stage_result
from diffpose3d.inference.result import PoseResult
from diffpose3d.io.results import OutputFolder
from diffpose3d.viz.result_views import html_result, render_result

MAX_PEOPLE = 10


@dataclass(frozen=True)
class PredictSettings:
    """What `predict` does with each input besides the lifting (the model's own settings, N,
    steps, seed, ..., are in `DiffPose.inference`). `predict` and `batch` pass the same ones."""

    render: bool = False  # also a picture (one frame) or an mp4
    html: bool = False  # also the interactive page
    use_heatmaps: bool | None = None  # None: what the model was trained for (`inference.heatmaps`)
    source_layout: str | None = None  # a keypoints file's layout when it does not say
    image_size: tuple[int, int] | None = None  # a keypoints file's image size when it does not say
    max_people: int = MAX_PEOPLE
    person: str | int = "all"  # all, largest, or an id
    sequence: bool = False  # a folder of photos is one video
    focal: float | None = None  # the camera's focal length in pixels (default: EXIF, else the default field of view)
    export: tuple[str, ...] = ()  # formats of `export.files` ("bvh", "gltf") written beside each result

    def heatmaps_for(self, model: DiffPose) -> bool:
        return model.inference.heatmaps if self.use_heatmaps is None else self.use_heatmaps


def detector_factory(use_heatmaps: bool = True, static: bool = True, max_people: int = MAX_PEOPLE):
    """A callable that builds the MediaPipe detector on demand (its import is lazy and optional)."""

    def make():
        from diffpose3d.detect import get_detector

        return get_detector("mediapipe", use_heatmaps=use_heatmaps, static_image_mode=static, max_people=max_people)

    return make


class KeptDetector:
    """A detector built on first use and kept for the next inputs (a batch worker's): calling it
    hands the detector out as `read_inputs` wants a factory to, and the reader's `close()` leaves
    it open; `close()` here ends it. Each input sets the detector's mode, which forgets the people
    of the previous one, so a kept detector finds what a fresh one would."""

    def __init__(self, use_heatmaps: bool, max_people: int = MAX_PEOPLE) -> None:
        self._make = detector_factory(use_heatmaps, max_people=max_people)
        self._detector = None

    def __call__(self) -> _Lent:
        if self._detector is None:
            self._detector = self._make()
        return _Lent(self._detector)

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None


class _Lent:
    """A detector whose `close()` does nothing (its owner closes it)."""

    def __init__(self, detector) -> None:
        self._detector = detector

    def __getattr__(self, name: str):
        return getattr(self._detector, name)

    def close(self) -> None:
        pass


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


@dataclass
class ResultReport:
    """What one input gave: its result (None: nobody found), the files written, the seconds."""

    input: Path
    result: PoseResult | None
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    problem: str = ""

    @property
    def frames(self) -> int:
        """The input's frames (some may hold nobody); 0 without a result."""
        return 0 if self.result is None else int(self.result.meta.get("num_input_frames", self.result.num_frames))

    @property
    def people(self) -> int:
        return 0 if self.result is None else len(self.result.people)

    def summary(self) -> str:
        """One line: frames, people, median spread, seconds, files."""
        if self.result is None:
            return f"{self.input}: {self.problem}, nothing written"
        r = self.result
        spread = r.uncertainty[:, 1:] * 1000.0  # joint 0, the root, is the origin: 0 by construction
        spread = spread[np.isfinite(spread)]
        median = f"median spread {np.median(spread):.0f} mm" if spread.size else "no joint seen"
        return (f"{self.input}: {_count(self.frames, 'frame')}, {_count(self.people, 'person', 'people')}, {median}, "
                f"{self.seconds:.1f} s -> {', '.join(str(p) for p in self.files)}")

    def warning(self) -> str:
        """One line when the input is unlike the model's training input (`ood_warning`), else ''."""
        return "" if self.result is None else ood_warning(self.result)


def ood_warning(result: PoseResult) -> str:
    """'' or one line: how many rows score above the bundle's out-of-domain warning level (the 1 %
    most unusual held-out frames), and that their spread was widened for it."""
    warn_at = result.meta.get("out_of_domain_warn_at")
    if result.out_of_domain is None or warn_at is None:
        return ""
    score = np.nan_to_num(np.asarray(result.out_of_domain, float), nan=0.0)
    high = score > float(warn_at)
    if not high.any():
        return ""
    return (f"{int(high.sum())} of {len(score)} poses look unlike the model's training input (out_of_domain up to "
            f"{score.max():.1f}, warning above {float(warn_at):.1f}): their spread is widened, trust them less")


def predict_one(
    model: DiffPose,
    input_path: str | Path,
    out: OutputFolder,
    settings: PredictSettings = PredictSettings(),
    *,
    name: str | None = None,
    detector: Callable[[], object] | None = None,
    progress: bool = False,
) -> ResultReport:
    """The whole of `predict` for an input that gives one result (a photo, a video, a keypoints
    or heatmaps file; a folder of photos with `settings.sequence`): read, detect, lift, and write
    result `name` (default: the input's stem) into `out` as one unit. `detector`: a factory for the
    2D detector (default: a fresh one for this input; `KeptDetector`: one for many inputs).
    Raises `InputFileError` (`NoPersonFound` among them) when the input gives no result."""
    start = time.perf_counter()
    input_path = Path(input_path)
    if input_path.is_dir() and not settings.sequence:
        raise InputFileError(input_path, "a folder of photos gives one result per photo (predict_path), or one "
                                         "with sequence")
    factory = detector or detector_factory(settings.heatmaps_for(model), max_people=settings.max_people)
    with contextlib.closing(_read(model, input_path, factory, settings, progress)) as inputs:
        evidence = next(inputs)
    report = _one_result(model, out, select_people(evidence, settings.person), name or evidence.name, settings)
    report.seconds = time.perf_counter() - start
    return report


def _read(model: DiffPose, path: Path, factory, settings: PredictSettings, progress: bool):
    return read_inputs(path, factory, layout=model.layout, source_layout=settings.source_layout,
                       image_size=settings.image_size, progress=progress, max_people=settings.max_people,
                       sequence=settings.sequence)


def predict_path(
    model: DiffPose,
    input_path: str | Path,
    out_dir: Path | OutputFolder,
    settings: PredictSettings = PredictSettings(),
    *,
    progress: bool = True,
    on_result: Callable[[ResultReport], None] | None = None,
) -> list[ResultReport]:
    """Write one result per input (per photo of a folder, unless `settings.sequence`) into
    `out_dir` (a path, or an `OutputFolder` already locked); `on_result` hears about each as it is
    written. A single input goes through `predict_one`. Raises `NoPersonFound` when nothing at all
    was found."""
    input_path = Path(input_path)
    folder = out_dir if isinstance(out_dir, OutputFolder) else OutputFolder(out_dir)
    with contextlib.nullcontext(folder) if folder is out_dir else folder as out:
        if not input_path.is_dir() or settings.sequence:
            reports = [predict_one(model, input_path, out, settings, progress=progress)]
            if on_result is not None:
                on_result(reports[0])
            return reports
        reports = _predict_folder(model, input_path, out, settings, progress, on_result)
    if not any(r.result is not None for r in reports):
        raise NoPersonFound(input_path)
    return reports


def _predict_folder(model: DiffPose, folder: Path, out: OutputFolder, settings: PredictSettings, progress: bool,
                    on_result: Callable[[ResultReport], None] | None) -> list[ResultReport]:
    """One result per photo of `folder`, one detector for all; a photo without anybody is
    reported and the others go on."""
    reports: list[ResultReport] = []
    used: set[str] = set()
    start = time.perf_counter()
    factory = detector_factory(settings.heatmaps_for(model), max_people=settings.max_people)
    for evidence in _read(model, folder, factory, settings, progress):
        if isinstance(evidence, NoPersonFound):
            report = ResultReport(Path(evidence.path), None, problem=evidence.problem)
        else:
            report = _one_result(model, out, select_people(evidence, settings.person),
                                 _unique(evidence.name, evidence, used), settings)
        report.seconds = time.perf_counter() - start
        start = time.perf_counter()
        reports.append(report)
        if on_result is not None:
            on_result(report)
    return reports


def _unique(name: str, evidence: Evidence2D, used: set[str]) -> str:
    """The result's file name: the input's stem, or stem_suffix when two photos share a stem."""
    if name in used:
        suffix = Path(evidence.source.get("path", name)).suffix.lstrip(".")
        name = f"{name}_{suffix}" if suffix else name
        n = 2
        while name in used:
            name, n = f"{name}_{n}", n + 1
    used.add(name)
    return name


def _one_result(model: DiffPose, out: OutputFolder, evidence: Evidence2D, name: str,
                settings: PredictSettings) -> ResultReport:
    result = model.from_evidence(evidence, focal=settings.focal)
    with out.result(name) as stage:
        files = stage_result(result, stage, name, out.run_id)
        if settings.render:
            suffix = "png" if evidence.num_frames == 1 else "mp4"
            files.append(render_result(result, evidence, stage.path(f"{name}_render.{suffix}")).name)
        if settings.html:
            files.append(html_result(result, evidence, stage.path(f"{name}.html"), evidence.name, out.path).name)
        if settings.export:
            from diffpose3d.export.files import export_result

            files += [p.name for p in export_result(result, settings.export, name=name, path_of=stage.path)]
    return ResultReport(Path(evidence.source.get("path", evidence.name)), result, [out.path / f for f in files])


def summary(result: PoseResult) -> str:
    """A few lines a person can read: which joints are most and least certain (the root, the
    origin of the root-relative poses, is left out: its spread is 0 by construction)."""
    spread_mm = result.uncertainty.astype(float) * 1000.0
    with np.errstate(all="ignore"):
        per_joint = np.nanmean(np.where(np.isfinite(spread_mm), spread_mm, np.nan), axis=0)
    names = result.joint_names
    order = [j for j in np.argsort(np.nan_to_num(per_joint, nan=np.inf)) if j != 0 and np.isfinite(per_joint[j])]
    unseen = [names[j] for j in range(1, len(names)) if result.missing[:, j].all()]
    lines = [
        f"{_count(result.num_frames, 'frame')}, {_count(len(result.people), 'person', 'people')}, {len(names)} joints, "
        f"N = {result.num_hypotheses} hypotheses ({names[0]} is the origin of every pose)",
        "most certain:  " + ", ".join(f"{names[j]} {per_joint[j]:.0f} mm" for j in order[:3]),
        "least certain: " + ", ".join(f"{names[j]} {per_joint[j]:.0f} mm" for j in order[::-1][:3]),
    ]
    if unseen:
        lines.append("not seen (no 2D evidence): " + ", ".join(unseen))
    return "\n".join(lines)

