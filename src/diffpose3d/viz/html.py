"""An interactive offline page: the photo (or the 2D keypoints) with every person's 2D skeleton
beside a 3D view of their poses, all hypotheses (faint skeletons) and joints coloured by spread on
the same fixed scale as the PNG/mp4 render (`layout.spread_scale`), animated over the frames with a
slider (play, pause, scrub), and each person's path so far (`PersonView.trajectory`).

plotly.js (about 4.8 MB) ships inside the plotly package (no CDN). A page on its own inlines it;
a folder of results shares one copy: `write_library(folder)` writes `plotly-<version>.min.js`
into the folder once (atomically; left alone when already there) and each page, written with
`library=` that name, loads it by a relative path."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from diffpose3d.io.atomic import atomic_write
from diffpose3d.metrics import hypothesis_covariance, hypothesis_spread
from diffpose3d.viz.layout import PersonView, bone_colours, spread_scale

CENTRE_COLOUR = "#555555"
TRAJECTORY_WIDTH = 4
HYPOTHESIS_COLOUR = "rgba(90,110,160,0.28)"
MAX_FRAMES = 300  # a longer video's page shows this many frames, evenly spaced
PHOTO_WIDTH = 480  # embedded frames are downscaled to this width (JPEG)
# Camera frame (x, y, z) -> plot frame (x, depth z, up -y), as in viz.render.
_TO_PLOT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _lines(points: np.ndarray, bones: list[tuple[int, int]]) -> tuple[list, list, list]:
    """x, y, z lists with None between segments (one polyline trace for many bones); `points`
    (..., J, 3) draws the bones of every pose in it."""
    xs: list = []
    ys: list = []
    zs: list = []
    for pose in np.asarray(points, float).reshape(-1, *np.shape(points)[-2:]):
        for p, j in bones:
            for axis, out in enumerate((xs, ys, zs)):
                out.extend([round(float(pose[p, axis]), 4), round(float(pose[j, axis]), 4), None])
    return xs, ys, zs


def _photo_uri(image: np.ndarray) -> tuple[str, float]:
    """A JPEG data URI of `image` at most `PHOTO_WIDTH` wide, and its pixel size in the original."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(image))
    scale = min(1.0, PHOTO_WIDTH / img.width)
    if scale < 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=75)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), image.shape[1] / img.width


def library_name() -> str:
    """The shared library's file name, versioned so that pages of another plotly never mix."""
    import plotly

    return f"plotly-{plotly.__version__}.min.js"


def write_library(folder: str | Path) -> str:
    """plotly.js, from the installed plotly package, as `folder/library_name()` (written once,
    atomically; an existing copy of the same size is kept); returns the file name."""
    from plotly.offline import get_plotlyjs

    name = library_name()
    target = Path(folder) / name
    code = get_plotlyjs().encode("utf-8")
    if not (target.is_file() and target.stat().st_size == len(code)):
        with atomic_write(target, "wb") as handle:
            handle.write(code)
    return name


def _person_traces(go, person: PersonView | None, parents, left, right, names, groups_of) -> list:
    """The 2D skeleton, three bone groups, the hypotheses, the path so far and the joints of one
    person (empty traces when the person is not in this frame, so every frame has the same traces)."""
    empty3 = {"x": [], "y": [], "z": []}
    pid = None if person is None else person.person_id
    groups = groups_of(pid)
    traces = []
    if person is not None and person.keypoints_2d is not None:
        kp = np.asarray(person.keypoints_2d, float)
        seen = np.ones(len(kp), bool) if person.confidence is None else np.asarray(person.confidence) > 0
        bones = [(p, j) for j, p in enumerate(parents) if p >= 0 and seen[j] and seen[p]]
        x, y, _ = _lines(np.concatenate([kp, np.zeros((len(kp), 1))], 1), bones)
        flat = {"x": x, "y": y}
    else:
        flat = {"x": [], "y": []}
    colour = groups[0][0] if pid is not None else CENTRE_COLOUR
    traces.append(go.Scatter(**flat, mode="lines", line={"color": colour, "width": 3}, hoverinfo="skip",
                             showlegend=False, xaxis="x", yaxis="y"))
    for group_colour, bones in groups:
        data = empty3 if person is None else dict(zip("xyz", _lines(person.placed(person.pose_3d) @ _TO_PLOT.T, bones)))
        traces.append(go.Scatter3d(**data, mode="lines", hoverinfo="skip", showlegend=False,
                                   line={"color": group_colour, "width": 7}))
    all_bones = [(p, j) for j, p in enumerate(parents) if p >= 0]
    data = empty3
    if person is not None and person.hypotheses is not None:
        data = dict(zip("xyz", _lines(person.placed(person.hypotheses) @ _TO_PLOT.T, all_bones)))
    traces.append(go.Scatter3d(**data, mode="lines", hoverinfo="skip", showlegend=False,
                               line={"color": HYPOTHESIS_COLOUR, "width": 2}))
    path = empty3
    if person is not None and person.trajectory is not None and len(person.trajectory) > 1:
        path = dict(zip("xyz", (np.round(np.asarray(person.trajectory, float) @ _TO_PLOT.T, 4).T).tolist()))
    traces.append(go.Scatter3d(**path, mode="lines", hoverinfo="skip", showlegend=False,
                               line={"color": colour, "width": TRAJECTORY_WIDTH, "dash": "dot"}))
    if person is None:
        traces.append(go.Scatter3d(**empty3, mode="markers", showlegend=False, marker={"coloraxis": "coloraxis"}))
        return traces
    spread = person.spread_mm()
    spread = np.full(len(names), np.nan) if spread is None else spread
    who = "" if pid is None else f"#{pid} "
    text = [f"{who}{n}<br>spread {s:.0f} mm" if np.isfinite(s) else f"{who}{n}" for n, s in zip(names, spread)]
    pose = person.placed(person.pose_3d) @ _TO_PLOT.T
    traces.append(go.Scatter3d(
        x=np.round(pose[:, 0], 4), y=np.round(pose[:, 1], 4), z=np.round(pose[:, 2], 4), mode="markers", text=text,
        hovertemplate="%{text}<extra></extra>", showlegend=False,
        marker={"size": 5, "color": np.round(np.nan_to_num(spread), 1), "coloraxis": "coloraxis",
                "line": {"width": 0.5, "color": "#222"}}))
    return traces


def write_page(
    path: str | Path,
    frames: Sequence[tuple[int, Sequence[PersonView], np.ndarray | None]],
    parents: Sequence[int],
    joint_names: Sequence[str],
    title: str,
    *,
    image_size: tuple[int, int] | None = None,
    left: Sequence[int] | None = None,
    right: Sequence[int] | None = None,
    fps: float = 10.0,
    spread_range_mm: tuple[float, float] | None = None,
    box: float = 1.0,
    library: str | None = None,
) -> Path:
    """An offline page of `frames`, each (frame index, its people, its photo or None). At most
    `MAX_FRAMES` frames are shown (evenly spaced). `library`: the relative path of plotly.js
    beside the page (`write_library`); None inlines it."""
    import plotly.graph_objects as go

    if len(frames) > MAX_FRAMES:
        frames = [frames[i] for i in np.linspace(0, len(frames) - 1, MAX_FRAMES).round().astype(int)]
    ids = sorted({p.person_id for _, people, _ in frames for p in people}, key=lambda i: -1 if i is None else i)
    if spread_range_mm is None:
        spreads = [p.spread_mm() for _, people, _ in frames for p in people if p.covariance is not None]
        spread_range_mm = spread_scale(np.concatenate(spreads) / 1000.0) if spreads else (0.0, 80.0)
    left_set, right_set = set(left or ()), set(right or ())

    def groups_of(pid):
        colours = bone_colours(parents, left, right, pid, centre=CENTRE_COLOUR)
        sides = (left_set, right_set, None)
        out = []
        for side in sides:
            bones = [(p, j) for j, p in enumerate(parents) if p >= 0 and (
                j in side if side is not None else j not in left_set | right_set)]
            out.append((colours[bones[0][1]] if bones else CENTRE_COLOUR, bones))
        return out

    has_photo = any(image is not None for *_, image in frames)
    figure_frames = []
    for index, people, image in frames:
        data = []
        if has_photo:
            if image is not None:
                uri, pixel = _photo_uri(image)
                data.append(go.Image(source=uri, x0=0, y0=0, dx=pixel, dy=pixel, xaxis="x", yaxis="y", hoverinfo="skip"))
            else:
                data.append(go.Image(source="", xaxis="x", yaxis="y"))
        by_id = {p.person_id: p for p in people}
        for pid in ids:
            data += _person_traces(go, by_id.get(pid), parents, left, right, joint_names, groups_of)
        figure_frames.append(go.Frame(name=str(int(index)), data=data))
    layout = _layout(go, title, figure_frames, image_size, spread_range_mm, box, fps)
    fig = go.Figure(data=figure_frames[0].data, layout=layout, frames=figure_frames if len(figure_frames) > 1 else None)
    path = Path(path)
    with atomic_write(path, "w", encoding="utf-8") as handle:
        fig.write_html(handle, include_plotlyjs=library or True, full_html=True, auto_play=False,
                       config={"responsive": True, "displaylogo": False})
    return path


def _layout(go, title, figure_frames, image_size, spread_range_mm, box, fps):
    duration = round(1000.0 / fps)
    anim = {"frame": {"duration": duration, "redraw": True}, "mode": "immediate", "transition": {"duration": 0}}
    many = len(figure_frames) > 1
    slider = {"active": 0, "currentvalue": {"prefix": "frame "}, "pad": {"t": 10}, "x": 0.08, "len": 0.9,
              "steps": [{"label": f.name, "method": "animate", "args": [[f.name], anim]} for f in figure_frames]}
    buttons = {"type": "buttons", "direction": "left", "x": 0.0, "y": 0.0, "xanchor": "left", "yanchor": "top",
               "pad": {"t": 10, "r": 10}, "showactive": False,
               "buttons": [{"label": "Play", "method": "animate", "args": [None, {**anim, "fromcurrent": True}]},
                           {"label": "Pause", "method": "animate",
                            "args": [[None], {**anim, "frame": {"duration": 0, "redraw": False}}]}]}
    axis = {"range": [-box, box], "autorange": False, "zeroline": False}
    image_axes = {"visible": False, "constrain": "domain"}
    xaxis = {**image_axes, "domain": [0.0, 0.42]}
    yaxis = {**image_axes, "domain": [0.12 if many else 0.02, 1.0], "scaleanchor": "x", "autorange": "reversed"}
    if image_size is not None:
        xaxis["range"] = [0, image_size[0]]
        yaxis = {**yaxis, "range": [image_size[1], 0], "autorange": False}
    return go.Layout(
        title={"text": title, "x": 0.01, "xanchor": "left"}, template="plotly_white", height=720, autosize=True,
        xaxis=xaxis, yaxis=yaxis,
        scene={"domain": {"x": [0.45, 0.9], "y": [0.12 if many else 0.02, 1.0]},
               "xaxis": {**axis, "title": {"text": "x (m)"}},
               "yaxis": {**axis, "title": {"text": "depth z (m)"}},
               "zaxis": {**axis, "title": {"text": "up (m)"}},
               "aspectmode": "cube",
               "camera": {"eye": {"x": 0.9, "y": -1.9, "z": 0.6}, "up": {"x": 0, "y": 0, "z": 1}}},
        coloraxis={"cmin": spread_range_mm[0], "cmax": spread_range_mm[1], "colorscale": "RdYlGn", "reversescale": True,
                   "colorbar": {"title": {"text": "spread (mm)", "side": "right"}, "thickness": 14, "len": 0.7,
                                "x": 0.93, "xanchor": "left"}},
        sliders=[slider] if many else [], updatemenus=[buttons] if many else [],
        margin={"l": 10, "r": 70, "t": 60, "b": 10})


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
    box: float = 1.0,
    spread_range_mm: tuple[float, float] | None = None,
) -> Path:
    """One person's page: `poses` (T, J, 3) and `hypotheses` (T, N, J, 3) root-relative
    camera-frame metres; `uncertainty` (T, J) per-joint spread in metres (from the hypotheses
    when None). Hovering a joint shows its name and spread in mm."""
    poses = np.asarray(poses, float)
    T, J = poses.shape[:2]
    if len(joint_names) != J or len(parents) != J:
        raise ValueError(f"poses have {J} joints but {len(joint_names)} names and {len(parents)} parents")
    if uncertainty is None and hypotheses is not None and np.shape(hypotheses)[1] > 1:
        uncertainty = hypothesis_spread(hypotheses)
    frames = []
    for t in range(T):
        cov = None
        if uncertainty is not None:  # an isotropic covariance with the given spread
            cov = np.eye(3) * (np.asarray(uncertainty, float).reshape(T, J)[t, :, None, None] ** 2)
        elif hypotheses is not None:
            cov = hypothesis_covariance(np.asarray(hypotheses, float)[t])
        hyp = None if hypotheses is None else np.asarray(hypotheses, float)[t]
        frames.append((t, [PersonView(None, None, poses[t], hyp, cov)], None))
    return write_page(path, frames, parents, joint_names, title, left=left, right=right, fps=fps,
                      spread_range_mm=spread_range_mm, box=box)
