"""Predict for one input path: evidence -> lifting -> npz/json (+ renders), used by `predict` and `demo`.

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

from diffpose3d.inference.api import DiffPose
from diffpose3d.inference.inputs import Evidence2D, NoPersonFound, read_inputs, select_people
from diffpose3d.inference.outputs import stage_result
from diffpose3d.inference.result import PoseResult
from diffpose3d.io.results import OutputFolder

MAX_PEOPLE = 10


def detector_factory(use_heatmaps: bool = True, static: bool = True, max_people: int = MAX_PEOPLE):
    """A callable that builds the MediaPipe detector on demand (its import is lazy and optional)."""

    def make():
        from diffpose3d.detect import get_detector

        return get_detector("mediapipe", use_heatmaps=use_heatmaps, static_image_mode=static, max_people=max_people)

    return make


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

    def summary(self) -> str:
        """One line: frames, people, median spread, seconds, files."""
        if self.result is None:
            return f"{self.input}: {self.problem}, nothing written"
        r = self.result
        people = len(r.people)
        spread = r.uncertainty[:, 1:] * 1000.0  # joint 0, the root, is the origin: 0 by construction
        spread = spread[np.isfinite(spread)]
        median = f"median spread {np.median(spread):.0f} mm" if spread.size else "no joint seen"
        frames = int(r.meta.get("num_input_frames", r.num_frames))
        return (f"{self.input}: {_count(frames, 'frame')}, {_count(people, 'person', 'people')}, {median}, "
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


def ood_note(result: PoseResult, rows: np.ndarray) -> str:
    """A short annotation of the highest out_of_domain score of `rows` ('' without one)."""
    if result.out_of_domain is None or len(rows) == 0:
        return ""
    score = float(np.nanmax(np.asarray(result.out_of_domain, float)[rows]))
    warn_at = result.meta.get("out_of_domain_warn_at")
    flag = "  UNUSUAL INPUT" if warn_at is not None and score > float(warn_at) else ""
    return f"  out-of-domain {score:.1f}{flag}"


def predict_path(
    model: DiffPose,
    input_path: Path,
    out_dir: Path | OutputFolder,
    *,
    render: bool = False,
    html: bool = False,
    use_heatmaps: bool | None = None,
    progress: bool = True,
    source_layout: str | None = None,
    image_size: tuple[int, int] | None = None,
    max_people: int = MAX_PEOPLE,
    person: str | int = "all",
    sequence: bool = False,
    on_result: Callable[[ResultReport], None] | None = None,
) -> list[ResultReport]:
    """Write one result per input (per photo of a folder, unless `sequence`) into `out_dir` (a
    path, or an `OutputFolder` already locked); `on_result` hears about each as it is written. Raises `NoPersonFound` when nothing at all
    was found."""
    input_path = Path(input_path)
    reports: list[ResultReport] = []
    used: set[str] = set()
    folder = out_dir if isinstance(out_dir, OutputFolder) else OutputFolder(out_dir)
    with contextlib.nullcontext(folder) if folder is out_dir else folder as out:
        start = time.perf_counter()
        use_heatmaps = model.inference.heatmaps if use_heatmaps is None else use_heatmaps
        inputs = read_inputs(input_path, detector_factory(use_heatmaps, max_people=max_people), layout=model.layout,
                             source_layout=source_layout, image_size=image_size, progress=progress,
                             max_people=max_people, sequence=sequence)
        for evidence in inputs:
            if isinstance(evidence, NoPersonFound):
                report = ResultReport(Path(evidence.path), None, problem=evidence.problem)
            else:
                report = _one_result(model, out, select_people(evidence, person), _unique(evidence.name, evidence, used),
                                     render, html)
            report.seconds = time.perf_counter() - start
            start = time.perf_counter()
            reports.append(report)
            if on_result is not None:
                on_result(report)
    if not any(r.result is not None for r in reports):
        raise NoPersonFound(input_path)
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


def _one_result(model: DiffPose, out: OutputFolder, evidence: Evidence2D, name: str, render: bool,
                html: bool) -> ResultReport:
    result = model.from_evidence(evidence)
    with out.result(name) as stage:
        files = stage_result(result, stage, name, out.run_id)
        if render:
            suffix = "png" if evidence.num_frames == 1 else "mp4"
            files.append(render_result(result, evidence, stage.path(f"{name}_render.{suffix}")).name)
        if html:
            files.append(html_result(result, evidence, stage.path(f"{name}.html"), evidence.name).name)
    return ResultReport(Path(evidence.source.get("path", evidence.name)), result, [out.path / f for f in files])


def _views(result: PoseResult, rows: np.ndarray, offsets: dict[int, np.ndarray]) -> list:
    """The people of one frame's `rows` as `viz.layout.PersonView`s (a lone person of a result
    keeps the left/right colours: no id)."""
    from diffpose3d.viz.layout import PersonView

    single = len(result.people) == 1
    return [PersonView(result.keypoints_2d[r], np.where(result.missing[r], 0.0, result.confidence[r]),
                       result.pose_3d[r], result.hypotheses[r], result.covariance[r],
                       None if single else int(result.person_ids[r]), offsets.get(int(r)))
            for r in rows]


def _frames(result: PoseResult, evidence: Evidence2D | None):
    """(frame index, its rows, per-row 3D offsets) for every frame of the input (frames without
    anybody have no rows), and the 3D view's half-width for all of them."""
    from diffpose3d.viz.layout import place_people, view_box

    indices = np.unique(result.frame_indices)
    if evidence is not None and evidence.frames is not None and evidence.kind in ("video", "images"):
        indices = np.arange(max(int(evidence.num_frames), int(indices.max()) + 1))
    frames, reach = [], [result.pose_3d]
    for f in indices:
        rows = np.flatnonzero(result.frame_indices == f)
        offsets = {}
        if len(rows) > 1:
            placed = place_people(result.keypoints_2d[rows], ~result.missing[rows], result.pose_3d[rows], result.image_size)
            offsets = {int(r): placed[i] for i, r in enumerate(rows)}
            reach.append(result.pose_3d[rows] + placed[:, None])
        frames.append((int(f), rows, offsets))
    return frames, view_box(np.concatenate([np.reshape(a, (-1, 3)) for a in reach]))


def render_result(result: PoseResult, evidence: Evidence2D, path: Path) -> Path:
    """One picture for a single frame, an mp4 for several (image beside the 3D view), every
    person drawn, on the result's colour scale."""
    from diffpose3d.skeleton import get_skeleton
    from diffpose3d.viz.layout import spread_scale
    from diffpose3d.viz.render import render_people, render_video, save_image

    skeleton = get_skeleton(result.meta.get("layout", "humaneva15"))
    images = iter(()) if evidence.frames is None else evidence.frames()
    frames, box = _frames(result, evidence)
    scale = spread_scale(result.uncertainty)

    def draw():
        for f, rows, offsets in frames:
            n = len(rows)
            yield render_people(
                next(images, None), _views(result, rows, offsets), result.parents, left=skeleton.left,
                right=skeleton.right, joint_names=result.joint_names, spread_range_mm=scale, box=box,
                title=f"{evidence.name}  frame {f}  {n} {'person' if n == 1 else 'people'}  (N={result.num_hypotheses})"
                      + ood_note(result, rows),
            )

    if path.suffix == ".png":
        return save_image(path, next(draw()))
    render_video(path, draw(), fps=evidence.fps or 10.0)
    return path


def html_result(result: PoseResult, evidence: Evidence2D | None, path: Path, title: str) -> Path:
    """The interactive page: the photo (or the 2D) beside the 3D, all hypotheses, every person."""
    from diffpose3d.skeleton import get_skeleton
    from diffpose3d.viz.html import MAX_FRAMES, write_page
    from diffpose3d.viz.layout import spread_scale

    skeleton = get_skeleton(result.meta.get("layout", "humaneva15"))
    frames, box = _frames(result, None)
    if len(frames) > MAX_FRAMES:
        frames = [frames[i] for i in np.linspace(0, len(frames) - 1, MAX_FRAMES).round().astype(int)]
    wanted = {f for f, _, _ in frames}
    photos: dict[int, np.ndarray] = {}
    if evidence is not None and evidence.frames is not None:
        for t, image in enumerate(evidence.frames()):
            if t in wanted:
                photos[t] = image
            if t >= max(wanted):
                break
    pages = [(f, _views(result, rows, offsets), photos.get(f)) for f, rows, offsets in frames]
    if result.out_of_domain is not None:
        title += ood_note(result, np.arange(len(result)))
    return write_page(path, pages, result.parents, result.joint_names, title, image_size=result.image_size,
                      left=skeleton.left, right=skeleton.right, fps=(evidence.fps if evidence else 0) or 10.0,
                      spread_range_mm=spread_scale(result.uncertainty), box=box)


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

