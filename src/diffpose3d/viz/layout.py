"""What the PNG/mp4 renders and the HTML page share (pure numpy): the colour scale of the spread,
each person's colour, and where several people stand in one 3D view.

- `spread_scale`: one scale for a whole result, fitted to the spreads shown (their largest,
  rounded up to 1, 1.5, 2, 3, 4, 5, 6 or 8 times a power of ten), so the render and the page
  agree and no ellipsoid's colour saturates.
- `place_people`: poses are root-relative; to show several people side by side, each is put
  where its 2D root and size say under a weak-perspective camera with an assumed focal length of
  the image's longer side (about a 53-degree field of view). Positions are for the picture only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffpose3d.metrics import spread_from_covariance

LEFT_COLOUR = "#4ea4ff"
RIGHT_COLOUR = "#ff8b3d"
PERSON_COLOURS = ("#4ea4ff", "#ff8b3d", "#5fd068", "#e05f9e", "#b48cff", "#f2c94c", "#47d1c7", "#ff6b6b",
                  "#c08457", "#9aa5b1")
MIN_SCALE_MM = 20.0


def person_colour(person_id: int) -> str:
    return PERSON_COLOURS[int(person_id) % len(PERSON_COLOURS)]


def lighter(colour: str, amount: float = 0.45) -> str:
    """`colour` (#rrggbb) mixed with white."""
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], float)
    mixed = rgb + (255.0 - rgb) * amount
    return "#" + "".join(f"{round(v):02x}" for v in mixed)


def bone_colours(parents, left, right, person_id: int | None, centre: str = "#e6e6e6") -> list[str]:
    """A colour per joint (its bone to the parent): left / right / centre for one person
    (`person_id` None), else the person's colour, lighter on the right side."""
    left_set, right_set = set(left or ()), set(right or ())
    if person_id is None:
        return [LEFT_COLOUR if j in left_set else RIGHT_COLOUR if j in right_set else centre
                for j in range(len(parents))]
    base = person_colour(person_id)
    return [lighter(base) if j in right_set else base for j in range(len(parents))]


def spread_scale(uncertainty_m: np.ndarray) -> tuple[float, float]:
    """(0, top) in millimetres covering every spread of a result."""
    values = np.asarray(uncertainty_m, np.float64).reshape(-1) * 1000.0
    values = values[np.isfinite(values) & (values > 0)]
    top = float(values.max()) if values.size else MIN_SCALE_MM
    top = max(top, MIN_SCALE_MM)
    power = 10.0 ** np.floor(np.log10(top))
    for step in (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0):
        if top <= step * power + 1e-9:
            return 0.0, float(step * power)
    return 0.0, float(10.0 * power)


def place_people(keypoints_2d: np.ndarray, confidence: np.ndarray, pose_3d: np.ndarray,
                 image_size: tuple[int, int]) -> np.ndarray:
    """(P, 3) camera-frame offsets (metres) that put P root-relative poses where their 2D says,
    relative to the group's centre; all zero for one person."""
    kp = np.asarray(keypoints_2d, np.float64)
    xyz = np.asarray(pose_3d, np.float64)
    if len(kp) < 2:
        return np.zeros((len(kp), 3))
    w, h = image_size
    focal = float(max(w, h))
    out = np.zeros((len(kp), 3))
    for p in range(len(kp)):
        seen = np.asarray(confidence[p]) > 0
        if seen.sum() < 2:
            seen = np.ones(len(kp[p]), bool)
        d2 = kp[p, seen] - kp[p, seen].mean(0)
        d3 = xyz[p, seen, :2] - xyz[p, seen, :2].mean(0)
        scale = np.sqrt((d2**2).sum(1).mean() / max((d3**2).sum(1).mean(), 1e-6))  # pixels per metre
        scale = max(scale, 1e-3)
        out[p] = [(kp[p, 0, 0] - w / 2) / scale, (kp[p, 0, 1] - h / 2) / scale, focal / scale]
    return out - out.mean(0)


def view_box(poses: np.ndarray, minimum: float = 1.0) -> float:
    """Half-width (metres) of a cube around the origin that holds `poses` (..., 3), at least `minimum`."""
    values = np.abs(np.asarray(poses, np.float64))
    values = values[np.isfinite(values)]
    reach = float(values.max()) if values.size else 0.0
    return max(minimum, float(np.ceil(reach * 1.1 / 0.5) * 0.5))


@dataclass
class PersonView:
    """One person in one frame, as drawn: 2D keypoints (J, 2) px and confidence (J,) or None;
    root-relative 3D (J, 3), hypotheses (N, J, 3) and covariance (J, 3, 3) or None, in metres;
    `person_id` None for a lone person (left/right colours), else the id (its colour);
    `offset` (3,) where the person stands in the 3D view (`place_people`, or their root position);
    `trajectory` (K, 3) where they stood in the frames so far, in the same view coordinates."""

    keypoints_2d: np.ndarray | None
    confidence: np.ndarray | None
    pose_3d: np.ndarray
    hypotheses: np.ndarray | None = None
    covariance: np.ndarray | None = None
    person_id: int | None = None
    offset: np.ndarray | None = None
    trajectory: np.ndarray | None = None

    def spread_mm(self) -> np.ndarray | None:
        if self.covariance is None:
            return None
        return spread_from_covariance(np.asarray(self.covariance, dtype=float)) * 1000.0

    def placed(self, array: np.ndarray) -> np.ndarray:
        """`array` (..., 3) moved to where the person stands."""
        return np.asarray(array, float) + (0.0 if self.offset is None else np.asarray(self.offset, float))
