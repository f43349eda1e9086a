"""Skeleton layouts (joint order, kinematic tree, left/right symmetry) and keypoint mappings.

Layouts
-------
=============  ====  =================================================================
name           J     order
=============  ====  =================================================================
h36m17         17    VideoPose3D's 17-joint Human3.6M subset (pelvis first)
h36m16         16    h36m17 without ``neck_nose`` (what Stacked-Hourglass inputs cover)
h36m32         32    full Human3.6M mocap layout
humaneva15     15    VideoPose3D's HumanEva-I layout
mpii16         16    Stacked-Hourglass / MPII order (pelvis at index 6)
mpi3dhp17      17    MPI-INF-3DHP's 17 test joints reordered so the pelvis is joint 0
                     (``MPI3DHP_RAW_TO_17``); same tree as h36m17 with neck, head, head_top
coco17         17    COCO keypoints
blazepose33    33    MediaPipe Pose landmarks in their official order
=============  ====  =================================================================

Mappings (``map_keypoints``)
----------------------------
Each target joint is a weighted sum (an affine combination) of one or more source joints; an
empty definition means the target joint does not exist in the source and comes out as NaN
(confidence 0). A detector's landmarks (coco17, blazepose33) are not mocap joints: to h36m17 they
go through a measured correction (``_detector_to_h36m``: hips wider and higher, thorax and head
above the shoulder and eye midpoints); to humaneva15 (the HumanEva-I models' training) plainly:

==============  ===================================================  ============================
target joint    from coco17 / blazepose33 to humaneva15              from humaneva15 / mpii16
==============  ===================================================  ============================
pelvis          mean(l_hip, r_hip)                                   pelvis
thorax          mean(l_shoulder, r_shoulder)                         thorax
spine           mean(pelvis, thorax) = mean of both hips, shoulders  mean(pelvis, thorax) / spine
neck_nose       nose                                                 missing (NaN)
head            mean(l_eye, r_eye)                                   head
==============  ===================================================  ============================

``mpi3dhp17 -> h36m17`` takes thorax from neck, neck_nose from head and head from head_top (the
usual correspondence in lifting code). All other joints are copied by name. With ``C == 3`` the last
channel is a confidence and a derived joint gets the minimum confidence of its sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    """A joint layout: names, parent per joint (-1 for the root) and mirrored left/right joints."""

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if len(self.parents) != n:
            raise ValueError(f"{self.name}: {len(self.parents)} parents for {n} joints")
        if len(self.left) != len(self.right):
            raise ValueError(f"{self.name}: left and right joint lists differ in length")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, joint: str) -> int:
        return self.joint_names.index(joint)

    def flip_permutation(self) -> list[int]:
        """Index permutation that swaps every left joint with its right counterpart."""
        perm = list(range(self.num_joints))
        for a, b in zip(self.left, self.right):
            perm[a], perm[b] = b, a
        return perm

    def edges(self) -> list[tuple[int, int]]:
        """(child, parent) pairs of the kinematic tree."""
        return [(j, p) for j, p in enumerate(self.parents) if p >= 0]


def _sk(name: str, joints: str, parents: list[int], left: list[int], right: list[int]) -> Skeleton:
    return Skeleton(name, tuple(joints.split()), tuple(parents), tuple(left), tuple(right))


_LIMBS = "l_shoulder l_elbow l_wrist r_shoulder r_elbow r_wrist"
# Parents, left and right joints of the 17-joint tree that h36m17 and mpi3dhp17 share (the joint
# names differ only along the head chain).
_TREE17 = (
    [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15],
    [4, 5, 6, 11, 12, 13],
    [1, 2, 3, 14, 15, 16],
)

_SKELETONS: dict[str, Skeleton] = {
    s.name: s
    for s in (
        _sk(
            "h36m17",
            "pelvis r_hip r_knee r_ankle l_hip l_knee l_ankle spine thorax neck_nose head " + _LIMBS,
            *_TREE17,
        ),
        _sk(
            "h36m16",
            "pelvis r_hip r_knee r_ankle l_hip l_knee l_ankle spine thorax head " + _LIMBS,
            [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 8, 10, 11, 8, 13, 14],
            [4, 5, 6, 10, 11, 12],
            [1, 2, 3, 13, 14, 15],
        ),
        _sk(
            "h36m32",
            "pelvis r_hip r_knee r_ankle r_toe r_toe_end l_hip l_knee l_ankle l_toe l_toe_end "
            "lower_spine spine thorax neck_nose head "
            "l_collar l_shoulder l_elbow l_wrist l_thumb l_thumb_end l_hand l_hand_end "
            "r_collar r_shoulder r_elbow r_wrist r_thumb r_thumb_end r_hand r_hand_end",
            [-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12,
             16, 17, 18, 19, 20, 19, 22, 12, 24, 25, 26, 27, 28, 27, 30],
            [6, 7, 8, 9, 10, 16, 17, 18, 19, 20, 21, 22, 23],
            [1, 2, 3, 4, 5, 24, 25, 26, 27, 28, 29, 30, 31],
        ),
        _sk(
            "humaneva15",
            "pelvis thorax l_shoulder l_elbow l_wrist r_shoulder r_elbow r_wrist "
            "l_hip l_knee l_ankle r_hip r_knee r_ankle head",
            [-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1],
            [2, 3, 4, 8, 9, 10],
            [5, 6, 7, 11, 12, 13],
        ),
        _sk(
            "mpii16",
            "r_ankle r_knee r_hip l_hip l_knee l_ankle pelvis spine thorax head "
            "r_wrist r_elbow r_shoulder l_shoulder l_elbow l_wrist",
            [1, 2, 6, 6, 3, 4, -1, 6, 7, 8, 11, 12, 8, 8, 13, 14],
            [3, 4, 5, 13, 14, 15],
            [2, 1, 0, 12, 11, 10],
        ),
        _sk(
            "mpi3dhp17",
            "pelvis r_hip r_knee r_ankle l_hip l_knee l_ankle spine neck head head_top " + _LIMBS,
            *_TREE17,
        ),
        _sk(
            "coco17",
            "nose l_eye r_eye l_ear r_ear l_shoulder r_shoulder l_elbow r_elbow l_wrist r_wrist "
            "l_hip r_hip l_knee r_knee l_ankle r_ankle",
            [-1, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14],
            [1, 3, 5, 7, 9, 11, 13, 15],
            [2, 4, 6, 8, 10, 12, 14, 16],
        ),
        _sk(
            "blazepose33",
            "nose l_eye_inner l_eye l_eye_outer r_eye_inner r_eye r_eye_outer l_ear r_ear "
            "mouth_left mouth_right l_shoulder r_shoulder l_elbow r_elbow l_wrist r_wrist "
            "l_pinky r_pinky l_index r_index l_thumb r_thumb l_hip r_hip l_knee r_knee "
            "l_ankle r_ankle l_heel r_heel l_foot_index r_foot_index",
            [-1, 0, 1, 2, 0, 4, 5, 3, 6, 0, 0, 0, 0, 11, 12, 13, 14,
             15, 16, 15, 16, 15, 16, 11, 12, 23, 24, 25, 26, 27, 28, 27, 28],
            [1, 2, 3, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31],
            [4, 5, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32],
        ),
    )
}

SKELETON_NAMES: tuple[str, ...] = tuple(_SKELETONS)

#: Indices of the 32-joint mocap layout kept in h36m17 (VideoPose3D's static-joint removal).
H36M32_TO_17: list[int] = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]

#: Raw MPI-INF-3DHP 17-joint order (pelvis at 14) -> mpi3dhp17 (pelvis first).
MPI3DHP_RAW_TO_17: list[int] = [14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4]


def get_skeleton(name: str) -> Skeleton:
    try:
        return _SKELETONS[name]
    except KeyError:
        raise ValueError(f"unknown skeleton {name!r}; known: {', '.join(SKELETON_NAMES)}") from None


# Target joint -> source joint names averaged (or (name, weight) pairs: an affine combination);
# joints not listed are copied by name if the source has them, else missing.
_DERIVED_FROM_DETECTOR = {
    "pelvis": ("l_hip", "r_hip"),
    "thorax": ("l_shoulder", "r_shoulder"),
    "spine": ("l_hip", "r_hip", "l_shoulder", "r_shoulder"),
    "neck_nose": ("nose",),
    "head": ("l_eye", "r_eye"),
}


def _detector_to_h36m(a: float, b: float, e: float, k: float) -> dict[str, tuple[tuple[str, float], ...]]:
    """A detector's landmarks (COCO / BlazePose definitions) to Human3.6M's mocap joints. With the
    detector's mid-hip m, half hip vector d = (l_hip - r_hip) / 2 and torso t = mid-shoulder - m:
    hips m +- a d + b t (Human3.6M's hip centres sit wider and higher than the landmarks), thorax
    mid-shoulder + e t, head mid-eye + k t; pelvis, spine follow. Fitted in 2D on the Human3.6M
    photographs of S1, S5, S7 (least squares; S8 held out: hips and pelvis 14.6 -> 3.3 px, head
    11.5 -> 2.3 px, all 17 joints 7.8 -> 4.9 px)."""
    lh, rh, ls, rs, le, re = "l_hip", "r_hip", "l_shoulder", "r_shoulder", "l_eye", "r_eye"

    def combo(**weights: float) -> tuple[tuple[str, float], ...]:
        return tuple((name, w) for name, w in weights.items() if w != 0.0)

    pelvis = {lh: 0.5 - b / 2, rh: 0.5 - b / 2, ls: b / 2, rs: b / 2}
    thorax = {lh: -e / 2, rh: -e / 2, ls: 0.5 + e / 2, rs: 0.5 + e / 2}
    return {
        "pelvis": combo(**pelvis),
        "l_hip": combo(**{lh: 0.5 + a / 2 - b / 2, rh: 0.5 - a / 2 - b / 2, ls: b / 2, rs: b / 2}),
        "r_hip": combo(**{lh: 0.5 - a / 2 - b / 2, rh: 0.5 + a / 2 - b / 2, ls: b / 2, rs: b / 2}),
        "thorax": combo(**thorax),
        "spine": combo(**{n: (pelvis[n] + thorax[n]) / 2 for n in pelvis}),
        "neck_nose": (("nose", 1.0),),
        "head": combo(**{le: 0.5, re: 0.5, ls: k / 2, rs: k / 2, lh: -k / 2, rh: -k / 2}),
    }


_DETECTOR_TO_H36M = _detector_to_h36m(a=1.475, b=0.171, e=0.167, k=0.141)
_OVERRIDES: dict[tuple[str, str], dict] = {
    ("coco17", "h36m17"): _DETECTOR_TO_H36M,
    ("coco17", "humaneva15"): _DERIVED_FROM_DETECTOR,
    ("blazepose33", "h36m17"): _DETECTOR_TO_H36M,
    ("blazepose33", "humaneva15"): _DERIVED_FROM_DETECTOR,
    ("humaneva15", "h36m17"): {"spine": ("pelvis", "thorax")},
    ("mpi3dhp17", "h36m17"): {"thorax": ("neck",), "neck_nose": ("head",), "head": ("head_top",)},
}
_SUPPORTED: set[tuple[str, str]] = set(_OVERRIDES) | {
    ("mpii16", "h36m17"),
    ("mpii16", "h36m16"),
    ("h36m17", "h36m16"),
    ("h36m16", "h36m17"),
    ("h36m17", "humaneva15"),
    ("h36m32", "h36m17"),
}

Weighted = tuple[tuple[str, float], ...]


def _weighted(sources: tuple) -> Weighted:
    if sources and isinstance(sources[0], tuple):
        return tuple((str(n), float(w)) for n, w in sources)
    return tuple((n, 1.0 / len(sources)) for n in sources)


def mapping_table(src: str, dst: str) -> dict[str, Weighted]:
    """For each joint of ``dst`` (in order), the ``(src joint, weight)`` pairs whose weighted sum makes
    it (weights sum to 1); ``()`` = missing."""
    if src != dst and (src, dst) not in _SUPPORTED:
        pairs = ", ".join(f"{a}->{b}" for a, b in sorted(_SUPPORTED))
        raise ValueError(f"no keypoint mapping {src}->{dst}; supported: {pairs}")
    src_names = set(get_skeleton(src).joint_names)
    overrides = _OVERRIDES.get((src, dst), {})
    table: dict[str, Weighted] = {}
    for joint in get_skeleton(dst).joint_names:
        if joint in overrides:
            table[joint] = _weighted(overrides[joint])
        else:
            table[joint] = ((joint, 1.0),) if joint in src_names else ()
    return table


@cache
def mapping_indices(src: str, dst: str) -> tuple[tuple[tuple[int, float], ...], ...]:
    """``mapping_table`` as ``(source joint index, weight)`` pairs, one tuple per ``dst`` joint."""
    s = get_skeleton(src)
    return tuple(tuple((s.index(n), w) for n, w in pairs) for pairs in mapping_table(src, dst).values())


def map_keypoints(points: np.ndarray, src: str, dst: str, *, confidence: bool | None = None) -> np.ndarray:
    """Convert ``(..., J_src, C)`` keypoints to ``(..., J_dst, C)`` following ``mapping_table``.

    If ``confidence`` (default: ``C == 3``) the last channel is a score: a derived joint gets the
    minimum score of its sources, a missing joint gets NaN coordinates and score 0. Pass
    ``confidence=False`` to map 3D points.
    """
    points = np.asarray(points)
    j_src = get_skeleton(src).num_joints
    if points.ndim < 2 or points.shape[-2] != j_src:
        raise ValueError(f"expected (..., {j_src}, C) keypoints for {src}, got {points.shape}")
    dtype = points.dtype if np.issubdtype(points.dtype, np.floating) else np.float64
    points = points.astype(dtype, copy=False)
    has_conf = points.shape[-1] == 3 if confidence is None else confidence
    table = mapping_indices(src, dst)
    out = np.full(points.shape[:-2] + (len(table), points.shape[-1]), np.nan, dtype=dtype)
    for j, sources in enumerate(table):
        if not sources:
            if has_conf:
                out[..., j, -1] = 0.0
            continue
        index = [i for i, _ in sources]
        weights = np.array([w for _, w in sources], dtype=dtype)
        picked = points[..., index, :]
        channels = slice(None, -1) if has_conf else slice(None)
        out[..., j, channels] = np.tensordot(weights, np.moveaxis(picked[..., channels], -2, 0), axes=1)
        if has_conf:
            out[..., j, -1] = picked[..., -1].min(axis=-1)
    return out
