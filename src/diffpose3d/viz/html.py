"""A self-contained interactive 3D page (plotly, inlined so it works offline) of a pose sequence."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from diffpose3d.io.atomic import atomic_write
from diffpose3d.metrics import joint_spread

LEFT_COLOUR = "#4ea4ff"
RIGHT_COLOUR = "#ff8b3d"
CENTRE_COLOUR = "#555555"
# Camera frame (x, y, z) -> plot frame (x, depth z, up -y), as in viz.render.
_TO_PLOT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _bone_lines(pose: np.ndarray, bones: list[tuple[int, int]]) -> tuple[list, list, list]:
    """x, y, z lists with None between segments (one polyline trace for many bones)."""
    xs: list = []
    ys: list = []
    zs: list = []
    for p, j in bones:
        for axis, out in enumerate((xs, ys, zs)):
            out.extend([round(float(pose[p, axis]), 4), round(float(pose[j, axis]), 4), None])
    return xs, ys, zs


def _frame_traces(pose, hyp, spread_mm, groups, names, cmax) -> list:
    import plotly.graph_objects as go

    traces = []
    for colour, bones, width in groups:
        x, y, z = _bone_lines(pose, bones)
        traces.append(go.Scatter3d(x=x, y=y, z=z, mode="lines", hoverinfo="skip", showlegend=False,
                                   line={"color": colour, "width": width}))
    if hyp is not None:
        flat = np.round(hyp.reshape(-1, 3), 4)
        traces.append(go.Scatter3d(x=flat[:, 0], y=flat[:, 1], z=flat[:, 2], mode="markers",
                                   hoverinfo="skip", showlegend=False,
                                   marker={"size": 1.6, "color": "rgba(90,110,160,0.25)"}))
    text = [f"{n}<br>spread {s:.0f} mm" if np.isfinite(s) else n for n, s in zip(names, spread_mm)]
    spread = np.nan_to_num(spread_mm)
    marker = {"size": 4 + 10 * np.clip(spread / cmax, 0, 1), "color": np.round(spread, 1),
              "colorscale": "RdYlGn", "reversescale": True, "cmin": 0, "cmax": cmax,
              "colorbar": {"title": {"text": "spread (mm)"}, "thickness": 14},
              "line": {"width": 0.5, "color": "#222"}}
    traces.append(go.Scatter3d(x=np.round(pose[:, 0], 4), y=np.round(pose[:, 1], 4),
                               z=np.round(pose[:, 2], 4), mode="markers", text=text,
                               hovertemplate="%{text}<extra></extra>", showlegend=False, marker=marker))
    return traces


def write_html(
    path: str | Path,
    poses: np.ndarray,
    hypotheses: np.ndarray | None,
    uncertainty: np.ndarray | None,
    parents: Sequence[int],
    joint_names: Sequence[str],
    title: str,
    *,
    left: Sequence[int] | None = None,
    right: Sequence[int] | None = None,
    fps: float = 10.0,
    max_hypotheses: int = 20,
    box: float = 1.0,
) -> Path:
    """Write an offline HTML page animating `poses` (T, J, 3) with a frame slider.

    Poses and `hypotheses` (T, N, J, 3) are root-relative camera-frame metres; `uncertainty`
    (T, J) is the per-joint spread in metres, sqrt(trace(Sigma) / 3) (computed from the hypotheses when None). Joints are
    sized and coloured by spread; hovering shows the joint name and spread in mm. At most
    `max_hypotheses` hypotheses per frame are drawn, as faint points.
    """
    import plotly.graph_objects as go

    poses = np.asarray(poses, float) @ _TO_PLOT.T
    T, J = poses.shape[:2]
    if len(joint_names) != J or len(parents) != J:
        raise ValueError(f"poses have {J} joints but {len(joint_names)} names and {len(parents)} parents")
    hyp = None
    if hypotheses is not None:
        hypotheses = np.asarray(hypotheses, float)
        if uncertainty is None and hypotheses.shape[1] > 1:
            uncertainty = joint_spread(hypotheses)
        step = max(1, hypotheses.shape[1] // max_hypotheses)
        hyp = hypotheses[:, ::step][:, :max_hypotheses] @ _TO_PLOT.T
    spread_mm = (np.full((T, J), np.nan) if uncertainty is None
                 else np.asarray(uncertainty, float).reshape(T, J) * 1000.0)
    finite = spread_mm[np.isfinite(spread_mm)]
    cmax = float(max(40.0, np.percentile(finite, 99))) if finite.size else 100.0

    left_set, right_set = set(left or ()), set(right or ())
    groups = [(LEFT_COLOUR, [(p, j) for j, p in enumerate(parents) if p >= 0 and j in left_set], 7),
              (RIGHT_COLOUR, [(p, j) for j, p in enumerate(parents) if p >= 0 and j in right_set], 7),
              (CENTRE_COLOUR, [(p, j) for j, p in enumerate(parents)
                               if p >= 0 and j not in left_set | right_set], 7)]
    frames = [go.Frame(name=str(t), data=_frame_traces(poses[t], None if hyp is None else hyp[t],
                                                       spread_mm[t], groups, joint_names, cmax))
              for t in range(T)]
    duration = round(1000.0 / fps)
    anim = {"frame": {"duration": duration, "redraw": True}, "mode": "immediate",
            "transition": {"duration": 0}}
    slider = {"active": 0, "currentvalue": {"prefix": "frame "}, "pad": {"t": 30},
              "steps": [{"label": str(t), "method": "animate", "args": [[str(t)], anim]}
                        for t in range(T)]}
    buttons = {"type": "buttons", "direction": "left", "x": 0.0, "y": 0.0, "xanchor": "left",
               "yanchor": "top", "pad": {"t": 30, "r": 10}, "showactive": False,
               "buttons": [{"label": "Play", "method": "animate",
                            "args": [None, {**anim, "fromcurrent": True}]},
                           {"label": "Pause", "method": "animate",
                            "args": [[None], {**anim, "frame": {"duration": 0, "redraw": False}}]}]}
    axis = {"range": [-box, box], "autorange": False, "zeroline": False}
    layout = go.Layout(
        title={"text": title}, template="plotly_white", height=720,
        scene={"xaxis": {**axis, "title": {"text": "x (m)"}},
               "yaxis": {**axis, "title": {"text": "depth z (m)"}},
               "zaxis": {**axis, "title": {"text": "up (m)"}},
               "aspectmode": "cube",
               "camera": {"eye": {"x": 0.7, "y": -1.7, "z": 0.5}, "up": {"x": 0, "y": 0, "z": 1}}},
        sliders=[slider] if T > 1 else [], updatemenus=[buttons] if T > 1 else [],
        margin={"l": 0, "r": 0, "t": 50, "b": 0})
    fig = go.Figure(data=frames[0].data, layout=layout, frames=frames if T > 1 else None)
    path = Path(path)
    with atomic_write(path, "w", encoding="utf-8") as handle:
        fig.write_html(handle, include_plotlyjs=True, full_html=True, auto_play=False)
    return path
