"""A live frame's overlay: every person's 2D skeleton in their colour and one line of status
(frames/s, latency, people) in a box at the top left. Pillow only (fast enough for every frame)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from diffpose3d.viz.layout import person_colour

LINE_WIDTH = 3


def draw_overlay(image: np.ndarray, skeletons: Sequence[tuple[int, np.ndarray, np.ndarray]],
                 parents: Sequence[int], status: str) -> np.ndarray:
    """`image` (H, W, 3) uint8 with `skeletons` (person id, (J, 2) pixels, (J,) seen) drawn and
    `status` written; a new array."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(canvas)
    for pid, keypoints, seen in skeletons:
        colour = person_colour(pid)
        for j, p in enumerate(parents):
            if p >= 0 and seen[j] and seen[p]:
                draw.line([tuple(map(float, keypoints[p])), tuple(map(float, keypoints[j]))], fill=colour,
                          width=LINE_WIDTH)
    left, top, right, bottom = draw.textbbox((8, 6), status)
    draw.rectangle((left - 4, top - 3, right + 4, bottom + 3), fill=(0, 0, 0))
    draw.text((8, 6), status, fill=(255, 255, 255))
    return np.asarray(canvas)
