"""One-body checks on synthetic BlazePose skeletons: a normal person passes untouched, a chimera
made of two people's joints is refused or loses the foreign joints."""

from __future__ import annotations

import numpy as np

from diffpose3d.detect.base import Detection
from diffpose3d.detect.plausibility import body_scale, check_people, check_skeleton, inside

HEAD = list(range(11))
UPPER = list(range(0, 23))
LOWER = list(range(23, 33))


def standing(cx: float, feet: float, height: float, facing: float = 1.0) -> Detection:
    """A person standing upright, facing the camera (`facing` -1: back to it), `height` px tall."""
    u = height / 8.0  # one "head" unit
    s = facing
    pts = np.zeros((33, 2))
    top = feet - height
    pts[:11] = [cx, top + 0.8 * u]  # face points around the nose
    pts[1:11, 0] += np.linspace(-0.3, 0.3, 10) * u
    pts[11], pts[12] = [cx + s * 0.95 * u, top + 1.6 * u], [cx - s * 0.95 * u, top + 1.6 * u]
    pts[13], pts[14] = [cx + s * 1.1 * u, top + 2.9 * u], [cx - s * 1.1 * u, top + 2.9 * u]
    pts[15], pts[16] = [cx + s * 1.15 * u, top + 4.0 * u], [cx - s * 1.15 * u, top + 4.0 * u]
    for k, j in enumerate(range(17, 23)):  # hand points beside the wrists
        pts[j] = pts[15 + (k % 2)] + [0, 0.3 * u]
    pts[23], pts[24] = [cx + s * 0.6 * u, top + 4.3 * u], [cx - s * 0.6 * u, top + 4.3 * u]
    pts[25], pts[26] = [cx + s * 0.65 * u, top + 6.1 * u], [cx - s * 0.65 * u, top + 6.1 * u]
    pts[27], pts[28] = [cx + s * 0.65 * u, top + 7.8 * u], [cx - s * 0.65 * u, top + 7.8 * u]
    for k, j in enumerate(range(29, 33)):
        pts[j] = pts[27 + (k % 2)] + [0.2 * u * (k // 2), 0.2 * u]
    side = 1.25 * height
    roi = np.array([cx / 1000, (top + 4.3 * u) / 1000, side / 1000, side / 1000, 0.0])
    return Detection(pts.astype(np.float32), np.ones(33, np.float32), None, None, "blazepose33", (1000, 1000),
                     roi=roi)


def _has(kept: list[Detection], det: Detection) -> bool:
    return any(k is det for k in kept)


def chimera(a: Detection, b: Detection, from_b: list[int]) -> Detection:
    """`a` with the joints `from_b` taken from `b` (a landmark model drawing over two people)."""
    kp = a.keypoints.copy()
    kp[from_b] = b.keypoints[from_b]
    return Detection(kp, a.confidence.copy(), None, None, a.layout, a.image_size, roi=a.roi.copy())


def test_a_normal_person_passes_untouched():
    person = standing(500, 900, 400)
    verdict = check_skeleton(person)
    assert verdict.refused == "" and verdict.dropped == {}
    assert abs(body_scale(person) - 0.5 * 2.7 * 400 / 8) < 0.35 * 400 / 8 * 2.7  # about the torso height


def test_two_normal_people_side_by_side_and_a_back_view_pass():
    people = [standing(300, 900, 400), standing(560, 880, 380, facing=-1.0)]
    kept, refused = check_people(people)
    assert len(kept) == 2 and refused == []
    assert all(p.notes == [] and (p.confidence == 1).all() for p in kept)


def test_front_persons_legs_under_the_shoulders_of_the_person_behind_is_refused():
    front, behind = standing(500, 950, 420), standing(520, 600, 200)
    mixed = chimera(front, behind, UPPER)  # the skiers' chimera: head and shoulders drawn up into the one behind
    kept, refused = check_people([mixed, behind])
    assert not _has(kept, mixed) and len(refused) == 1 and "refused" in refused[0]
    assert len(kept) == 1 and kept[0] is behind and (behind.confidence == 1).all()


def test_halves_of_two_people_facing_opposite_ways_are_refused():
    a, b = standing(500, 900, 400), standing(500, 900, 400, facing=-1.0)
    verdict = check_skeleton(chimera(a, b, LOWER))
    assert "opposite" in verdict.refused


def test_a_head_on_the_person_behind_is_dropped_and_the_body_kept():
    front, behind = standing(500, 950, 400), standing(560, 560, 260)
    mixed = chimera(front, behind, HEAD)
    kept, refused = check_people([mixed, behind])
    assert refused == [] and _has(kept, mixed)
    assert (mixed.confidence[HEAD] == 0).all() and (mixed.confidence[11:] == 1).all()
    assert mixed.notes and "dropped" in mixed.notes[0]


def test_an_arm_on_a_neighbours_torso_is_dropped():
    left, right = standing(350, 900, 400), standing(650, 900, 400)
    mixed = left
    mixed.keypoints[[13, 15, 17, 19, 21]] = right.keypoints[[23, 24, 24, 24, 24]] + [[10, -40]] * 5
    kept, _ = check_people([mixed, right])
    assert _has(kept, mixed) and _has(kept, right)
    assert (mixed.confidence[[15, 17, 19, 21]] == 0).all()
    assert (mixed.confidence[[11, 12, 23, 24, 25, 26]] == 1).all() and (right.confidence == 1).all()


def test_a_whole_body_squeezed_into_a_head_is_refused():
    tiny = standing(500, 300, 60)
    tiny.roi[2:4] = 0.3  # the crop of a whole person, 300 px
    assert "crop" in check_skeleton(tiny).refused


def test_unseen_joints_are_not_judged():
    person = standing(500, 900, 400)
    person.keypoints[[25, 27]] = [[900, 50], [950, 20]]  # far away, but invisible
    person.confidence[[25, 27]] = 0.1
    verdict = check_skeleton(person)
    assert verdict.refused == "" and verdict.dropped == {}


def test_inside_a_polygon():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    assert inside(np.array([5, 5]), square) and not inside(np.array([15, 5]), square)
