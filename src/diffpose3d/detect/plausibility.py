"""Is a 2D skeleton one body? Checks that find joints of a second person in one detection.

A landmark model run on a crop that holds two people can draw one skeleton over both (a
"chimera": one person's legs under another's shoulders, a head on the person behind). Pure numpy
on `Detection`s (no backend), for BlazePose-33 (`BLAZEPOSE`); each check names what it found:

- **bone lengths**: each seen bone is compared with the person's scale, estimated from all seen
  bones over their typical length relative to the torso (a projection can only shorten a bone, so
  the typical bone is at most as long as the scale says; a bone `LONG_BONE` times longer than it
  reaches into somebody else). A too long limb bone drops the limb from there on (the joints get
  visibility 0); a too long neck drops the head; both torso sides too long split the body, and the
  skeleton is refused.
- **upper vs lower body**: the scale of the arms and shoulders against that of the legs and hips
  (each the least foreshortened of its group): more than `HALVES_RATIO` apart, two people of
  different sizes (one nearer, one further) share the skeleton; refused.
- **left/right**: the shoulder line and the hip line of one body point the same way (a torso
  twists less than a quarter turn); opposite, the halves come from two people facing opposite ways;
  refused.
- **another's torso**: a limb joint inside another detection's torso (shoulders and hips) and
  not near its own is that person's: dropped.
- **size in its crop**: the landmark crop is about 1.25 times a body; a skeleton whose torso is
  under `MIN_TORSO_IN_CROP` of the crop's side is a body squeezed into a part of one (a head);
  refused.
- **two torsos in one crop**: a detection whose crop holds another detection's whole torso is
  checked with the stricter `CROWDED_LONG_BONE`.

`check_people` runs every check over one image's detections, edits them in place and returns the
ones kept with the refused ones' reasons; each kept detection's `notes` says what was dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from diffpose3d.detect.base import Detection

SURE = 0.5  # a joint counts as seen from this visibility on
LONG_BONE = 2.2  # a bone this many times its length at the person's scale is not the person's
CROWDED_LONG_BONE = 1.8  # the same, for a crop that holds another person's torso
HALVES_RATIO = 2.6  # upper-body scale / lower-body scale (or inverse) beyond this: two people
MIN_TORSO_IN_CROP = 0.11  # torso height / the landmark crop's side, below: not a whole body
MIN_BONES = 4  # fewer seen bones: no scale, the bone checks are skipped


@dataclass(frozen=True)
class BodyLayout:
    """Joint indices of a layout, and each checked bone's typical length relative to the torso
    height (mid-shoulder to mid-hip), with the joints a too long bone takes away."""

    nose: int
    head: tuple[int, ...]
    shoulders: tuple[int, int]  # left, right
    hips: tuple[int, int]
    # (parent, child, typical length / torso height, joints dropped when too long, upper body?)
    bones: tuple[tuple[int, int, float, tuple[int, ...], bool], ...]

    @property
    def torso(self) -> tuple[int, ...]:
        return self.shoulders + self.hips


def _blazepose() -> BodyLayout:
    l_arm, r_arm = (13, 15, 17, 19, 21), (14, 16, 18, 20, 22)
    l_leg, r_leg = (25, 27, 29, 31), (26, 28, 30, 32)
    return BodyLayout(
        nose=0, head=tuple(range(11)), shoulders=(11, 12), hips=(23, 24),
        bones=(
            (11, 12, 0.75, (), True), (23, 24, 0.5, (), False),
            (11, 13, 0.6, l_arm, True), (12, 14, 0.6, r_arm, True),
            (13, 15, 0.55, l_arm[1:], True), (14, 16, 0.55, r_arm[1:], True),
            (23, 25, 0.85, l_leg, False), (24, 26, 0.85, r_leg, False),
            (25, 27, 0.85, l_leg[1:], False), (26, 28, 0.85, r_leg[1:], False),
            (11, 23, 1.0, (), True), (12, 24, 1.0, (), True),
        ),
    )


BLAZEPOSE = _blazepose()


@dataclass
class Verdict:
    """One skeleton's outcome: `refused` with a reason, or the joints to drop with theirs."""

    refused: str = ""
    dropped: dict[int, str] | None = None

    def __post_init__(self) -> None:
        if self.dropped is None:
            self.dropped = {}


def _seen(det: Detection, j: int) -> bool:
    return bool(det.confidence[j] >= SURE and np.isfinite(det.keypoints[j]).all())


def _length(det: Detection, a: int, b: int) -> float:
    return float(np.hypot(*(det.keypoints[a].astype(np.float64) - det.keypoints[b])))


def body_scale(det: Detection, layout: BodyLayout = BLAZEPOSE, upper: bool | None = None,
               skip: Sequence[int] = ()) -> float:
    """The torso height (pixels) the seen bones say: the median of each bone's length over its
    typical ratio (`upper` True/False: only the upper or lower body's bones, and their largest,
    since every projection only shortens; `skip`: joints left out); NaN with too few bones."""
    ratios = [_length(det, a, b) / typical for a, b, typical, _, up in layout.bones
              if _seen(det, a) and _seen(det, b) and (upper is None or up == upper) and a not in skip
              and b not in skip]
    if upper is not None:
        return float(max(ratios)) if len(ratios) >= 2 else float("nan")
    if len(ratios) < MIN_BONES:
        return float("nan")
    # the 60th percentile: robust to the few bones a chimera stretches and the few a view shortens
    return float(np.percentile(ratios, 60))


def _torso_quad(det: Detection, layout: BodyLayout) -> np.ndarray | None:
    """The torso polygon (l_shoulder, r_shoulder, r_hip, l_hip) when all four are seen."""
    order = (layout.shoulders[0], layout.shoulders[1], layout.hips[1], layout.hips[0])
    if not all(_seen(det, j) for j in order):
        return None
    return det.keypoints[list(order)].astype(np.float64)


def inside(point: np.ndarray, polygon: np.ndarray) -> bool:
    """Whether `point` (2,) lies inside the polygon (K, 2) (even-odd rule)."""
    x, y = float(point[0]), float(point[1])
    hit = False
    for (x0, y0), (x1, y1) in zip(polygon, np.roll(polygon, -1, axis=0)):
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            hit = not hit
    return hit


def _crop_holds(det: Detection, other: Detection, layout: BodyLayout) -> bool:
    """Whether `det`'s landmark crop holds all of `other`'s torso."""
    quad = _torso_quad(other, layout)
    if det.roi is None or quad is None:
        return False
    w, h = det.image_size
    cx, cy, rw, rh = det.roi[0] * w, det.roi[1] * h, det.roi[2] * w, det.roi[3] * h
    side = max(rw, rh) / 2
    return bool((np.abs(quad[:, 0] - cx) <= side).all() and (np.abs(quad[:, 1] - cy) <= side).all())


def check_skeleton(det: Detection, others: Sequence[Detection] = (), layout: BodyLayout = BLAZEPOSE) -> Verdict:
    """The verdict on one detection, given the other detections of the same image."""
    verdict = Verdict()
    crowded = any(_crop_holds(det, o, layout) for o in others)
    scale = body_scale(det, layout)
    if np.isfinite(scale) and det.roi is not None:
        side = max(det.roi[2] * det.image_size[0], det.roi[3] * det.image_size[1])
        if scale < MIN_TORSO_IN_CROP * side:
            verdict.refused = f"a body {scale / side:.2f} of its crop's size (a body drawn into a part of one)"
            return verdict
    if np.isfinite(scale) and scale > 0:
        limit = CROWDED_LONG_BONE if crowded else LONG_BONE
        long_sides = 0
        for a, b, typical, takes, _ in layout.bones:
            if not (_seen(det, a) and _seen(det, b)):
                continue
            ratio = _length(det, a, b) / (typical * scale)
            if ratio <= limit:
                continue
            if not takes:
                long_sides += (a, b) not in (layout.shoulders, layout.hips)
                continue
            for j in takes:
                verdict.dropped.setdefault(j, f"bone {a}-{b} {ratio:.1f} times its length at the body's scale")
        if long_sides == 2:
            verdict.refused = "both torso sides far too long for the body (shoulders and hips of two people)"
            return verdict
        neck = _neck(det, layout)
        if neck is not None and neck / (0.5 * scale) > limit:
            for j in layout.head:
                verdict.dropped.setdefault(j, f"head {neck / (0.5 * scale):.1f} times its distance at the body's scale")
    gone = list(verdict.dropped)
    upper, lower = body_scale(det, layout, True, gone), body_scale(det, layout, False, gone)
    if np.isfinite(upper) and np.isfinite(lower) and min(upper, lower) > 0:
        ratio = max(upper, lower) / min(upper, lower)
        if ratio > HALVES_RATIO:
            verdict.refused = f"upper and lower body {ratio:.1f} times apart in size (two people)"
            return verdict
    if _halves_face_apart(det, layout):
        verdict.refused = "shoulders and hips face opposite ways (left/right of two people)"
        return verdict
    for j, reason in _on_other_torsos(det, others, layout).items():
        verdict.dropped.setdefault(j, reason)
    return verdict


def _neck(det: Detection, layout: BodyLayout) -> float | None:
    """Nose to mid-shoulder distance (pixels), when all three are seen."""
    if not (_seen(det, layout.nose) and all(_seen(det, j) for j in layout.shoulders)):
        return None
    mid = det.keypoints[list(layout.shoulders)].astype(np.float64).mean(0)
    return float(np.hypot(*(det.keypoints[layout.nose] - mid)))


def _halves_face_apart(det: Detection, layout: BodyLayout) -> bool:
    """Shoulder line and hip line (left to right) pointing opposite ways, both clearly wide."""
    if not all(_seen(det, j) for j in layout.torso):
        return False
    kp = det.keypoints.astype(np.float64)
    s = kp[layout.shoulders[1]] - kp[layout.shoulders[0]]
    h = kp[layout.hips[1]] - kp[layout.hips[0]]
    ns, nh = np.hypot(*s), np.hypot(*h)
    torso = np.hypot(*(kp[list(layout.shoulders)].mean(0) - kp[list(layout.hips)].mean(0)))
    if min(ns, nh) < 0.25 * max(torso, 1.0):  # a side view: the lines are too short to say
        return False
    return float(s @ h / (ns * nh)) < -0.5


def _on_other_torsos(det: Detection, others: Sequence[Detection], layout: BodyLayout) -> dict[int, str]:
    """Limb and head joints of `det` inside another detection's torso and away from its own."""
    own = _torso_quad(det, layout)
    if own is None:
        return {}
    centre = own.mean(0)
    size = max(float(np.hypot(*(own.max(0) - own.min(0)))), 1.0)
    torso = set(layout.torso)
    out: dict[int, str] = {}
    for _k, other in enumerate(others):
        quad = _torso_quad(other, layout)
        if quad is None:
            continue
        for j in range(det.num_joints):
            if j in torso or not _seen(det, j):
                continue
            p = det.keypoints[j].astype(np.float64)
            if inside(p, quad) and not inside(p, own) and np.hypot(*(p - centre)) > 0.8 * size:
                out[j] = "on another person's torso"
    return out


def apply(det: Detection, verdict: Verdict) -> None:
    """Drop the verdict's joints (visibility 0) and note why on the detection."""
    for j, _reason in sorted(verdict.dropped.items()):
        det.confidence[j] = 0.0
    if verdict.dropped:
        reasons = sorted(set(verdict.dropped.values()))
        det.notes.append(f"joints {sorted(verdict.dropped)} dropped: " + "; ".join(reasons))


def check_people(people: list[Detection], layout: BodyLayout = BLAZEPOSE) -> tuple[list[Detection], list[str]]:
    """Every detection of one image checked against the others: (the kept ones, edited in place,
    in their order; one line per refused skeleton). A refused skeleton is not an "other" for the
    rest, its joints being nobody's for sure."""
    verdicts = [check_skeleton(d, [o for o in people if o is not d], layout) for d in people]
    kept = [d for d, v in zip(people, verdicts) if not v.refused]
    refused = [f"a skeleton near ({_where(d)}) refused: {v.refused}" for d, v in zip(people, verdicts) if v.refused]
    for d in kept:
        apply(d, check_skeleton(d, [o for o in kept if o is not d], layout))
    return kept, refused


def _where(det: Detection) -> str:
    seen = det.confidence >= SURE
    pts = det.keypoints[seen] if seen.any() else det.keypoints
    x, y = np.nanmean(pts.astype(np.float64), axis=0)
    return f"x {x:.0f}, y {y:.0f} px"
