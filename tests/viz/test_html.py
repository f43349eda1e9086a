"""write_html makes one offline page holding plotly.js, every frame and the joint names."""

from __future__ import annotations

import re

import numpy as np

from diffpose3d.viz.html import write_html

from _viz_poses import LEFT, NAMES, PARENTS, POSE, RIGHT, hypotheses


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
