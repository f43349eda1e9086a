"""write_html makes one offline page holding plotly.js, every frame and the joint names."""

from __future__ import annotations

import re

import numpy as np
from _viz_poses import LEFT, NAMES, PARENTS, POSE, RIGHT, hypotheses

from diffpose3d.viz.html import write_html


def test_offline_page_with_all_frames(tmp_path):
    T = 4
    sigma = np.full(len(POSE), 0.01)
    sigma[13] = 0.06
    hyps = np.stack([hypotheses(sigma, n=40, seed=t) for t in range(T)])
    poses = hyps.mean(axis=1)
    path = write_html(tmp_path / "seq.html", poses, hyps, None, PARENTS, NAMES, "my sequence",
                      left=LEFT, right=RIGHT, fps=5)
    text = path.read_text(encoding="utf-8")

    assert len(text) > 1_000_000 and "plotly.js v" in text  # the library itself is inlined
    assert not re.search(r"<script[^>]+src=", text)
    assert "my sequence" in text
    for name in NAMES:
        assert f'"{name}\\u003cbr\\u003espread ' in text
    assert sorted(re.findall(r'"name":"(\d+)"', text)) == [str(t) for t in range(T)]
    # The hover shows the spread in mm of the uncertain wrist (about 60 mm).
    wrist = re.findall(r"l_wrist\\u003cbr\\u003espread (\d+) mm", text)
    assert len(wrist) >= T and all(45 < int(v) < 80 for v in wrist)
    assert [p.name for p in tmp_path.iterdir()] == ["seq.html"]


def test_single_frame_without_hypotheses(tmp_path):
    path = write_html(tmp_path / "one.html", POSE[None], None, np.full((1, len(POSE)), 0.03),
                      PARENTS, NAMES, "one")
    text = path.read_text(encoding="utf-8")
    assert "head\\u003cbr\\u003espread 30 mm" in text


def test_page_with_a_photo_several_people_all_hypotheses_and_the_renders_scale(tmp_path):
    import json

    from _viz_poses import project

    from diffpose3d.viz.html import write_page
    from diffpose3d.viz.layout import PersonView

    n = 7
    cov = np.tile(np.eye(3) * 0.05**2, (len(POSE), 1, 1))
    photo = np.full((480, 640, 3), 90, np.uint8)
    people = [PersonView(project(POSE) + [dx, 0], None, POSE, hypotheses(np.full(len(POSE), 0.05), n=n, seed=i), cov, i,
                         np.array([dx / 400, 0.0, 0.0])) for i, dx in enumerate((-120, 120))]
    path = write_page(tmp_path / "p.html", [(0, people, photo)], PARENTS, NAMES, "two people", image_size=(640, 480),
                      left=LEFT, right=RIGHT, spread_range_mm=(0.0, 150.0))
    text = path.read_text(encoding="utf-8")
    assert '"type":"image"' in text and '"source":"data:image\\u002fjpeg;base64,' in text
    assert '"cmax":150.0' in text and '"cmin":0.0' in text  # the scale it was given (the render's)
    figure = json.loads(re.search(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*?\]),\s*\{", text, re.S).group(1))
    bones = sum(1 for p in PARENTS if p >= 0)
    hyp = [t for t in figure if t.get("type") == "scatter3d" and t.get("line", {}).get("color", "").startswith("rgba(90")]
    assert len(hyp) == 2 and all(len(t["x"]) == n * bones * 3 for t in hyp)  # every hypothesis, for each person
    assert "#0 head\\u003cbr\\u003espread 50 mm" in text and "#1 head\\u003cbr\\u003espread 50 mm" in text
    assert '"domain":[0.0,0.42]' in text.replace(" ", "")  # the photo's panel beside the 3D scene
