"""render_frame draws what it is given where it should; render_video and save_image write files."""

from __future__ import annotations

import numpy as np
from _viz_poses import HEAD, LEFT, NAMES, PARENTS, POSE, R_ANKLE, RIGHT, hypotheses, project

from diffpose3d.io.images import read_image
from diffpose3d.io.video import VideoReader
from diffpose3d.viz.render import render_frame, render_video, save_image

SIZE = (640, 320)


def _covariance(big_joint: int | None) -> np.ndarray:
    cov = np.tile(np.eye(3) * 0.01**2, (len(POSE), 1, 1))
    cov[8] *= 4.0  # thorax slightly larger, so the "most uncertain" label sits there by default
    if big_joint is not None:
        cov[big_joint] = np.eye(3) * 0.12**2
    return cov


def _render(cov=None, conf=None, image=None, **kw) -> np.ndarray:
    return render_frame(image, project(POSE), conf, POSE, None, cov, PARENTS, LEFT, size=SIZE,
                        right=RIGHT, joint_names=NAMES, **kw)


def _changed_rows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(np.abs(a.astype(int) - b).max(axis=2) > 40)
    return rows, cols


def test_size_and_not_blank():
    sigma = np.full(len(POSE), 0.02)
    out = render_frame(None, project(POSE), None, POSE, hypotheses(sigma), None, PARENTS, size=(500, 260),
                       title="t")
    assert out.shape == (260, 500, 3) and out.dtype == np.uint8
    assert len(np.unique(out.reshape(-1, 3), axis=0)) > 50


def test_uncertain_joint_region_differs_and_up_is_up():
    base = _render(_covariance(None))
    rows_head, cols_head = _changed_rows(_render(_covariance(HEAD)), base)
    rows_foot, cols_foot = _changed_rows(_render(_covariance(R_ANKLE)), base)
    assert len(rows_head) > 200 and len(rows_foot) > 200
    # The ellipsoid is drawn in the 3D (right) panel, the head's above the ankle's.
    assert cols_head.min() > SIZE[0] * 0.45 and cols_foot.min() > SIZE[0] * 0.45
    assert np.median(rows_head) < np.median(rows_foot) - 40


def test_low_confidence_changes_only_the_2d_panel():
    conf = np.full(len(POSE), 0.9)
    low = conf.copy()
    low[13] = 0.05
    _, cols = _changed_rows(_render(conf=low), _render(conf=conf))
    assert len(cols) > 10 and cols.max() < SIZE[0] * 0.5


def test_image_is_shown_in_left_panel():
    image = np.zeros((480, 640, 3), np.uint8)
    image[...] = (255, 0, 255)
    out = _render(image=image)
    magenta = (out[..., 0] > 240) & (out[..., 1] < 15) & (out[..., 2] > 240)
    cols = np.nonzero(magenta)[1]
    assert magenta.sum() > 0.2 * SIZE[0] * SIZE[1] / 2 and cols.max() < SIZE[0] * 0.5


def test_render_video_and_save_image(tmp_path):
    frames = [_render(_covariance(j)) for j in (HEAD, R_ANKLE, None)]
    assert render_video(tmp_path / "out.mp4", iter(frames), fps=5) == 3
    reader = VideoReader(tmp_path / "out.mp4")
    assert (reader.width, reader.height) == SIZE and len(list(reader)) == 3
    assert render_video(tmp_path / "out.gif", frames, fps=5) == 3
    assert len(list(VideoReader(tmp_path / "out.gif"))) == 3
    save_image(tmp_path / "frame.png", frames[0])
    assert np.array_equal(read_image(tmp_path / "frame.png"), frames[0])


def _colour_pixels(out: np.ndarray, colour: str, tol: int = 30) -> np.ndarray:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return (np.abs(out.astype(int) - rgb).max(axis=2) < tol)


def test_the_skeleton_shows_over_huge_ellipsoids():
    from diffpose3d.viz.layout import LEFT_COLOUR

    small = np.tile(np.eye(3) * 0.01**2, (len(POSE), 1, 1))
    huge = np.tile(np.eye(3) * 0.6**2, (len(POSE), 1, 1))  # 600 mm spreads, as out-of-frame joints get
    right_panel = slice(int(SIZE[0] * 0.5), int(SIZE[0] * 0.92))
    seen = [_colour_pixels(_render(cov)[:, right_panel], LEFT_COLOUR).sum() for cov in (small, huge)]
    assert seen[0] > 100 and seen[1] > 0.6 * seen[0], seen


def test_the_colour_scale_covers_the_spreads_shown():
    from diffpose3d.viz.layout import spread_scale

    assert spread_scale(np.array([[0.01, 0.02]])) == (0.0, 20.0)
    assert spread_scale(np.array([[0.0, 0.05, 0.6]]))[1] >= 600.0
    low, high = spread_scale(np.full((4, 17), 0.137))
    assert low == 0 and 137 <= high <= 150


def test_several_people_are_drawn_each_in_their_colour():
    from diffpose3d.viz.layout import PersonView, person_colour, place_people
    from diffpose3d.viz.render import render_people

    cov = np.tile(np.eye(3) * 0.01**2, (len(POSE), 1, 1))
    kp = np.stack([project(POSE) - [150, 0], project(POSE) + [150, 0]])
    offsets = place_people(kp, np.ones((2, len(POSE))), np.stack([POSE, POSE]), (640, 480))
    assert offsets[0, 0] < -0.5 < 0.5 < offsets[1, 0] and abs(offsets[:, 2]).max() < 0.1
    people = [PersonView(kp[i], None, POSE, hypotheses(np.full(len(POSE), 0.02)), cov, i, offsets[i]) for i in (0, 1)]
    out = render_people(None, people, PARENTS, left=LEFT, right=RIGHT, size=SIZE, joint_names=NAMES, box=2.0)
    half = SIZE[0] // 2
    for i in (0, 1):
        mask = _colour_pixels(out, person_colour(i))
        assert mask[:, :half].sum() > 50 and mask[:, half:].sum() > 50, i  # in the 2D and the 3D panel
