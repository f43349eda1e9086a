"""glTF 2.0 binary (GLB) of a result: an animated skeleton per person.

Each person is a node `person<ID>` (its `extras.diffpose3d` holds the person's per-frame, per-joint
spread of the hypotheses and the root's per-axis spread, metres) over a hierarchy of joint nodes
`person<ID>_<joint>` whose rest translations are the person's own bone lengths in a T-pose
(`export.rotations`; each joint node's `extras.diffpose3d.spread_m_median` is its median spread).
One animation, `motion`, drives every joint's `translation` (the root: its position in the scene;
the others: their offset from their parent, the rest offset up to the frame's bone length) and the
`rotation` of every joint with children, at the frame times of the video (frame / fps, the same
clock for every person), linear interpolation. The frame is the export frame of `export.motion`:
y up, metres, the camera at the origin looking along -z. Written with the standard library: the
JSON chunk, then one binary chunk that holds every accessor.
"""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import numpy as np

from diffpose3d.export.motion import Motion
from diffpose3d.export.rotations import solve_rotations
from diffpose3d.io.atomic import atomic_write

GLB_MAGIC, GLB_VERSION = 0x46546C67, 2
CHUNK_JSON, CHUNK_BIN = 0x4E4F534A, 0x004E4942
FLOAT = 5126
SPREAD_DIGITS = 5


class _Buffer:
    """Accessors appended to one binary buffer, 4-byte aligned, one buffer view each."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, array: np.ndarray, kind: str, bounds: bool = False) -> int:
        array = np.ascontiguousarray(array, dtype="<f4")
        offset = len(self.data)
        self.data += array.tobytes()
        self.data += b"\0" * (-len(self.data) % 4)
        self.views.append({"buffer": 0, "byteOffset": offset, "byteLength": int(array.nbytes)})
        accessor = {"bufferView": len(self.views) - 1, "componentType": FLOAT, "count": int(array.shape[0]), "type": kind}
        if bounds:
            flat = array.reshape(array.shape[0], -1)
            accessor["min"], accessor["max"] = flat.min(0).tolist(), flat.max(0).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def _continuous(quats: np.ndarray) -> np.ndarray:
    """Unit quaternions (T, 4), each on the same side as the one before (no flips between keys)."""
    q = quats / np.linalg.norm(quats, axis=-1, keepdims=True)
    for t in range(1, len(q)):
        if np.dot(q[t], q[t - 1]) < 0:
            q[t] = -q[t]
    return q


def _rounded(a: np.ndarray) -> list:
    a = np.round(np.asarray(a, np.float64), SPREAD_DIGITS)
    return np.where(np.isfinite(a), a, None).tolist()


def _person(doc: dict, buf: _Buffer, motion: Motion, channels: list, samplers: list) -> int:
    """Add one person's nodes and animation channels; returns the person's node index."""
    solved = solve_rotations(motion.positions, motion.parents, motion.joint_names)
    quats = solved.local_quaternions()
    nodes = doc["nodes"]
    first = len(nodes) + 1
    person = {"name": f"person{motion.person_id}", "children": [],
              "extras": {"diffpose3d": {
                  "person_id": motion.person_id, "joint_names": motion.joint_names, "first_frame": motion.first_frame,
                  "fps": motion.fps, "placed_in_scene": motion.placed, "units": "m",
                  "spread_m": _rounded(motion.spread), "root_std_m": _rounded(np.abs(motion.root_std)),
                  "spread": "per frame, per joint: the hypotheses' RMS standard deviation sqrt(trace(cov) / 3)",
                  "root_std": "per frame: the hypotheses' root standard deviation along x, y, z (export axes)"}}}
    nodes.append(person)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a joint without any finite spread: NaN, written null
        median = np.nanmedian(np.where(np.isfinite(motion.spread), motion.spread, np.nan), 0)
    for k, name in enumerate(motion.joint_names):
        rest = solved.translations[0, k] if motion.parents[k] < 0 else solved.offsets[k]
        nodes.append({"name": f"person{motion.person_id}_{name}", "translation": [float(v) for v in rest],
                      "extras": {"diffpose3d": {"spread_m_median": _rounded(median[k])}}})
    for k, p in enumerate(motion.parents):
        (person if p < 0 else nodes[first + p]).setdefault("children", []).append(first + k)
    times = buf.add(motion.times(), "SCALAR", bounds=True)
    for k, _parent in enumerate(motion.parents):
        targets = [("translation", solved.translations[:, k], "VEC3")]
        if any(q == k for q in motion.parents):
            targets.append(("rotation", _continuous(quats[:, k]), "VEC4"))
        for path, values, kind in targets:
            samplers.append({"input": times, "output": buf.add(values, kind), "interpolation": "LINEAR"})
            channels.append({"sampler": len(samplers) - 1, "target": {"node": first + k, "path": path}})
    return first - 1


def gltf_document(motions: list[Motion], generator: str = "diffpose3d") -> tuple[dict, bytes]:
    """The glTF JSON and its binary buffer for the people's `motions`."""
    doc: dict = {"asset": {"version": "2.0", "generator": generator}, "scene": 0, "nodes": []}
    buf = _Buffer()
    channels: list = []
    samplers: list = []
    people = [_person(doc, buf, m, channels, samplers) for m in motions]
    doc["scenes"] = [{"name": "diffpose3d", "nodes": people}]
    doc["animations"] = [{"name": "motion", "channels": channels, "samplers": samplers}]
    doc["buffers"] = [{"byteLength": len(buf.data)}]
    doc["bufferViews"], doc["accessors"] = buf.views, buf.accessors
    return doc, bytes(buf.data)


def glb_bytes(doc: dict, binary: bytes) -> bytes:
    """The GLB container: a 12-byte header, the JSON chunk (space-padded), the BIN chunk (zero-padded)."""
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return (struct.pack("<III", GLB_MAGIC, GLB_VERSION, total) + struct.pack("<II", len(text), CHUNK_JSON) + text
            + struct.pack("<II", len(binary), CHUNK_BIN) + binary)


def write_glb(motions: list[Motion], path: str | Path, generator: str = "diffpose3d") -> Path:
    """Write the GLB of the people's `motions` to `path` (atomically)."""
    data = glb_bytes(*gltf_document(motions, generator))
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)
