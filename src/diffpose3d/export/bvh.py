"""BVH (Biovision hierarchy) of one person's motion.

- HIERARCHY: the model's joints, OFFSETs from the person's own bone lengths in a T-pose
  (`export.rotations`), metres, y up, the person facing +z in the rest pose; a leaf joint gets an
  `End Site` a tenth of its bone's length further along its rest direction.
- MOTION: one frame per video frame of the person's span, `Frame Time` 1 / fps. Every joint has
  `Xposition Yposition Zposition Zrotation Xrotation Yrotation`: the rotation is `Rz * Rx * Ry`
  (intrinsic, degrees; a vector turns as `R v`), the position is the joint's translation from its
  parent in the parent's rotated frame, which takes the OFFSET's place (as Blender reads a joint's
  position channels); the root's is its position in the scene (camera at the origin, looking
  along -z). The positions differ from the OFFSETs only by the frame's bone length, so a reader
  that ignores non-root position channels plays the same motion on rigid bones.
- Twist convention: `export.rotations` (zero twist relative to the parent for one-child joints).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffpose3d.export.motion import Motion
from diffpose3d.export.rotations import SolvedPose, solve_rotations
from diffpose3d.io.atomic import atomic_write

CHANNELS = "Xposition Yposition Zposition Zrotation Xrotation Yrotation"
EULER = "ZXY"  # scipy's intrinsic order for Rz * Rx * Ry
END_SITE_SHARE = 0.1


def _fmt(values) -> str:
    return " ".join(f"{v:.6f}" for v in np.round(values, 6) + 0.0)  # no "-0.000000"


def _hierarchy(motion: Motion, solved: SolvedPose) -> tuple[list[str], list[int]]:
    """The HIERARCHY lines and the joints in the order of their channels (depth first)."""
    parents, names = motion.parents, motion.joint_names
    children = {k: [c for c, p in enumerate(parents) if p == k] for k in range(len(parents))}
    order: list[int] = []
    lines: list[str] = ["HIERARCHY"]

    def joint(k: int, depth: int) -> None:
        pad = "  " * depth
        kind = "ROOT" if parents[k] < 0 else "JOINT"
        lines.extend([f"{pad}{kind} {names[k]}", f"{pad}{{", f"{pad}  OFFSET {_fmt(solved.offsets[k])}",
                      f"{pad}  CHANNELS 6 {CHANNELS}"])
        order.append(k)
        for c in children[k]:
            joint(c, depth + 1)
        if not children[k]:
            tip = solved.offsets[k] * END_SITE_SHARE
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {_fmt(tip)}", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    roots = [k for k, p in enumerate(parents) if p < 0]
    if len(roots) != 1:
        raise ValueError(f"a BVH skeleton needs one root, the layout has {len(roots)}")
    joint(roots[0], 0)
    return lines, order


def bvh_text(motion: Motion) -> str:
    """The BVH file of `motion` as text."""
    solved = solve_rotations(motion.positions, motion.parents, motion.joint_names)
    lines, order = _hierarchy(motion, solved)
    euler = np.stack([solved.local[k].as_euler(EULER, degrees=True) for k in order], 1)  # (T, J, 3) z, x, y
    trans = solved.translations[:, order]
    values = np.concatenate([trans, euler], -1).reshape(motion.num_frames, -1)
    lines += ["MOTION", f"Frames: {motion.num_frames}", f"Frame Time: {1.0 / motion.fps:.8f}"]
    lines += [_fmt(row) for row in values]
    return "\n".join(lines) + "\n"


def write_bvh(motion: Motion, path: str | Path) -> Path:
    """Write the BVH of `motion` to `path` (atomically)."""
    text = bvh_text(motion)
    with atomic_write(path, "w", encoding="ascii") as handle:
        handle.write(text)
    return Path(path)
