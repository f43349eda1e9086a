"""Pictures of a `PoseResult`: a rendered image or video (`render_result`) and the interactive page
(`html_result`), every person drawn, on the result's colour scale. `inference.predict` calls these
after it has run the pipeline; they only draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from diffpose3d.inference.inputs import Evidence2D
    from diffpose3d.inference.result import PoseResult


def ood_note(result: PoseResult, rows: np.ndarray) -> str:
    """A short annotation of the highest out_of_domain score of `rows` ('' without one)."""
    if result.out_of_domain is None or len(rows) == 0:
        return ""
    score = float(np.nanmax(np.asarray(result.out_of_domain, float)[rows]))
    warn_at = result.meta.get("out_of_domain_warn_at")
    flag = "  UNUSUAL INPUT" if warn_at is not None and score > float(warn_at) else ""
    return f"  out-of-domain {score:.1f}{flag}"


def _views(result: PoseResult, rows: np.ndarray, offsets: dict[int, np.ndarray],
           paths: dict[int, np.ndarray] | None = None) -> list:
    """The people of one frame's `rows` as `viz.layout.PersonView`s (a lone person of a result
    keeps the left/right colours: no id); `paths`: each row's person's trajectory so far."""
    from diffpose3d.viz.layout import PersonView

    single = len(result.people) == 1
    paths = paths or {}
    return [PersonView(result.keypoints_2d[r], np.where(result.missing[r], 0.0, result.confidence[r]),
                       result.pose_3d[r], result.hypotheses[r], result.covariance[r],
                       None if single else int(result.person_ids[r]), offsets.get(int(r)), paths.get(int(r)))
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


def _placed_by_root(result: PoseResult, frames: list) -> tuple[list, float] | None:
    """`frames` with each row placed at its root (camera frame, relative to the mean of all
    roots) and each person's path up to the frame, when the result has root positions (else None),
    and the 3D view's half-width."""
    from diffpose3d.viz.layout import view_box

    root = getattr(result, "root", None)
    if root is None or not np.isfinite(root).all(-1).any():
        return None
    root = np.asarray(root, np.float64)
    centre = np.nanmean(root[np.isfinite(root).all(-1)], axis=0)
    placed = []
    for f, rows, _ in frames:
        offsets = {int(r): root[r] - centre for r in rows if np.isfinite(root[r]).all()}
        paths = {}
        for r in rows:
            mine = (result.person_ids == result.person_ids[r]) & (result.frame_indices <= f) & np.isfinite(root).all(-1)
            paths[int(r)] = root[mine] - centre
        placed.append((f, rows, offsets, paths))
    reach = [result.pose_3d + (root - centre)[:, None], (root - centre)[:, None]]
    return placed, view_box(np.concatenate([np.reshape(a, (-1, 3)) for a in reach]))


def html_result(result: PoseResult, evidence: Evidence2D | None, path: Path, title: str,
                library_dir: Path | None = None) -> Path:
    """The interactive page: the photo (or the 2D) beside the 3D, all hypotheses, every person;
    with root positions each person stands there and leaves a path over the frames (else the
    root-relative people side by side). `library_dir`: plotly.js is written there once and the
    page refers to it (None: inlined)."""
    from diffpose3d.skeleton import get_skeleton
    from diffpose3d.viz.html import MAX_FRAMES, write_library, write_page
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
    by_root = _placed_by_root(result, frames)
    if by_root is None:
        pages = [(f, _views(result, rows, offsets), photos.get(f)) for f, rows, offsets in frames]
    else:
        placed, box = by_root
        pages = [(f, _views(result, rows, offsets, paths), photos.get(f)) for f, rows, offsets, paths in placed]
    library = None if library_dir is None else write_library(library_dir)
    if result.out_of_domain is not None:
        title += ood_note(result, np.arange(len(result)))
    return write_page(path, pages, result.parents, result.joint_names, title, image_size=result.image_size,
                      left=skeleton.left, right=skeleton.right, fps=(evidence.fps if evidence else 0) or 10.0,
                      spread_range_mm=spread_scale(result.uncertainty), box=box, library=library)
