"""`inference.inputs.select_people`: which person `--person` picks."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffpose3d.evidence.mixture2d import mixture_to_uv
from diffpose3d.inference.inputs import Evidence2D, select_people
from diffpose3d.mixtures.gmm import GaussianMixture


def people_evidence(heights_px: list[float], size: tuple[int, int]) -> Evidence2D:
    """One frame, one person per height: 17 joints on a vertical line of that height (pixels)."""
    w, h = size
    rows = []
    for i, height in enumerate(heights_px):
        x = (i + 1) * w / (len(heights_px) + 1)
        rows.append(np.stack([np.full(17, x), h / 2 - height / 2 + np.linspace(0, height, 17)], -1))
    means = torch.as_tensor(np.stack(rows))[:, :, None, :]  # (R, J, 1, 2) pixels
    gmm = GaussianMixture(torch.ones(len(rows), 17, 1, dtype=torch.float64), means,
                          torch.eye(2, dtype=torch.float64).expand(len(rows), 17, 1, 2, 2) * 4.0)
    n = len(rows)
    return Evidence2D("people", "coco17", size, mixture_to_uv(gmm, w, h), np.ones((n, 17), np.float32),
                      np.zeros(n, np.int64), "keypoints", person_ids=np.arange(n))


@settings(max_examples=40, derandomize=True, database=None, deadline=None)
@given(st.lists(st.floats(20, 900), min_size=2, max_size=5, unique=True),
       st.sampled_from([(640, 480), (1920, 1080), (4000, 3000)]))
def test_largest_picks_the_person_largest_in_pixels(heights, size):
    heights = [min(v, size[1] - 2) for v in heights]
    if len(set(heights)) < len(heights):
        return
    chosen = select_people(people_evidence(heights, size), "largest")
    assert chosen.people == [int(np.argmax(heights))]
