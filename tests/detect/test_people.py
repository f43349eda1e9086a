"""Several people: duplicates, joints two people claim, ids over frames, the detector's tiles
(pure numpy, no backend needed)."""

from __future__ import annotations

import numpy as np

from diffpose3d.detect.base import Detection
from diffpose3d.detect.people import PersonTracker, release_shared_joints, remove_duplicates
from diffpose3d.skeleton import get_skeleton

# A stick figure in BlazePose order: only the joints the rules look at are placed, the rest sit
# on the torso centre with confidence 0.
L_SHOULDER, R_SHOULDER, L_WRIST, R_WRIST, L_HIP, R_HIP = 11, 12, 15, 16, 23, 24
SKELETON = get_skeleton("blazepose33")
TORSO = (L_SHOULDER, R_SHOULDER, L_HIP, R_HIP)


def figure(x: float, score: float = 0.9, scale: float = 1.0) -> Detection:
    kp = np.zeros((33, 2), np.float32)
    conf = np.zeros(33, np.float32)
    places = {L_SHOULDER: (20, 0), R_SHOULDER: (-20, 0), L_HIP: (15, 60), R_HIP: (-15, 60),
              L_WRIST: (35, 50), R_WRIST: (-35, 50), 0: (0, -25)}
    for j, (dx, dy) in places.items():
        kp[j] = (x + dx * scale, 100 + dy * scale)
        conf[j] = 0.95
    return Detection(kp, conf, None, None, "blazepose33", (640, 480), score=score)


def test_two_crops_of_one_person_become_one():
    a, b, c = figure(100, 0.9), figure(101.5, 0.95), figure(300, 0.8)
    kept = remove_duplicates([a, b, c])
    assert kept == [b, c]  # the more confident copy, and the other person


def test_a_limb_put_on_the_neighbour_goes_back_to_its_owner():
    front, behind = figure(100), figure(190)
    behind.keypoints[R_WRIST] = front.keypoints[L_WRIST] + 1.0  # behind's right hand drawn on front's left hand
    released = release_shared_joints([front, behind], SKELETON.flip_permutation(), TORSO)
    assert released == 1
    assert front.confidence[L_WRIST] > 0.5 and behind.confidence[R_WRIST] == 0.0
    assert (front.confidence[list(TORSO)] > 0.5).all() and (behind.confidence[list(TORSO)] > 0.5).all()
    apart = [figure(100), figure(400)]
    assert release_shared_joints(apart, SKELETON.flip_permutation(), TORSO) == 0


def test_ids_follow_people_who_move_cross_order_and_leave_for_a_while():
    tracker = PersonTracker(max_gap=3)
    ids = []
    for t in range(6):
        people = [figure(100 + 8 * t), figure(400 - 8 * t)]
        if t % 2:
            people = people[::-1]  # the detector's order changes
        if t == 3:
            people = people[:1]  # one of them is not found in frame 3
        ids.append((t, tracker.update(t, [p.keypoints for p in people], [p.confidence for p in people]),
                    [float(p.keypoints[0, 0]) for p in people]))
    for t, frame_ids, xs in ids:
        for pid, x in zip(frame_ids, xs):
            assert (pid == 0) == (x < 250), (t, frame_ids, xs)  # id 0 is always the one coming from the left
    assert tracker.update(20, [figure(100).keypoints], [figure(100).confidence]) == [2]  # gone too long: new id


def test_tiles_cover_wide_and_large_images():
    from diffpose3d.detect.mediapipe_pose import tiles

    assert tiles(300, 300) == [(0, 0, 300, 300)]
    wide = tiles(1024, 512)
    assert wide[0] == (0, 0, 1024, 512) and (0, 0, 512, 512) in wide and (512, 0, 1024, 512) in wide
    for x0, y0, x1, y1 in wide + tiles(300, 1000) + tiles(4000, 3000):
        assert 0 <= x0 < x1 and 0 <= y0 < y1
    assert len(tiles(640, 480)) == 1 + 2 + 4  # whole, squares along the long side, 2 x 2 tiles
    assert len(tiles(4000, 3000)) == 1 + 2 + 4 + 9  # and 3 x 3 tiles of a large photo
