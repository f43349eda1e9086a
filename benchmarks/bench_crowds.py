"""Crowds made from single-person photos: how many people the detector finds, and how many chimeras.

Scenes are composites of the four Human3.6M photographs of `../shared/data/photos` (each person
cut out with a margin around their mocap 2D joints), scaled, mirrored and pasted side by side,
overlapping, and staggered in depth (smaller and higher = further away, the
nearer pasted last, over the further ones), so the true 2D joints of every person are known.

Scoring, on the 13 joints both layouts define alike (nose, shoulders, elbows, wrists, hips, knees,
ankles): each seen joint (visibility >= 0.5) of a
detection is claimed by the pasted person whose same joint (or its mirror) is nearest, within 0.2
of that person's size. A detection's owner is the person most of its joints belong to; it is a
**chimera** when two or more of its seen joints belong to somebody else. A person is **found** when
a detection that is no chimera owns them. Only joints no later cut-out covers count, and only people
with at least 4 of them.

    python benchmarks/bench_crowds.py            # before (no checks, one pass) and after, every scene
    python benchmarks/bench_crowds.py --save runs/crowds   # also write the scenes as JPEG
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"
# h36m17 index -> blazepose33 index, and each blazepose joint's mirror among them
H36M_TO_BP = {9: 0, 11: 11, 12: 13, 13: 15, 14: 12, 15: 14, 16: 16, 4: 23, 5: 25, 6: 27, 1: 24, 2: 26, 3: 28}
MIRROR = {0: 0, 11: 12, 12: 11, 13: 14, 14: 13, 15: 16, 16: 15, 23: 24, 24: 23, 25: 26, 26: 25, 27: 28, 28: 27}
OWN_RADIUS = 0.2  # of the person's size
MIN_FOUND_JOINTS = 4  # a person counts (in the scene, and as found) with this many joints seen


@dataclass
class Person:
    image: np.ndarray  # the cut-out (h, w, 3)
    joints: dict[int, np.ndarray]  # blazepose index -> (2,) pixel in the cut-out


@dataclass
class Scene:
    name: str
    image: np.ndarray
    people: list[dict[int, np.ndarray]]  # per pasted person: blazepose index -> pixel


def load_people(photos: Path) -> list[Person]:
    """The four photographs' people, each cut out around their joints."""
    from PIL import Image

    gt = np.load(photos / "ground_truth.npz")
    people = []
    for name, kp in zip(gt["image"], gt["keypoints_2d"]):
        image = np.asarray(Image.open(photos / str(name)).convert("RGB"))
        lo, hi = kp.min(0), kp.max(0)
        margin = 0.18 * (hi - lo).max()
        x0, y0 = np.maximum(lo - margin, 0).astype(int)
        x1, y1 = np.minimum(hi + margin, [image.shape[1], image.shape[0]]).astype(int)
        joints = {bp: kp[h] - [x0, y0] for h, bp in H36M_TO_BP.items()}
        people.append(Person(image[y0:y1, x0:x1], joints))
    return people


def _resize(person: Person, scale: float, flip: bool = False) -> Person:
    from PIL import Image

    h, w = person.image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = np.asarray(Image.fromarray(person.image).resize(size, Image.BILINEAR))
    joints = {j: p * [size[0] / w, size[1] / h] for j, p in person.joints.items()}
    if flip:
        image = image[:, ::-1]
        joints = {MIRROR[j]: np.array([size[0] - 1 - p[0], p[1]]) for j, p in joints.items()}
    return Person(np.ascontiguousarray(image), joints)


def compose(name: str, people: list[Person], placements: list[tuple[int, float, float, float, bool]],
            size: tuple[int, int]) -> Scene:
    """`placements`: (person, scale, x, y of the feet's centre in the canvas, mirrored), drawn in
    order. A person's true joints are those no later cut-out covers (and inside the canvas)."""
    w, h = size
    canvas = np.full((h, w, 3), 118, np.uint8)
    truth, rects = [], []
    for index, scale, fx, fy, flip in placements:
        p = _resize(people[index], scale, flip)
        ph, pw = p.image.shape[:2]
        x0, y0 = round(fx - pw / 2), round(fy - ph)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + pw, w), min(y0 + ph, h)
        canvas[cy0:cy1, cx0:cx1] = p.image[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        truth.append({j: q + [x0, y0] for j, q in p.joints.items()})
        rects.append((cx0, cy0, cx1, cy1))
    for k, joints in enumerate(truth):
        for j in list(joints):
            x, y = joints[j]
            covered = any(a <= x < c and b <= y < d for a, b, c, d in rects[k + 1:])
            if covered or not (0 <= x < w and 0 <= y < h):
                del joints[j]
    return Scene(name, canvas, truth)


def random_scenes(people: list[Person], count: int, seed: int = 0) -> list[Scene]:
    """`count` scenes of 2 to 5 people at random places and depths (further: smaller, higher)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        n = int(rng.integers(2, 6))
        depth = np.sort(rng.uniform(0, 1, n))
        placements = [(int(rng.integers(0, len(people))), 0.45 + 0.55 * d, float(rng.uniform(150, 650)),
                       250 + 380 * d, bool(rng.integers(0, 2))) for d in depth]
        out.append(compose(f"random_{k:02d}", people, placements, (800, 660)))
    return out


def scenes(people: list[Person]) -> list[Scene]:
    """Two to five people: side by side, overlapping, staggered in depth (a queue, like skiers)."""
    s1, s5, s7, s8 = range(4)
    out = [
        compose("two_side_by_side", people, [(s1, 1.0, 200, 560, False), (s7, 1.0, 430, 560, False)], (640, 600)),
        compose("two_overlapping", people, [(s7, 0.8, 380, 470, False), (s1, 1.0, 300, 560, False)], (640, 600)),
        compose("three_in_depth", people, [(s8, 0.55, 470, 360, False), (s7, 0.75, 380, 450, True),
                                           (s1, 1.0, 260, 580, False)], (720, 620)),
        compose("four_in_a_row", people, [(s1, 0.9, 130, 540, False), (s7, 0.9, 300, 540, False),
                                          (s8, 0.9, 500, 540, True), (s5, 0.9, 700, 540, False)], (840, 580)),
        compose("five_queue", people, [(s8, 0.45, 640, 300, True), (s7, 0.55, 540, 350, False),
                                       (s1, 0.68, 430, 420, True), (s7, 0.82, 320, 500, True),
                                       (s1, 1.0, 200, 600, False)], (800, 640)),
        compose("five_crowd", people, [(s1, 0.7, 150, 420, False), (s7, 0.7, 300, 410, True),
                                       (s8, 0.7, 470, 420, False), (s1, 0.95, 230, 600, True),
                                       (s7, 0.95, 420, 610, False)], (640, 640)),
        compose("two_behind", people, [(s7, 0.7, 330, 420, False), (s1, 1.0, 320, 620, False)], (640, 640)),
        compose("three_stacked", people, [(s8, 0.6, 420, 330, False), (s1, 0.8, 230, 450, True),
                                          (s7, 1.0, 360, 640, False)], (640, 660)),
    ]
    return out


def score(scene: Scene, detections) -> dict:
    """People found and chimeras of one scene's detections."""
    sizes = []
    for t in scene.people:
        pts = np.stack(list(t.values())) if t else np.zeros((1, 2))
        sizes.append(max(float(np.hypot(*(pts.max(0) - pts.min(0)))), 1.0))
    owners, chimeras = [], 0
    for det in detections:
        claims = []
        for j in MIRROR:
            if det.confidence[j] < 0.5:
                continue
            best, who = np.inf, None
            for k, t in enumerate(scene.people):
                for jj in {j, MIRROR[j]}:
                    if jj in t:
                        d = np.hypot(*(det.keypoints[j] - t[jj])) / sizes[k]
                        if d < best:
                            best, who = d, k
            if best < OWN_RADIUS:
                claims.append(who)
        if not claims:
            continue
        owner = max(set(claims), key=claims.count)
        if len(claims) - claims.count(owner) >= 2:
            chimeras += 1
        elif claims.count(owner) >= MIN_FOUND_JOINTS:
            owners.append(owner)
    visible = sum(len(t) >= MIN_FOUND_JOINTS for t in scene.people)
    return {"people": visible, "detections": len(detections), "found": len(set(owners)), "chimeras": chimeras}


def run(all_scenes: list[Scene], checks: bool) -> list[dict]:
    from diffpose3d.detect.mediapipe_pose import MediaPipePoseDetector

    rows = []
    with MediaPipePoseDetector(body_checks=checks) as detector:
        for scene in all_scenes:
            start = time.perf_counter()
            found = detector.detect_people(scene.image)
            seconds = time.perf_counter() - start
            rows.append({"scene": scene.name, **score(scene, found), "refused": len(detector.last_refused),
                         "seconds": seconds,
                         "notes": [n for d in found for n in d.notes] + detector.last_refused})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default=str(PHOTOS))
    ap.add_argument("--random", type=int, default=20, help="also this many random scenes (seeded)")
    ap.add_argument("--save", default=None, help="also write each scene as <folder>/<scene>.jpg")
    ap.add_argument("--out", default="runs/bench_crowds.json")
    args = ap.parse_args()
    photos = Path(args.photos)
    if not (photos / "ground_truth.npz").is_file():
        raise SystemExit(f"no photographs with ground truth in {photos}")
    people = load_people(photos)
    all_scenes = scenes(people) + random_scenes(people, args.random)
    if args.save:
        from PIL import Image

        Path(args.save).mkdir(parents=True, exist_ok=True)
        for s in all_scenes:
            Image.fromarray(s.image).save(Path(args.save) / f"{s.name}.jpg", quality=90)
    report = {"before": run(all_scenes, checks=False), "after": run(all_scenes, checks=True)}
    print(f"{'scene':<18} {'people':>6} | {'before: found chimeras':>22} | {'after: found chimeras refused':>30}")
    for b, a in zip(report["before"], report["after"]):
        print(f"{b['scene']:<18} {b['people']:>6} | {b['found']:>13} {b['chimeras']:>8} | "
              f"{a['found']:>12} {a['chimeras']:>8} {a['refused']:>8}")
    for when in ("before", "after"):
        rows = report[when]
        fixed = [r for r in rows if not r["scene"].startswith("random")]
        print(f"{when}, designed scenes: {sum(r['found'] for r in fixed)} of {sum(r['people'] for r in fixed)} "
              f"people found, {sum(r['chimeras'] for r in fixed)} chimeras")
        print(f"{when}: {sum(r['found'] for r in rows)} of {sum(r['people'] for r in rows)} people found, "
              f"{sum(r['chimeras'] for r in rows)} chimeras, {np.median([r['seconds'] for r in rows]):.2f} s "
              "per image (median)")
    for row in report["after"]:
        for note in row["notes"]:
            print(f"  {row['scene']}: {note}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
