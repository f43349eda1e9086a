"""Live: lift every person of each frame as it comes (camera, stream, or a video file at its own
frame rate), and write and/or show the frames with the skeletons and the frames/s and latency.

Latency is end to end: from the moment a frame arrived from the source (`io.live`) to the moment
its overlay is written (and shown). Frames that arrive while one is being lifted are dropped (a
live view keeps up, it does not queue). The status on each frame shows the last second's frames/s
and median latency (measured on the frames before it); the same is logged every `log_every`
seconds, and the whole run's figures are returned (`LiveReport`) and written with the result.

Outputs (one unit in the output folder, committed when the stream ends or is interrupted):
`NAME_live.mp4` (the overlay frames, at the source's frame rate), `NAME_live.jsonl` (one line a
frame: index, latency, each person's id, 3D pose and per-joint spread) and `NAME_live.json` (the
summary).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from diffpose3d.inference.api import DiffPose
from diffpose3d.io.live import LiveSource
from diffpose3d.io.results import OutputFolder

WINDOW_S = 1.0  # the status' frames/s and latency: over this last stretch (at least two frames)


@dataclass
class LiveReport:
    """A live run: frames lifted and dropped, frames/s and latency (ms), the files written."""

    source: str
    frames: int = 0
    dropped: int = 0
    seconds: float = 0.0
    frames_per_second: float = 0.0
    latency_median_ms: float = float("nan")
    latency_p90_ms: float = float("nan")
    source_fps: float = 0.0
    files: tuple[str, ...] = ()

    def summary(self) -> str:
        return (f"{self.source}: live, {self.frames} frames lifted ({self.dropped} dropped), "
                f"{self.frames_per_second:.1f} frames/s, latency {self.latency_median_ms:.0f} ms median, "
                f"{self.latency_p90_ms:.0f} ms p90 (source {self.source_fps:.0f} frames/s)"
                + (f" -> {', '.join(self.files)}" if self.files else ""))


class LiveStats:
    """Frames/s and latency over the last `WINDOW_S` seconds, and every latency of the run."""

    def __init__(self) -> None:
        self._recent: deque[tuple[float, float]] = deque()
        self.latencies: list[float] = []

    def add(self, finished: float, latency_s: float) -> None:
        self._recent.append((finished, latency_s))
        self.latencies.append(latency_s)
        while len(self._recent) > 2 and self._recent[0][0] < finished - WINDOW_S:
            self._recent.popleft()  # the last second, but never fewer than the last two frames

    def frames_per_second(self) -> float:
        if len(self._recent) < 2:
            return 0.0
        span = self._recent[-1][0] - self._recent[0][0]
        return (len(self._recent) - 1) / span if span > 0 else 0.0

    def latency_ms(self) -> float:
        return 1000.0 * float(np.median([lat for _, lat in self._recent])) if self._recent else float("nan")

    def status(self, people: int) -> str:
        fps, lat = self.frames_per_second(), self.latency_ms()
        lat_text = "--" if not np.isfinite(lat) else f"{lat:.0f}"
        return f"{fps:4.1f} frames/s  latency {lat_text} ms  {people} {'person' if people == 1 else 'people'}"


def _evidence(detections, ids, image_size, layout: str, index: int):
    """One frame's people as `Evidence2D` rows (each person a one-frame sequence of their own)."""
    from diffpose3d.evidence.detection import detection_evidence
    from diffpose3d.evidence.mixture2d import stack_mixtures
    from diffpose3d.inference.inputs import Evidence2D
    from diffpose3d.skeleton import get_skeleton

    joints = get_skeleton(layout).num_joints
    parts = [detection_evidence(d, image_size, joints) for d in detections]
    return Evidence2D(name="live", layout=layout, image_size=image_size, gmm=stack_mixtures([g for g, _ in parts]),
                      confidence=np.concatenate([c for _, c in parts]), frame_indices=np.full(len(parts), index),
                      kind="video", person_ids=np.asarray(ids, np.int64), num_frames=1)


def _frame_line(index: int, latency_s: float, result) -> str:
    people = []
    if result is not None:
        for r in range(len(result)):
            people.append({"id": int(result.person_ids[r]), "pose_3d": np.round(result.pose_3d[r], 4).tolist(),
                           "uncertainty": np.round(result.uncertainty[r], 4).tolist()})
    return json.dumps({"index": index, "latency_ms": round(1000 * latency_s, 1), "people": people})


def run_live(
    model: DiffPose,
    source: LiveSource,
    out_dir: Path | OutputFolder | None,
    name: str,
    *,
    max_people: int = 10,
    use_heatmaps: bool | None = None,
    show: Callable[[np.ndarray], None] | None = None,
    max_seconds: float | None = None,
    log: Callable[[str], None] | None = None,
    log_every: float = 1.0,
) -> LiveReport:
    """Lift `source`'s frames as they come until it ends (or `max_seconds`, or Ctrl-C); write
    the overlay video and the poses into `out_dir` (None: nothing written) and/or `show` each
    overlay frame. Returns the run's figures."""
    from diffpose3d.detect.base import detect_people
    from diffpose3d.detect.people import PersonTracker
    from diffpose3d.inference.predict import detector_factory
    from diffpose3d.viz.overlay import draw_overlay

    use_heatmaps = model.inference.heatmaps if use_heatmaps is None else use_heatmaps
    tracker = PersonTracker()
    stats = LiveStats()
    report = LiveReport(source=source.name, source_fps=source.fps)
    parents = list(model.model.skeleton.parents)
    with contextlib.ExitStack() as stack:
        sinks = _Sinks(None, f"{name}_live", source.fps)
        if out_dir is not None:
            folder = out_dir if isinstance(out_dir, OutputFolder) else stack.enter_context(OutputFolder(out_dir))
            sinks = _Sinks(folder, f"{name}_live", source.fps)
            sinks.stage = stack.enter_context(folder.result(sinks.name))
        stack.callback(sinks.close)  # before the stage is committed (last in, first out)
        detector = detector_factory(use_heatmaps, static=False, max_people=max_people)()
        stack.callback(detector.close)
        start = last_log = time.perf_counter()
        shown: list[float] = []
        try:
            for frame in source:
                size = (frame.image.shape[1], frame.image.shape[0])
                found = detect_people(detector, frame.image, max_people)
                ids = tracker.update(frame.index, [d.keypoints for d in found], [d.confidence for d in found])
                result = model.from_evidence(_evidence(found, ids, size, detector.layout, frame.index)) if found else None
                skeletons = [] if result is None else [
                    (int(result.person_ids[r]), result.keypoints_2d[r], ~result.missing[r]) for r in range(len(result))]
                overlay = draw_overlay(frame.image, skeletons, parents, stats.status(len(skeletons)))
                sinks.write(overlay)
                if show is not None:
                    show(overlay)
                now = time.perf_counter()
                latency = now - frame.arrived
                stats.add(now, latency)
                shown.append(now)
                sinks.line(_frame_line(frame.index, latency, result))
                report.frames += 1
                if log is not None and now - last_log >= log_every:
                    log(f"live: frame {frame.index}, {stats.status(len(skeletons))}, {source.dropped} dropped")
                    last_log = now
                if max_seconds is not None and now - start >= max_seconds:
                    break
        except KeyboardInterrupt:
            if log is not None:
                log("live: interrupted, writing what was lifted")
        report.seconds = time.perf_counter() - start
        report.dropped = source.dropped
        if len(shown) > 1:  # frames/s as a viewer sees them: from the first frame shown to the last
            report.frames_per_second = (len(shown) - 1) / max(shown[-1] - shown[0], 1e-9)
        if stats.latencies:
            report.latency_median_ms = 1000 * float(np.median(stats.latencies))
            report.latency_p90_ms = 1000 * float(np.percentile(stats.latencies, 90))
        report.files = sinks.finish(report)
    return report


class _Sinks:
    """The overlay video, the per-frame lines and the summary in a result's staging folder
    (`stage` None: nothing is written)."""

    def __init__(self, folder: OutputFolder | None, name: str, fps: float) -> None:
        self.folder, self.name, self.fps = folder, name, fps
        self.stage = None
        self._video = self._lines = None

    def write(self, frame: np.ndarray) -> None:
        if self.stage is None:
            return
        if self._video is None:
            from diffpose3d.io.video import VideoWriter

            self._video = VideoWriter(self.stage.path(f"{self.name}.mp4"), fps=self.fps)
            # kept open for the run's lines, closed in close()
            self._lines = open(self.stage.path(f"{self.name}.jsonl"), "w", encoding="utf-8")  # noqa: SIM115
        self._video.write(frame)

    def line(self, text: str) -> None:
        if self._lines is not None:
            self._lines.write(text + "\n")

    def finish(self, report: LiveReport) -> tuple[str, ...]:
        """Close the files and write the summary; the files' paths once committed."""
        if self.stage is None or self._video is None:
            return ()
        from diffpose3d.inference.outputs import json_safe

        self.close()
        files = (f"{self.name}.mp4", f"{self.name}.jsonl", f"{self.name}.json")
        summary = json_safe({**asdict(report), "files": list(files)})
        self.stage.path(files[2]).write_text(json.dumps(summary, indent=1, allow_nan=False))
        return tuple(str(Path(self.folder.path) / f) for f in files)

    def close(self) -> None:
        if self._video is not None:
            self._video.close()
            self._lines.close()
            self._video = self._lines = None
