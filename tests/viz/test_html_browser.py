"""A video result's page in a real headless browser (Debian's `chromium`): it loads the shared
plotly.js beside it, builds the 3D scene and the frame slider, and draws every person and their
path into the canvas (a screenshot has their colours where the 3D view is)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _viz_poses import LEFT, NAMES, PARENTS, POSE, RIGHT, hypotheses, project

from diffpose3d.viz.html import library_name, write_library, write_page
from diffpose3d.viz.layout import PERSON_COLOURS, PersonView

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--window-size=1200,760", "--virtual-time-budget=8000", "--hide-scrollbars"]


def video_pages(folder: Path, frames: int = 6) -> list[Path]:
    """Two pages of the same folder: two people walking apart over `frames` frames, with paths."""
    library = write_library(folder)
    cov = np.tile(np.eye(3) * 0.04**2, (len(POSE), 1, 1))
    pages = []
    for t in range(frames):
        people = []
        for pid, (x0, vx) in enumerate(((-0.8, -0.1), (0.8, 0.1))):
            path = np.array([[x0 + vx * k, 0.0, 0.3 * k / frames] for k in range(t + 1)])
            people.append(PersonView(project(POSE) + [200 * pid - 100, 0], None, POSE,
                                     hypotheses(np.full(len(POSE), 0.04), n=5, seed=t), cov, pid, path[-1], path))
        pages.append((t, people, None))
    out = []
    for name in ("walk", "walk_again"):
        out.append(write_page(folder / f"{name}.html", pages, PARENTS, NAMES, name, image_size=(640, 480), left=LEFT,
                              right=RIGHT, fps=5, box=1.5, library=library))
    return out


def test_pages_of_a_folder_share_one_library(tmp_path):
    first, second = video_pages(tmp_path)
    name = library_name()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "walk.html", "walk_again.html"])
    stamp = (tmp_path / name).stat().st_mtime_ns
    assert write_library(tmp_path) == name and (tmp_path / name).stat().st_mtime_ns == stamp  # written once
    for page in (first, second):
        text = page.read_text()
        assert re.search(rf'<script[^>]+src="{re.escape(name)}"', text)
        assert "plotly.js v" not in text and len(text) < 1_000_000  # not inlined
    assert (tmp_path / name).stat().st_size > 3_000_000
    text = first.read_text()
    assert text.count('"dash":"dot"') >= 2 and sorted(set(re.findall(r'"name":"(\d+)"', text))) == list("012345")


@needs_chromium
def test_a_video_page_plays_in_headless_chromium(tmp_path):
    page = video_pages(tmp_path)[0]
    dom = subprocess.run([CHROMIUM, *FLAGS, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert "<canvas" in dom and "gl-container" in dom  # plotly loaded from the folder and built the 3D scene
    assert "slider-container" in dom and ">Play<" in dom.replace("</tspan>", "").replace('">', ">")
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    scene = image[:, int(0.45 * image.shape[1]):int(0.9 * image.shape[1])]  # the 3D view's part of the page
    for colour in PERSON_COLOURS[:2]:
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        near = (np.abs(scene - rgb).sum(-1) < 60).sum()
        assert near > 200, f"person colour {colour} drawn in {near} pixels of the 3D view"
