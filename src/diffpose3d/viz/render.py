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

from diffpose3d.io.images import to_rgb_uint8
from diffpose3d.metrics import hypothesis_covariance, spread_from_covariance
from diffpose3d.io.atomic import atomic_write
from diffpose3d.io.video import VideoWriter

BACKGROUND = "#15171c"
PANEL = "#1d2027"
TEXT = "#d8dce3"
LEFT_COLOUR = "#4ea4ff"
RIGHT_COLOUR = "#ff8b3d"
CENTRE_COLOUR = "#e6e6e6"
SPREAD_CMAP = "RdYlGn_r"
# Camera frame (x, y, z) -> plot frame (x, depth z, up -y).
_TO_PLOT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _bone_colours(parents: Sequence[int], left: Sequence[int] | None, right: Sequence[int] | None) -> list[str]:
    left_set, right_set = set(left or ()), set(right or ())
    out = []
    for j in range(len(parents)):
        out.append(LEFT_COLOUR if j in left_set else RIGHT_COLOUR if j in right_set else CENTRE_COLOUR)
    return out


def _draw_2d(ax, image, keypoints, confidence, parents, joint_colours, threshold) -> None:
    kp = np.asarray(keypoints, dtype=float)
    conf = np.ones(len(kp)) if confidence is None else np.nan_to_num(np.asarray(confidence, float))
    valid = np.isfinite(kp).all(axis=1) & (conf > 0)
    if image is not None:
        img = to_rgb_uint8(image)
        ax.imshow(img, interpolation="bilinear")
    else:
        pts = kp[valid] if valid.any() else np.zeros((1, 2))
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = 0.15 * max(hi - lo) + 10.0
        ax.set_facecolor(PANEL)
        ax.set_xlim(lo[0] - pad, hi[0] + pad)
        ax.set_ylim(hi[1] + pad, lo[1] - pad)
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
    ax.set_aspect("equal")
    ax.set_axis_off()
    if weak.any():
        ax.text(0.01, 0.01, f"hollow: confidence < {threshold:g}", transform=ax.transAxes,
                color=TEXT, fontsize=8, alpha=0.8, va="bottom")


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
    ticks = [-box, -box / 2, 0.0, box / 2, box]
    ax.set_xlim(-box, box), ax.set_ylim(-box, box), ax.set_zlim(-box, box)
    ax.set_xticks(ticks), ax.set_yticks(ticks), ax.set_zticks(ticks)
    ax.set_xlabel("x (m)", fontsize=8, labelpad=-2)
    ax.set_ylabel("depth z (m)", fontsize=8, labelpad=-2)
    ax.set_zlabel("up (m)", fontsize=8, labelpad=1)
    ax.set_box_aspect((1, 1, 1), zoom=1.12)
    ax.view_init(elev=12, azim=-62)


def _draw_3d(ax, pose, hypotheses, covariance, parents, joint_colours, joint_names, norm, cmap,
             box: float) -> None:
    _style_3d(ax, box)
    bones = [(p, j) for j, p in enumerate(parents) if p >= 0]
    if hypotheses is not None:
        hyp = np.asarray(hypotheses, float) @ _TO_PLOT.T
        stride = max(1, len(hyp) // 24)
        segs = [hyp[n][[p, j]] for n in range(0, len(hyp), stride) for p, j in bones]
        ax.add_collection3d(Line3DCollection(segs, colors=(0.75, 0.8, 0.9, 0.07), linewidths=0.8))
        flat = hyp.reshape(-1, 3)
        ax.scatter(flat[:, 0], flat[:, 1], flat[:, 2], s=1.5, c=[(0.8, 0.85, 1.0, 0.12)],
                   depthshade=False, linewidths=0)
    mean = np.asarray(pose, float) @ _TO_PLOT.T
    if covariance is not None:
        cov = _TO_PLOT @ np.asarray(covariance, float) @ _TO_PLOT.T
        spread = spread_from_covariance(np.asarray(covariance, dtype=float)) * 1000.0
        for j in np.argsort(-spread):
            x, y, z = _ellipsoid(mean[j], cov[j])
            ax.plot_surface(x, y, z, color=cmap(norm(spread[j])), alpha=0.3, linewidth=0,
                            shade=False, antialiased=False)
        worst = int(np.argmax(spread))
        name = joint_names[worst] if joint_names is not None else f"joint {worst}"
        ax.text(*(mean[worst] + [0.0, 0.0, 0.12]), f"{name}: {spread[worst]:.0f} mm", color=TEXT,
                fontsize=8, ha="center", zorder=10,
                bbox={"boxstyle": "round,pad=0.25", "fc": BACKGROUND, "ec": "none", "alpha": 0.75})
    for p, j in bones:
        seg = mean[[p, j]]
        ax.plot(seg[:, 0], seg[:, 1], seg[:, 2], color=joint_colours[j], linewidth=3.0,
                solid_capstyle="round")
    if covariance is not None:  # joints coloured and sized by spread, readable even when tiny
        level = norm(spread_from_covariance(np.asarray(covariance, dtype=float)) * 1000.0)
        ax.scatter(mean[:, 0], mean[:, 1], mean[:, 2], s=16 + 70 * level, c=cmap(level),
                   edgecolors="black", linewidths=0.5, depthshade=False, zorder=5)
    else:
        ax.scatter(mean[:, 0], mean[:, 1], mean[:, 2], s=20, c=joint_colours, edgecolors="black",
                   linewidths=0.4, depthshade=False)


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
    spread_range_mm: tuple[float, float] = (0.0, 80.0),
    box: float = 1.0,
) -> np.ndarray:
    """Draw image + 2D skeleton (left) and 3D mean, hypotheses and 1-sigma ellipsoids (right).

    `keypoints_2d` (J, 2) px; `confidence` (J,) or None; `pose_3d` (J, 3) root-relative metres in
    the camera frame; `hypotheses` (N, J, 3); `covariance` (J, 3, 3) m^2 (estimated from the
    hypotheses when None). The colour scale and the +-`box` metre axes are fixed so video frames
    are comparable. Returns an array of shape (size[1], size[0], 3), uint8.
    """
    width, height = int(size[0]), int(size[1])
    if covariance is None and hypotheses is not None and len(hypotheses) > 1:
        covariance = hypothesis_covariance(np.asarray(hypotheses, dtype=float))
    joint_colours = _bone_colours(parents, left, right)
    dpi = 100.0
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor=BACKGROUND)
    canvas = FigureCanvasAgg(fig)
    top = 0.93 if title else 0.98
    ax2d = fig.add_axes((0.01, 0.02, 0.48, top - 0.02))
    _draw_2d(ax2d, image, keypoints_2d, confidence, parents, joint_colours, confidence_threshold)
    ax3d = fig.add_axes((0.49, 0.0, 0.43, top + 0.02), projection="3d")
    norm = colors.Normalize(*spread_range_mm, clip=True)
    cmap = matplotlib.colormaps[SPREAD_CMAP]
    _draw_3d(ax3d, pose_3d, hypotheses, covariance, parents, joint_colours, joint_names, norm, cmap, box)
    if covariance is not None:
        cax = fig.add_axes((0.945, 0.2, 0.012, 0.6))
        bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax, extend="max")
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
