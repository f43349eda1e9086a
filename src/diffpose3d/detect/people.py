"""Several people in one picture: duplicates, joints two people claim, and identities over frames.

Pure numpy on `Detection`s (no backend needed), so every rule here is tested on its own:

- `remove_duplicates`: two crops of one person give nearly the same landmarks; the less confident
  copy goes (similarity: COCO's object keypoint similarity, OKS, on the joints both see).
- `release_shared_joints`: a landmark model run on one person's crop can put a limb on a person
  next to them. A joint two people hold at the same place (within `SHARED_RADIUS` of the smaller
  person's size; the same joint or its mirror) is kept by the person whose torso it is nearer to,
  relative to the torso's size; the other gets confidence 0 (no evidence, a broad H_K).
- `PersonTracker`: stable ids over video frames, by greedy matching of each frame's people to the
  tracks seen in the last `max_gap` frames (OKS to the track's last pose, box overlap as a
  fallback). Ids start at 0 and are never reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from diffpose3d.detect.base import Detection

SURE = 0.5  # a joint counts as seen from this confidence on
SHARED_RADIUS = 0.06  # of the smaller person's size: closer than this, two joints are one
DUPLICATE_OKS = 0.6
OKS_KAPPA = 0.1  # per-joint falloff of the similarity, relative to the person's size


def person_box(keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """(4,) x0, y0, x1, y1 of the joints seen (all finite joints when none is seen)."""
    kp = np.asarray(keypoints, np.float64)
    finite = np.isfinite(kp).all(-1)
    seen = finite & (np.asarray(confidence) >= SURE)
    use = kp[seen] if seen.sum() >= 2 else kp[finite]
    if len(use) == 0:
        return np.zeros(4)
    return np.concatenate([use.min(0), use.max(0)])


def person_size(box: np.ndarray) -> float:
    """The box's diagonal, at least one pixel."""
    return max(float(np.hypot(box[2] - box[0], box[3] - box[1])), 1.0)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def keypoint_similarity(kp_a, conf_a, kp_b, conf_b) -> float:
    """OKS of two poses over the joints both see (0 when they share fewer than 3)."""
    both = (np.asarray(conf_a) >= SURE) & (np.asarray(conf_b) >= SURE)
    both &= np.isfinite(kp_a).all(-1) & np.isfinite(kp_b).all(-1)
    if both.sum() < 3:
        return 0.0
    scale = OKS_KAPPA * max(person_size(person_box(kp_a, conf_a)), person_size(person_box(kp_b, conf_b)))
    d2 = ((np.asarray(kp_a, np.float64) - kp_b) ** 2).sum(-1)[both]
    return float(np.exp(-d2 / (2.0 * scale**2)).mean())


def remove_duplicates(people: Sequence[Detection], threshold: float = DUPLICATE_OKS) -> list[Detection]:
    """`people` without the less confident of any pair more similar than `threshold`."""
    kept: list[Detection] = []
    for det in sorted(people, key=lambda d: -d.score):
        if all(keypoint_similarity(det.keypoints, det.confidence, k.keypoints, k.confidence) < threshold
               for k in kept):
            kept.append(det)
    return kept


def _torso(det: Detection, torso: Sequence[int]) -> tuple[np.ndarray, float]:
    """Centre and size of a person's torso (its seen torso joints; else its whole box)."""
    kp = det.keypoints[list(torso)].astype(np.float64)
    seen = (det.confidence[list(torso)] >= SURE) & np.isfinite(kp).all(-1)
    box = person_box(det.keypoints, det.confidence)
    if seen.sum() >= 2:
        pts = kp[seen]
        return pts.mean(0), max(person_size(np.concatenate([pts.min(0), pts.max(0)])), 0.25 * person_size(box))
    return (box[:2] + box[2:]) / 2, person_size(box)


def release_shared_joints(people: list[Detection], mirror: Sequence[int], torso: Sequence[int]) -> int:
    """Give each joint that two people hold at one place to one of them (in place); returns how
    many joints were released. `mirror[j]` is joint j's left/right counterpart, `torso` the
    shoulder and hip joints."""
    released = 0
    for a in range(len(people)):
        for b in range(a + 1, len(people)):
            released += _release_pair(people[a], people[b], mirror, torso)
    return released


def _release_pair(pa: Detection, pb: Detection, mirror: Sequence[int], torso: Sequence[int]) -> int:
    size = min(person_size(person_box(pa.keypoints, pa.confidence)), person_size(person_box(pb.keypoints, pb.confidence)))
    radius = SHARED_RADIUS * size
    (ca, sa), (cb, sb) = _torso(pa, torso), _torso(pb, torso)
    released = 0
    for j in range(pa.num_joints):
        if pa.confidence[j] < SURE:
            continue
        for k in {j, int(mirror[j])}:
            if pb.confidence[k] < SURE or not np.hypot(*(pa.keypoints[j] - pb.keypoints[k])) < radius:
                continue
            # the joint belongs to the person whose torso it is nearer to (relative to its size)
            a_near = np.hypot(*(pa.keypoints[j] - ca)) / sa <= np.hypot(*(pb.keypoints[k] - cb)) / sb
            if a_near:
                pb.confidence[k] = 0.0
            else:
                pa.confidence[j] = 0.0
            released += 1
            break
    return released


@dataclass
class _Track:
    id: int
    keypoints: np.ndarray
    confidence: np.ndarray
    box: np.ndarray
    last_frame: int


class PersonTracker:
    """Stable person ids over the frames of one video (or sequence of images)."""

    def __init__(self, max_gap: int = 30, min_similarity: float = 0.15, min_iou: float = 0.3) -> None:
        self.max_gap = int(max_gap)
        self.min_similarity = float(min_similarity)
        self.min_iou = float(min_iou)
        self._tracks: list[_Track] = []
        self._next_id = 0

    def update(self, frame: int, keypoints: Sequence[np.ndarray], confidence: Sequence[np.ndarray]) -> list[int]:
        """The ids of one frame's people (in the given order)."""
        active = [t for t in self._tracks if frame - t.last_frame <= self.max_gap]
        boxes = [person_box(k, c) for k, c in zip(keypoints, confidence)]
        pairs = []
        for i, (kp, conf) in enumerate(zip(keypoints, confidence)):
            for t in active:
                oks = keypoint_similarity(kp, conf, t.keypoints, t.confidence)
                iou = box_iou(boxes[i], t.box)
                if oks >= self.min_similarity or iou >= self.min_iou:
                    pairs.append((oks + iou, i, t))
        ids: list[int | None] = [None] * len(boxes)
        taken: set[int] = set()
        for _, i, t in sorted(pairs, key=lambda p: -p[0]):
            if ids[i] is None and t.id not in taken:
                ids[i] = t.id
                taken.add(t.id)
        for i in range(len(ids)):
            if ids[i] is None:
                ids[i] = self._next_id
                self._next_id += 1
                self._tracks.append(_Track(ids[i], keypoints[i], confidence[i], boxes[i], frame))
        by_id = {t.id: t for t in self._tracks}
        for i, pid in enumerate(ids):
            by_id[pid].keypoints, by_id[pid].confidence = keypoints[i], confidence[i]
            by_id[pid].box, by_id[pid].last_frame = boxes[i], frame
        self._tracks = [t for t in self._tracks if frame - t.last_frame <= self.max_gap]
        return [int(i) for i in ids]
