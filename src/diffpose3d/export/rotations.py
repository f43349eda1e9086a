"""Joint rotations of a skeleton solved from 3D joint positions, with a rest pose from the person's own
bone lengths.

The rest pose is a T-pose in the export frame (y up, the person facing +z, their left +x): legs down,
spine, neck and head up, hips, shoulders and arms out to their side; each bone's length is the
person's median over their frames. Each frame's rotations are then solved joint by joint, parents
first:

- a joint with one child (a limb's joints, spine, neck): the smallest rotation, in its parent's
  frame, that takes the rest bone to the observed bone. Twist about a bone is not observable from
  joint positions; this convention gives every such joint **zero twist relative to its parent**
  (swing only);
- a joint with several children (pelvis: hips and spine; thorax: neck and shoulders): the rotation
  that best aligns its rest child bones with the observed ones (Kabsch), so the hips orient the
  pelvis and the shoulders the chest, twist included;
- a joint without children (wrists, ankles, head): its parent's orientation (identity).

Each joint's local translation (its offset from its parent, in the parent's rotated frame) is then
what reproduces the observed position exactly: the rest offset scaled by that frame's bone length,
up to the small disagreement of a multi-child joint's bones with its fitted rotation. Forward
kinematics of rotations and translations gives the positions back (to float precision); a reader
that keeps the rest offsets and drops the per-joint translations gets the same motion on rigid
bones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

UP, DOWN = np.array([0.0, 1.0, 0.0]), np.array([0.0, -1.0, 0.0])
LEFT = np.array([1.0, 0.0, 0.0])  # the person's left, facing +z
SIDEWAYS = ("hip", "shoulder", "elbow", "wrist", "hand", "collar", "thumb")
DOWNWARDS = ("knee", "ankle", "toe", "foot", "heel")


def rest_direction(name: str) -> np.ndarray:
    """The unit direction of the bone that ends at joint `name`, in the T-pose."""
    side = -1.0 if name.startswith("r_") else 1.0
    if any(part in name for part in SIDEWAYS):
        return side * LEFT
    if any(part in name for part in DOWNWARDS):
        return DOWN
    return UP


def topological_order(parents: list[int]) -> list[int]:
    order, placed = [], set()
    while len(order) < len(parents):
        ready = [j for j, p in enumerate(parents) if j not in placed and (p < 0 or p in placed)]
        if not ready:
            raise ValueError(f"parents {parents} do not form a tree")
        order += ready
        placed.update(ready)
    return order


@dataclass
class SolvedPose:
    """`offsets (J, 3)`: rest offsets (the root's is zero); per frame `local (T, J)` rotations
    (scipy, parent frame), `translations (T, J, 3)`: each joint's local translation (the root's: its
    position)."""

    offsets: np.ndarray
    local: list[Rotation]  # per joint, a Rotation of T frames
    translations: np.ndarray

    def local_quaternions(self) -> np.ndarray:
        """(T, J, 4) x, y, z, w."""
        return np.stack([r.as_quat() for r in self.local], 1)


def bone_lengths(positions: np.ndarray, parents: list[int]) -> np.ndarray:
    """(J,) the median length of the bone ending at each joint (0 for the root)."""
    lengths = np.zeros(len(parents))
    for j, p in enumerate(parents):
        if p >= 0:
            lengths[j] = float(np.median(np.linalg.norm(positions[:, j] - positions[:, p], axis=-1)))
    return lengths


def _minimal_rotation(a: np.ndarray, b: np.ndarray) -> Rotation:
    """The smallest rotations taking directions `a (T, 3)` to `b (T, 3)`."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis, axis=-1), np.einsum("ti,ti->t", a, b)
    angle = np.arctan2(s, c)
    # parallel: no rotation; antiparallel: half a turn about any axis normal to a
    other = np.cross(a, np.where(np.abs(a[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]))
    axis = np.where((s > 1e-9)[:, None], axis, other)
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    return Rotation.from_rotvec(axis * angle[:, None])


def _kabsch(source: np.ndarray, target: np.ndarray) -> Rotation:
    """Rotations `R (T)` minimising sum_k |R s_k - t_k|^2 for unit `source (K, 3)`, `target (T, K, 3)`."""
    target = target / np.maximum(np.linalg.norm(target, axis=-1, keepdims=True), 1e-12)
    h = np.einsum("tki,kj->tij", target, source)  # sum_k t_k s_k^T
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))
    u[:, :, 2] *= d[:, None]
    return Rotation.from_matrix(u @ vt)


def solve_rotations(positions: np.ndarray, parents: list[int], joint_names: list[str]) -> SolvedPose:
    """Rotations and translations of the skeleton `parents` that reproduce `positions (T, J, 3)`."""
    t, j = positions.shape[:2]
    lengths = bone_lengths(positions, parents)
    offsets = np.stack([rest_direction(n) * lengths[k] for k, n in enumerate(joint_names)])
    offsets[[k for k, p in enumerate(parents) if p < 0]] = 0.0
    children = {k: [c for c, p in enumerate(parents) if p == k] for k in range(j)}
    glob: dict[int, Rotation] = {}
    local: list[Rotation | None] = [None] * j
    identity = Rotation.identity(t)
    for k in topological_order(parents):
        parent = glob.get(parents[k], identity) if parents[k] >= 0 else identity
        kids = [c for c in children[k] if lengths[c] > 1e-9]
        if len(kids) == 1:
            c = kids[0]
            observed = parent.inv().apply(positions[:, c] - positions[:, k])
            local[k] = _minimal_rotation(np.broadcast_to(offsets[c], (t, 3)), observed)
            glob[k] = parent * local[k]
        elif kids:
            rest = np.stack([offsets[c] / lengths[c] for c in kids])
            glob[k] = _kabsch(rest, np.stack([positions[:, c] - positions[:, k] for c in kids], 1))
            local[k] = parent.inv() * glob[k]
        else:
            local[k], glob[k] = identity, parent
    translations = np.empty((t, j, 3))
    for k, p in enumerate(parents):
        translations[:, k] = positions[:, k] if p < 0 else glob[p].inv().apply(positions[:, k] - positions[:, p])
    return SolvedPose(offsets, local, translations)


def forward_kinematics(local: np.ndarray, translations: np.ndarray, parents: list[int]) -> np.ndarray:
    """Positions (T, J, 3) from local rotation matrices `(T, J, 3, 3)` and local translations."""
    t, j = translations.shape[:2]
    glob = np.zeros((t, j, 3, 3))
    pos = np.zeros((t, j, 3))
    for k in topological_order(parents):
        p = parents[k]
        if p < 0:
            glob[:, k], pos[:, k] = local[:, k], translations[:, k]
        else:
            glob[:, k] = glob[:, p] @ local[:, k]
            pos[:, k] = pos[:, p] + np.einsum("tij,tj->ti", glob[:, p], translations[:, k])
    return pos
