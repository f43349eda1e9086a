"""Render one result frame: the image with the 2D skeleton beside a 3D view with uncertainty.

Pure matplotlib on the Agg canvas (no pyplot, no display needed). 3D poses are in the camera
frame (x right, y down, z forward, metres); the 3D panel plots (x, z, -y) so up is up and depth
recedes from the viewer. Per-joint *spread* is ``sqrt(trace(Sigma) / 3)``, the RMS standard deviation per axis (as
``metrics.spread_from_covariance``), shown in millimetres.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import cm, colors
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Line3DCollection

from diffpose3d.io.atomic import atomic_write
from diffpose3d.io.images import to_rgb_uint8
from diffpose3d.io.video import VideoWriter
from diffpose3d.metrics import hypothesis_covariance
from diffpose3d.viz.layout import PersonView, bone_colours, lighter, person_colour, spread_scale

BACKGROUND = "#15171c"
PANEL = "#1d2027"
TEXT = "#d8dce3"
SPREAD_CMAP = "RdYlGn_r"
# Camera frame (x, y, z) -> plot frame (x, depth z, up -y).
_TO_PLOT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _draw_2d(ax, image, people: Sequence[PersonView], parents, left, right, threshold) -> None:
    valid_all = []
    for person in people:
        kp = np.asarray(person.keypoints_2d, dtype=float)
        conf = np.ones(len(kp)) if person.confidence is None else np.nan_to_num(np.asarray(person.confidence, float))
        valid_all.append(kp[np.isfinite(kp).all(axis=1) & (conf > 0)])
    if image is not None:
        ax.imshow(to_rgb_uint8(image), interpolation="bilinear")
    else:
        pts = np.concatenate(valid_all) if sum(len(v) for v in valid_all) else np.zeros((1, 2))
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = 0.15 * max(hi - lo) + 10.0
        ax.set_facecolor(PANEL)
        ax.set_xlim(lo[0] - pad, hi[0] + pad)
        ax.set_ylim(hi[1] + pad, lo[1] - pad)
    any_weak = False
    for person in people:
        any_weak |= _draw_person_2d(ax, person, parents, bone_colours(parents, left, right, person.person_id), threshold)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if any_weak:
        ax.text(0.01, 0.01, f"hollow: confidence < {threshold:g}", transform=ax.transAxes,
                color=TEXT, fontsize=8, alpha=0.8, va="bottom")


def _draw_person_2d(ax, person: PersonView, parents, joint_colours, threshold) -> bool:
    kp = np.asarray(person.keypoints_2d, dtype=float)
    conf = np.ones(len(kp)) if person.confidence is None else np.nan_to_num(np.asarray(person.confidence, float))
    valid = np.isfinite(kp).all(axis=1) & (conf > 0)
    segs, cols, widths = [], [], []
    for j, p in enumerate(parents):
        if p < 0 or not (valid[j] and valid[p]):
            continue
        weak = min(conf[j], conf[p]) < threshold
        segs.append(kp[[p, j]])
        cols.append(colors.to_rgba(joint_colours[j], 0.35 if weak else 0.95))
        widths.append(1.5 if weak else 3.0)
    ax.add_collection(LineCollection(segs, colors=cols, linewidths=widths, capstyle="round", zorder=3))
    strong = valid & (conf >= threshold)
    weak = valid & (conf < threshold)
    face = [joint_colours[j] for j in np.flatnonzero(strong)]
    ax.scatter(kp[strong, 0], kp[strong, 1], s=28, c=face, edgecolors="black", linewidths=0.6, zorder=4)
    edge = [colors.to_rgba(joint_colours[j], 0.7) for j in np.flatnonzero(weak)]
    ax.scatter(kp[weak, 0], kp[weak, 1], s=34, facecolors="none", edgecolors=edge, linewidths=1.4,
               linestyle=(0, (2, 1)), zorder=4)
    if person.person_id is not None and strong.any():
        top = kp[strong][np.argmin(kp[strong, 1])]
        ax.text(top[0], top[1] - 12, f"#{person.person_id}", color=person_colour(person.person_id), fontsize=9,
                ha="center", va="bottom", weight="bold", zorder=6)
    return bool(weak.any())


def _ellipsoid(center: np.ndarray, cov: np.ndarray, n: int = 14) -> tuple[np.ndarray, ...]:
    vals, vecs = np.linalg.eigh(cov)
    radii = np.sqrt(np.clip(vals, 0.0, None))
    u = np.linspace(0.0, 2.0 * np.pi, n)
    v = np.linspace(0.0, np.pi, n // 2 + 1)
    sphere = np.stack([np.outer(np.cos(u), np.sin(v)), np.outer(np.sin(u), np.sin(v)),
                       np.outer(np.ones_like(u), np.cos(v))], axis=-1)
    pts = sphere * radii @ vecs.T + center
    return pts[..., 0], pts[..., 1], pts[..., 2]


def _style_3d(ax, box: float) -> None:
    ax.set_facecolor(BACKGROUND)
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_pane_color(colors.to_rgba(PANEL, 1.0))
        axis._axinfo["grid"].update(color=(1, 1, 1, 0.08), linewidth=0.6)
        axis.label.set_color(TEXT)
        axis.set_tick_params(colors=TEXT, labelsize=7)
    ticks = np.linspace(-box, box, 5)
    ax.set_xlim(-box, box), ax.set_ylim(-box, box), ax.set_zlim(-box, box)
    ax.set_xticks(ticks), ax.set_yticks(ticks), ax.set_zticks(ticks)
    ax.set_xlabel("x (m)", fontsize=8, labelpad=-2)
    ax.set_ylabel("depth z (m)", fontsize=8, labelpad=-2)
    ax.set_zlabel("up (m)", fontsize=8, labelpad=1)
    ax.set_box_aspect((1, 1, 1), zoom=1.12)
    ax.view_init(elev=12, azim=-62)
    ax.computed_zorder = False  # drawn in the order below: ellipsoids, hypotheses, skeleton, joints


def _draw_3d(ax, people: Sequence[PersonView], parents, left, right, joint_names, norm, cmap, box: float) -> None:
    """Ellipsoids first (faint, more so the larger they are), then the hypotheses, then every
    skeleton and its joints on top, so the skeleton always shows."""
    _style_3d(ax, box)
    bones = [(p, j) for j, p in enumerate(parents) if p >= 0]
    placed = [person.placed(person.pose_3d) @ _TO_PLOT.T for person in people]
    worst = None
    for person, mean in zip(people, placed):
        spread = person.spread_mm()
        if spread is None:
            continue
        cov = _TO_PLOT @ np.asarray(person.covariance, float) @ _TO_PLOT.T
        for j in np.argsort(-spread):
            level = float(norm(spread[j]))
            x, y, z = _ellipsoid(mean[j], cov[j])
            ax.plot_surface(x, y, z, color=cmap(level), alpha=0.24 - 0.16 * level, linewidth=0, shade=False,
                            antialiased=False, zorder=1)
        j = int(np.argmax(spread))
        if worst is None or spread[j] > worst[0]:
            worst = (spread[j], mean[j], j, person.person_id)
    for person in people:
        if person.hypotheses is None:
            continue
        hyp = person.placed(person.hypotheses) @ _TO_PLOT.T
        stride = max(1, len(hyp) // 24)
        segs = [hyp[n][[p, j]] for n in range(0, len(hyp), stride) for p, j in bones]
        tint = colors.to_rgba("#c8d2e6" if person.person_id is None else lighter(person_colour(person.person_id)), 0.16)
        ax.add_collection3d(Line3DCollection(segs, colors=tint, linewidths=0.8, zorder=2))
    for person, mean in zip(people, placed):
        joint_colours = bone_colours(parents, left, right, person.person_id)
        for p, j in bones:
            seg = mean[[p, j]]
            ax.plot(seg[:, 0], seg[:, 1], seg[:, 2], color=joint_colours[j], linewidth=3.0, solid_capstyle="round",
                    zorder=4)
        spread = person.spread_mm()
        if spread is not None:  # joints coloured and sized by spread, readable even when tiny
            level = norm(spread)
            ax.scatter(mean[:, 0], mean[:, 1], mean[:, 2], s=16 + 70 * level, c=cmap(level), edgecolors="black",
                       linewidths=0.5, depthshade=False, zorder=5)
        else:
            ax.scatter(mean[:, 0], mean[:, 1], mean[:, 2], s=20, c=joint_colours, edgecolors="black",
                       linewidths=0.4, depthshade=False, zorder=5)
    if worst is not None:
        value, at, j, pid = worst
        name = joint_names[j] if joint_names is not None else f"joint {j}"
        who = "" if pid is None else f"#{pid} "
        ax.text(*(at + [0.0, 0.0, 0.12 * box]), f"{who}{name}: {value:.0f} mm", color=TEXT, fontsize=8,
                ha="center", zorder=10,
                bbox={"boxstyle": "round,pad=0.25", "fc": BACKGROUND, "ec": "none", "alpha": 0.75})


def render_frame(
    image: np.ndarray | None,
    keypoints_2d: np.ndarray,
    confidence: np.ndarray | None,
    pose_3d: np.ndarray,
    hypotheses: np.ndarray | None,
    covariance: np.ndarray | None,
    parents: Sequence[int],
    left: Sequence[int] | None = None,
    title: str | None = None,
    size: tuple[int, int] = (1280, 640),
    *,
    right: Sequence[int] | None = None,
    joint_names: Sequence[str] | None = None,
    confidence_threshold: float = 0.3,
    spread_range_mm: tuple[float, float] | None = None,
    box: float = 1.0,
) -> np.ndarray:
    """One person: image + 2D skeleton (left) and 3D mean, hypotheses and 1-sigma ellipsoids
    (right). `keypoints_2d` (J, 2) px; `confidence` (J,) or None; `pose_3d` (J, 3) root-relative
    metres in the camera frame; `hypotheses` (N, J, 3); `covariance` (J, 3, 3) m^2 (estimated from
    the hypotheses when None). See `render_people`."""
    if covariance is None and hypotheses is not None and len(hypotheses) > 1:
        covariance = hypothesis_covariance(np.asarray(hypotheses, dtype=float))
    person = PersonView(keypoints_2d, confidence, pose_3d, hypotheses, covariance)
    return render_people(image, [person], parents, left=left, right=right, title=title, size=size,
                         joint_names=joint_names, confidence_threshold=confidence_threshold,
                         spread_range_mm=spread_range_mm, box=box)


def render_people(
    image: np.ndarray | None,
    people: Sequence[PersonView],
    parents: Sequence[int],
    *,
    left: Sequence[int] | None = None,
    right: Sequence[int] | None = None,
    title: str | None = None,
    size: tuple[int, int] = (1280, 640),
    joint_names: Sequence[str] | None = None,
    confidence_threshold: float = 0.3,
    spread_range_mm: tuple[float, float] | None = None,
    box: float = 1.0,
) -> np.ndarray:
    """Every person of one frame: the image with their 2D skeletons, and a 3D view of their
    poses, hypotheses (faint) and 1-sigma ellipsoids (coloured by spread, under the skeleton).
    `spread_range_mm` (default: fitted to these people's spreads, `layout.spread_scale`) and the
    +-`box` metre axes should be fixed over a video so its frames compare. Returns an array of
    shape (size[1], size[0], 3), uint8."""
    width, height = int(size[0]), int(size[1])
    spreads = [p.spread_mm() for p in people if p.covariance is not None]
    if spread_range_mm is None:
        spread_range_mm = spread_scale(np.concatenate(spreads) / 1000.0) if spreads else (0.0, 80.0)
    dpi = 100.0
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor=BACKGROUND)
    canvas = FigureCanvasAgg(fig)
    top = 0.93 if title else 0.98
    ax2d = fig.add_axes((0.01, 0.02, 0.48, top - 0.02))
    _draw_2d(ax2d, image, people, parents, left, right, confidence_threshold)
    ax3d = fig.add_axes((0.49, 0.0, 0.43, top + 0.02), projection="3d")
    norm = colors.Normalize(*spread_range_mm, clip=True)
    cmap = matplotlib.colormaps[SPREAD_CMAP]
    _draw_3d(ax3d, people, parents, left, right, joint_names, norm, cmap, box)
    if spreads:
        over = max(float(np.max(s)) for s in spreads) > spread_range_mm[1]
        cax = fig.add_axes((0.945, 0.2, 0.012, 0.6))
        bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax, extend="max" if over else "neither")
        bar.set_label("per-joint spread (mm)", color=TEXT, fontsize=9)
        bar.ax.tick_params(colors=TEXT, labelsize=8)
        bar.outline.set_edgecolor((1, 1, 1, 0.2))
    if title:
        fig.text(0.012, 0.955, title, color=TEXT, fontsize=13, va="center", weight="bold")
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    out = np.zeros((height, width, 3), np.uint8)
    h, w = min(height, rgb.shape[0]), min(width, rgb.shape[1])
    out[:h, :w] = rgb[:h, :w]
    return out


def save_image(path: str | Path, array: np.ndarray) -> Path:
    """Write an RGB array as an image (format from the extension), atomically."""
    import imageio.v3 as iio

    path = Path(path)
    with atomic_write(path, "wb") as handle:
        iio.imwrite(handle, to_rgb_uint8(array), extension=path.suffix.lower())
    return path


def render_video(path: str | Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Encode rendered frames to `.mp4` or `.gif` (atomically); returns the number of frames."""
    with VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
        return writer.frames_written
