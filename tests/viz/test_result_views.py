"""A video result's page: people placed at their root positions with their paths when the result
has them, side by side (root-relative) when not; plotly.js shared in the output folder."""

from __future__ import annotations

import json

import numpy as np

from diffpose3d.inference.result import PoseResult
from diffpose3d.viz.html import library_name
from diffpose3d.viz.result_views import html_result

J, N, T = 17, 3, 5
PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]


def walking_pair(with_root: bool) -> PoseResult:
    """Two people over T frames; person 1 walks 0.5 m a frame to the right, 4 m away."""
    rng = np.random.default_rng(0)
    rows = 2 * T
    pose = rng.normal(0, 0.3, (rows, J, 3))
    pose[:, 0] = 0
    result = PoseResult(
        joint_names=[f"j{j}" for j in range(J)], parents=PARENTS, pose_3d=pose,
        hypotheses=pose[:, None] + rng.normal(0, 0.02, (rows, N, J, 3)), covariance=np.tile(np.eye(3) * 1e-4, (rows, J, 1, 1)),
        uncertainty=np.full((rows, J), 0.01), keypoints_2d=rng.uniform(0, 400, (rows, J, 2)), confidence=np.ones((rows, J)),
        missing=np.zeros((rows, J), bool), lifter_3d=pose, image_size=(640, 480),
        frame_indices=np.repeat(np.arange(T), 2), meta={"layout": "h36m17"}, person_ids=np.tile([0, 1], T))
    if with_root:
        root = np.zeros((rows, 3))
        root[:, 2] = 4.0
        root[1::2, 0] = 0.5 * np.arange(T)
        root[0::2, 0] = -1.0
        result.root = root  # what a result with root positions carries (scene.trajectory)
    return result


def _figure_frames(text: str) -> list:
    start = text.index("[", text.index("Plotly.addFrames("))
    frames, _ = json.JSONDecoder().raw_decode(text[start:])
    return frames


def _dotted(frame: dict) -> list:
    return [t for t in frame["data"] if t.get("type") == "scatter3d" and t.get("line", {}).get("dash") == "dot"]


def test_root_positions_give_paths_that_grow_over_the_frames(tmp_path):
    page = html_result(walking_pair(True), None, tmp_path / "walk.html", "walk", tmp_path)
    text = page.read_text()
    assert (tmp_path / library_name()).is_file() and f'src="{library_name()}"' in text
    frames = _figure_frames(text)
    assert len(frames) == T
    last = _dotted(frames[-1])
    assert len(last) == 2 and [len(t["x"]) for t in last] == [T, T]
    walker = max(last, key=lambda t: np.ptp(t["x"]))
    assert np.allclose(np.diff(walker["x"]), 0.5, atol=1e-3)  # metres, in the camera frame's x
    assert all(len(t["x"]) == 0 for t in _dotted(frames[0]))  # one point is no path yet


def test_without_roots_no_path_and_the_library_inlined_without_a_folder(tmp_path):
    page = html_result(walking_pair(False), None, tmp_path / "rel.html", "rel")
    text = page.read_text()
    assert "plotly.js v" in text and not (tmp_path / library_name()).exists()
    assert all(len(t["x"]) == 0 for f in _figure_frames(text) for t in _dotted(f))
