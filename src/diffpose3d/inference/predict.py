"""Predict for one input path: evidence -> lifting -> npz/json (+ renders), used by `predict` and `demo`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffpose3d.inference.api import DiffPose
from diffpose3d.inference.inputs import Evidence2D, read_input
from diffpose3d.inference.outputs import write_result
from diffpose3d.inference.result import PoseResult


def detector_factory(use_heatmaps: bool = True, static: bool = True):
    """A callable that builds the MediaPipe detector on demand (its import is lazy and optional)."""

    def make():
        from diffpose3d.detect import get_detector

        return get_detector("mediapipe", use_heatmaps=use_heatmaps, static_image_mode=static)

    return make


def predict_path(
    model: DiffPose,
    input_path: Path,
    out_dir: Path,
    *,
    render: bool = False,
    html: bool = False,
    use_heatmaps: bool = True,
    progress: bool = True,
    source_layout: str | None = None,
    image_size: tuple[int, int] | None = None,
) -> list[Path]:
    """Write `<out>/<name>.npz/.json` (and renders); returns the written paths."""
    is_video = input_path.is_file() and _looks_like_video(input_path)
    evidence = read_input(
        input_path, detector_factory(use_heatmaps, static=not is_video), layout=model.layout,
        source_layout=source_layout, image_size=image_size, progress=progress,
    )
    result = model.from_evidence(evidence)
    written = list(write_result(result, out_dir, evidence.name))
    if render:
        written.append(render_result(result, evidence, out_dir))
    if html:
        written.append(html_result(result, out_dir / f"{evidence.name}.html", evidence.name))
    return written


def _looks_like_video(path: Path) -> bool:
    from diffpose3d.io.video import is_video

    return is_video(path)


def _frame_images(evidence: Evidence2D):
    if evidence.frames is None:
        return iter(())
    return evidence.frames()


def render_result(result: PoseResult, evidence: Evidence2D, out_dir: Path) -> Path:
    """One picture for a single frame, an mp4 for several (image beside the 3D view)."""
    from diffpose3d.skeleton import get_skeleton
    from diffpose3d.viz.render import render_frame, render_video, save_image

    skeleton = get_skeleton(result.meta.get("layout", "humaneva15"))
    images = _frame_images(evidence)

    def frames():
        for t in range(len(result)):
            image = next(images, None)
            yield render_frame(
                image, result.keypoints_2d[t], result.confidence[t], result.pose_3d[t],
                result.hypotheses[t], result.covariance[t], result.parents,
                left=skeleton.left, right=skeleton.right, joint_names=result.joint_names,
                title=f"{evidence.name}  frame {int(result.frame_indices[t])}  (N={result.num_hypotheses})",
            )

    if len(result) == 1:
        path = out_dir / f"{evidence.name}_render.png"
        save_image(path, next(frames()))
        return path
    path = out_dir / f"{evidence.name}_render.mp4"
    render_video(path, frames(), fps=evidence.fps or 10.0)
    return path


def html_result(result: PoseResult, path: Path, title: str) -> Path:
    from diffpose3d.skeleton import get_skeleton
    from diffpose3d.viz.html import write_html

    skeleton = get_skeleton(result.meta.get("layout", "humaneva15"))
    return write_html(
        path, result.pose_3d, result.hypotheses, result.uncertainty, result.parents,
        result.joint_names, title, left=skeleton.left, right=skeleton.right,
    )


def summary(result: PoseResult) -> str:
    """A few lines a person can read: which joints are most and least certain."""
    spread_mm = result.uncertainty.mean(axis=0) * 1000.0
    order = np.argsort(spread_mm)
    names = result.joint_names
    lines = [
        f"{len(result)} frame(s), {len(names)} joints, N = {result.num_hypotheses} hypotheses",
        "most certain:  " + ", ".join(f"{names[j]} {spread_mm[j]:.0f} mm" for j in order[:3]),
        "least certain: " + ", ".join(f"{names[j]} {spread_mm[j]:.0f} mm" for j in order[::-1][:3]),
    ]
    return "\n".join(lines)
