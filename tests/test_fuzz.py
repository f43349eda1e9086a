"""Property-based fuzzing of the readers and of `predict` with hostile input (Hypothesis).

The property everywhere: a reader returns a usable result (finite positions and confidences,
joints without evidence flagged with confidence 0) or raises a `DiffPoseError` whose message is
one line naming the file; any other exception is a failure. `predict` through the CLI either exits
0 with a complete output pair that parses, or exits non-zero with one stderr line naming the file,
leaving no partial or temporary file behind.

The runs are derandomized and keep no example database, so CI sees the same cases every time and
no `.hypothesis` folder is written.
"""

from __future__ import annotations

import functools
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from diffpose3d.cli import main
from diffpose3d.data.gmm_files import read_gmm_file
from diffpose3d.data.h36m import load_h36m
from diffpose3d.data.humaneva import load_humaneva
from diffpose3d.data.keypoints import FAR_OUTSIDE, load_keypoints
from diffpose3d.data.mpi3dhp import load_3dhp
from diffpose3d.errors import DiffPoseError
from diffpose3d.inference.inputs import read_input
from diffpose3d.inference.outputs import load_result_npz, prediction_schema
from diffpose3d.io.images import read_image
from diffpose3d.io.video import VideoReader
from diffpose3d.skeleton import get_skeleton


def reject_constant(name: str):
    raise AssertionError(f"bare {name} in a JSON output (not JSON)")


def fuzz(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples, derandomize=True, database=None, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


# -- checks ------------------------------------------------------------------------------------

def check_error(exc: BaseException, path: Path) -> None:
    assert isinstance(exc, DiffPoseError), f"{type(exc).__name__} escaped: {exc}"
    text = str(exc)
    assert len(text.splitlines()) == 1, f"message is not one line: {text!r}"
    assert str(path) in text, f"message does not name {path}: {text!r}"


def attempt(fn, path: Path):
    """`fn()`, or None when it raised a well-formed DiffPoseError (anything else propagates)."""
    try:
        out = fn()
    except DiffPoseError as exc:
        check_error(exc, path)
        event("one-line error")
        return None
    event("read")
    return out


def check_evidence(ev, num_joints: int | None = None) -> None:
    t = len(ev.frame_indices)
    assert t >= 1
    j = ev.confidence.shape[1]
    if num_joints is not None:
        assert j == num_joints
    assert ev.confidence.shape == (t, j) and np.isfinite(ev.confidence).all()
    for part in (ev.gmm.weights, ev.gmm.means, ev.gmm.covariances):
        assert part.shape[:2] == (t, j) and bool(torch.isfinite(part).all())
    w, h = ev.image_size
    assert w > 0 and h > 0


def check_sequence(seq, layout: str) -> None:
    assert len(seq) >= 1
    assert seq.keypoints_2d.shape[1:] == (get_skeleton(layout).num_joints, 2)
    assert np.isfinite(seq.keypoints_2d).all()
    assert seq.confidence is not None and np.isfinite(seq.confidence).all()


def fresh_dir(root: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=root))


def npz_bytes(compressed: bool = False, **arrays) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def boxed(obj) -> np.ndarray:
    """A 0-d object array holding `obj` (how the community files pickle their dicts)."""
    out = np.empty((), dtype=object)
    out[()] = obj
    return out


# -- strategies --------------------------------------------------------------------------------
#
# Each input is drawn either "plausible" (the right structure, with NaN / inf / absurd values and
# zero confidences poked in, so the graceful path is exercised) or "hostile" (random shapes,
# dtypes, keys and junk), about half and half.

EDGE_FLOATS = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e38, -1e38, 1e300, 5e-324, 320.5])
PIXELS = st.floats(0.0, 1000.0)
FLOATS = st.one_of(PIXELS, EDGE_FLOATS, st.floats(allow_nan=True, allow_infinity=True))
LAYOUTS = ["coco17", "humaneva15", "h36m17", "blazepose33", "mpii16", "h36m32", "zzz", ""]
JOINT_COUNTS = [17, 15, 16, 33, 32, 12, 1, 0]
LAYOUT_OF = {17: "coco17", 33: "blazepose33", 15: "humaneva15", 16: "mpii16"}


def float_arrays(shape) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float64, shape, elements=FLOATS)


@st.composite
def hostile_arrays(draw, shape=None, dtypes=("float32", "float64", "float16", "int8", "int64", "uint16",
                                             "bool", "complex64", "<U3", "|S2", "object")) -> np.ndarray:
    """Arrays of hostile shapes and dtypes: NaN/inf/huge values, strings, objects, 0-length axes."""
    if shape is None:
        shape = draw(st.one_of(
            st.tuples(st.integers(0, 4), st.sampled_from(JOINT_COUNTS), st.sampled_from([2, 3, 1, 4])),
            hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
        ))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    if dtype.kind in "fc":
        with np.errstate(all="ignore"):
            return draw(float_arrays(shape)).astype(dtype)
    if dtype.kind == "O":
        values = draw(st.lists(st.one_of(st.integers(), st.floats(), st.text(max_size=2), st.none()),
                               min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        out = np.empty(int(np.prod(shape)), dtype=object)
        out[:] = values
        return out.reshape(shape)
    return draw(hnp.arrays(dtype, shape))


def poke(draw, arr: np.ndarray, most: int = 5) -> np.ndarray:
    """Put NaN / inf / absurd values at a few places of `arr` (single numbers or whole joints)."""
    for _ in range(draw(st.integers(0, most)) if arr.size else 0):
        index = tuple(draw(st.integers(0, n - 1)) for n in arr.shape)
        arr[index[:-1] if arr.ndim > 1 and draw(st.booleans()) else index] = draw(EDGE_FLOATS)
    return arr


def random_generator(draw) -> np.random.Generator:
    return np.random.default_rng(draw(st.integers(0, 2**16)))


@st.composite
def plausible_keypoints(draw, joints=(17, 17, 33, 15, 16), channels=(2, 3), frames=(1, 4)) -> np.ndarray:
    """(T, J, 2|3) pixels (+ confidence with zeros), with holes and absurd values poked in."""
    t, j, c = draw(st.integers(*frames)), draw(st.sampled_from(joints)), draw(st.sampled_from(channels))
    rng = random_generator(draw)
    kp = rng.uniform(0, 640, (t, j, c))
    if c == 3:
        kp[..., 2] = rng.choice([0.0, 0.0, 0.3, 0.9, 1.0, 2.0], size=(t, j))
    return poke(draw, kp)


IMAGE_SIZES = st.one_of(
    st.just(np.array([640, 480])),
    float_arrays(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3)),
    hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_dims=2, max_side=3)),
    st.just(np.array(["a", "b"])),
)
LAYOUT_ARRAYS = st.one_of(st.sampled_from(LAYOUTS).map(np.array), st.just(np.array([1, 2])))


@st.composite
def plausible_npz(draw) -> dict:
    kp = draw(plausible_keypoints())
    with np.errstate(all="ignore"):
        kp = kp.astype(draw(st.sampled_from(["float64", "float64", "float32", "float16", "int32"])))
    arrays = {"keypoints": kp}
    if draw(st.integers(0, 9)) < 9:  # Hypothesis favours small values: keep the common case first
        arrays["image_size"] = np.array(draw(st.sampled_from([(640, 480), (640, 480), (1, 1), (4000, 3000)])))
    layout = draw(st.sampled_from([None, None, LAYOUT_OF.get(kp.shape[1]), "coco17"]))
    if layout is not None:
        arrays["layout"] = np.array(layout)
    return arrays


@st.composite
def hostile_npz(draw) -> dict:
    arrays = {draw(st.sampled_from(["keypoints", "keypoints", "poses", "arr_0"])): draw(hostile_arrays())}
    if draw(st.booleans()):
        arrays["image_size"] = draw(IMAGE_SIZES)
    if draw(st.booleans()):
        arrays["layout"] = draw(LAYOUT_ARRAYS)
    for key in draw(st.lists(st.sampled_from(["extra", "meta", "heatmaps"]), max_size=2, unique=True)):
        arrays[key] = draw(hostile_arrays(shape=st.integers(0, 3), dtypes=("float64", "int64")))
    return arrays


KEYPOINT_NPZ = st.one_of(plausible_npz(), hostile_npz())

FRAME_IDS = st.one_of(st.integers(-3, 6), st.integers(), st.floats(allow_nan=True), st.text(max_size=3),
                      st.none(), st.booleans(), st.lists(st.integers(0, 3), max_size=2))
NUMBERS = st.one_of(PIXELS, st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                    st.sampled_from([1e308, 10**400, -(10**400)]))
JSON_JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
KEYPOINT_LISTS = st.one_of(
    st.lists(NUMBERS, min_size=51, max_size=51),
    st.lists(NUMBERS, max_size=60),
    st.lists(st.lists(NUMBERS, max_size=3), max_size=17),
    JSON_JUNK,
)
RECORDS = st.fixed_dictionaries(
    {"image_id": FRAME_IDS, "keypoints": KEYPOINT_LISTS},
    optional={"frame": FRAME_IDS, "score": st.one_of(NUMBERS, st.text(max_size=3), st.none(), JSON_JUNK),
              "category_id": st.integers()},
)


@st.composite
def plausible_json(draw):
    """COCO-style records (several people per frame, gaps, NaN scores) as a list or under 'annotations'."""
    kp = draw(plausible_keypoints(joints=(17,), channels=(3,), frames=(1, 6)))
    ids = draw(st.one_of(st.lists(st.integers(0, 8), min_size=len(kp), max_size=len(kp)),
                         st.lists(st.sampled_from(["a.jpg", "b.jpg", "c.jpg"]), min_size=len(kp), max_size=len(kp))))
    records = []
    for frame, points in zip(ids, kp):
        record = {"image_id": frame, "keypoints": points.reshape(-1).tolist(), "category_id": 1}
        if draw(st.integers(0, 3)):
            record["score"] = draw(st.one_of(st.floats(0, 1), EDGE_FLOATS))
        records.append(record)
    return records if draw(st.booleans()) else {"annotations": records}


JSON_DOCUMENTS = st.one_of(
    plausible_json(),
    plausible_json(),
    plausible_json(),
    st.lists(RECORDS, max_size=5),
    st.lists(st.one_of(RECORDS, JSON_JUNK), max_size=4),
    st.fixed_dictionaries({"annotations": st.lists(RECORDS, max_size=4)}),
    JSON_JUNK,
)
ODD_SIZES = [(1, 1), (0, 5), (-2, 3), (2**62, 1), (10**30, 5)]
SIZE_ARGUMENTS = st.sampled_from([None, None, (640, 480), None, (640, 480), *ODD_SIZES])
JSON_SIZES = st.sampled_from([(640, 480), (1920, 1080), (640, 480), None, *ODD_SIZES])
SOURCE_LAYOUTS = st.sampled_from([None] * 6 + LAYOUTS)


# -- 1. keypoints files --------------------------------------------------------------------------

def expected_missing(points: np.ndarray, image_size) -> np.ndarray:
    """(T, J) joints a reader must flag with confidence <= 0: a position that is not finite (after
    the cast to float32) or absurdly far outside the image, or a confidence that is not a finite
    positive number."""
    with np.errstate(all="ignore"):
        values = np.asarray(points).astype(np.float32)
    bad = ~(np.abs(values[..., :2]) <= FAR_OUTSIDE * max(image_size)).all(-1)
    if values.shape[-1] == 3:
        bad |= ~(np.isfinite(values[..., 2]) & (values[..., 2] > 0))
    return bad


@fuzz(150)
@given(arrays=KEYPOINT_NPZ, size=SIZE_ARGUMENTS, source=SOURCE_LAYOUTS)
def test_fuzz_keypoints_npz(tmp_path, arrays, size, source):
    path = fresh_dir(tmp_path) / "people.npz"
    np.savez(path, **arrays)
    ev = attempt(lambda: read_input(path, layout="humaneva15", source_layout=source, image_size=size), path)
    if ev is not None:
        check_evidence(ev, 15 if "heatmaps" not in arrays else None)
    seq = attempt(lambda: load_keypoints(path, layout="coco17", image_size=size, src_layout=source), path)
    if seq is not None:
        check_sequence(seq, "coco17")
        points = arrays.get("keypoints")
        declared = source or (str(arrays["layout"]) if "layout" in arrays else None)
        if points is not None and points.shape[1] == 17 and declared in (None, "coco17"):  # same layout in and out
            np.testing.assert_array_equal(seq.confidence <= 0, expected_missing(points, seq.image_size))


@fuzz(120)
@given(document=JSON_DOCUMENTS, size=JSON_SIZES, source=SOURCE_LAYOUTS)
def test_fuzz_keypoints_json(tmp_path, document, size, source):
    path = fresh_dir(tmp_path) / "people.json"
    path.write_text(json.dumps(document))
    ev = attempt(lambda: read_input(path, layout="humaneva15", source_layout=source, image_size=size), path)
    if ev is not None:
        check_evidence(ev, 15)
    seq = attempt(lambda: load_keypoints(path, layout="h36m17", image_size=size, src_layout=source), path)
    if seq is not None:
        check_sequence(seq, "h36m17")


def _valid_keypoints() -> np.ndarray:
    kp = np.random.default_rng(0).uniform(50, 400, size=(4, 17, 3))
    kp[..., 2] = 0.9
    return kp


@functools.lru_cache
def valid_files() -> dict[str, bytes]:
    kp = _valid_keypoints()
    records = [{"image_id": t, "keypoints": kp[t].reshape(-1).tolist(), "score": 0.9} for t in range(len(kp))]
    heat = np.zeros((2, 17, 8, 8), np.float32)
    heat[..., 3, 4] = 1.0
    affine = np.tile(np.array([[8.0, 0, 0], [0, 8.0, 0]]), (2, 1, 1))
    keypoints = {"keypoints": kp, "image_size": np.array([640, 480]), "layout": np.array("coco17")}
    heatmaps = {"heatmaps": heat, "heatmap_to_image": affine, "image_size": np.array([64, 64]),
                "layout": np.array("coco17")}
    return {
        ".npz": npz_bytes(**keypoints),
        ".json": json.dumps(records).encode(),
        "heat.npz": npz_bytes(**heatmaps),
        "zipped.npz": npz_bytes(compressed=True, **keypoints),
        "zipped heat.npz": npz_bytes(compressed=True, **heatmaps),
    }


@st.composite
def corruptions(draw, data: bytes) -> bytes:
    """Truncate, overwrite, insert or replace bytes of a valid file."""
    kind = draw(st.sampled_from(["truncate", "overwrite", "insert", "random", "prefix"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "random":
        return draw(st.binary(max_size=400))
    if kind == "prefix":
        return data[: draw(st.integers(0, 64))] + draw(st.binary(min_size=1, max_size=64))
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(out) - 1))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if kind == "overwrite":
            out[pos:pos + len(chunk)] = chunk
        else:
            out[pos:pos] = chunk
    return bytes(out)


@fuzz(100)
@given(data=st.data(), which=st.sampled_from([".npz", ".json", "heat.npz", "zipped.npz", "zipped heat.npz"]))
def test_fuzz_corrupt_keypoint_files(tmp_path, data, which):
    broken = data.draw(corruptions(valid_files()[which]))
    path = fresh_dir(tmp_path) / ("people" + Path(which).suffix)
    path.write_bytes(broken)
    ev = attempt(lambda: read_input(path, layout="humaneva15", image_size=(640, 480)), path)
    if ev is not None:
        check_evidence(ev)


def forged_npz(key: str, shape: tuple, descr: str, payload: bytes, extra: dict) -> bytes:
    """An npz whose `key` member has a hand-written .npy header (any shape, any dtype) over `payload`."""
    from numpy.lib import format as npy_format

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        member = io.BytesIO()
        header = {"descr": descr, "fortran_order": False, "shape": shape}
        member.write(npy_format.MAGIC_PREFIX + bytes([1, 0]))
        text = repr(header).encode("latin1")
        text += b" " * ((64 - (10 + len(text) + 1) % 64) % 64) + b"\n"
        member.write(len(text).to_bytes(2, "little") + text + payload)
        archive.writestr(f"{key}.npy", member.getvalue())
        for name, value in extra.items():
            archive.writestr(f"{name}.npy", npz_member(value))
    return buffer.getvalue()


def npz_member(value) -> bytes:
    member = io.BytesIO()
    np.save(member, value)
    return member.getvalue()


ABSURD_SIDES = st.sampled_from([0, 1, 2, 3, 17, 10**6, 10**9, 10**15, 2**62, -1])


@fuzz(40)
@given(
    key=st.sampled_from(["keypoints", "heatmaps", "positions_2d", "data"]),
    shape=st.lists(ABSURD_SIDES, max_size=4).map(tuple),
    descr=st.sampled_from(["<f8", "<f4", "|O", "<U3", ">i4", "|b1", "<c16", "V8", "garbage"]),
    payload=st.binary(max_size=64),
)
def test_fuzz_forged_npy_headers(tmp_path, key, shape, descr, payload):
    """Absurd sizes: a header can claim petabytes over a few bytes of data."""
    extra = {"image_size": np.array([640, 480]), "layout": np.array("coco17")}
    if key == "heatmaps":
        extra["heatmap_to_image"] = np.zeros((1, 2, 3))
    path = fresh_dir(tmp_path) / f"{key}.npz"
    path.write_bytes(forged_npz(key, shape, descr, payload, extra))
    if key in ("keypoints", "heatmaps"):
        ev = attempt(lambda: read_input(path, layout="humaneva15"), path)
        if ev is not None:
            check_evidence(ev)
    else:
        attempt(lambda: read_gmm_file(path) if key == "positions_2d" else load_3dhp(path), path)


@st.composite
def plausible_heatmaps(draw) -> dict:
    """A detector's heatmaps npz: peaked maps with NaN / inf / negative values poked in."""
    rng = random_generator(draw)
    t, j = draw(st.sampled_from([1, 2, 0])), draw(st.sampled_from([17, 15, 3]))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    heat = poke(draw, rng.uniform(0, 1, (t, j, h, w)) ** 4)
    affine = poke(draw, np.tile([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]], (t, 1, 1)), most=draw(st.sampled_from([0, 0, 1])))
    layout = draw(st.sampled_from([LAYOUT_OF.get(j, "coco17"), "coco17", "zzz"]))
    with np.errstate(all="ignore"):
        heat = heat.astype(draw(st.sampled_from(["float32", "float64", "float16"])))
    return {"heatmaps": heat, "heatmap_to_image": affine, "image_size": np.array([4 * w, 4 * h]),
            "layout": np.array(layout)}


@st.composite
def hostile_heatmaps(draw) -> dict:
    heatmaps = draw(hostile_arrays(shape=st.tuples(st.integers(0, 2), st.sampled_from([17, 15, 3]), st.integers(1, 5),
                                                   st.integers(1, 5)), dtypes=("float32", "float64", "int8", "bool")))
    affine = draw(st.one_of(float_arrays(st.just((len(heatmaps), 2, 3))),
                            float_arrays(hnp.array_shapes(max_dims=3, max_side=3))))
    return {"heatmaps": heatmaps, "heatmap_to_image": affine, "image_size": draw(IMAGE_SIZES),
            "layout": draw(LAYOUT_ARRAYS)}


@fuzz(50)
@given(arrays=st.one_of(plausible_heatmaps(), hostile_heatmaps()))
def test_fuzz_heatmap_npz(tmp_path, arrays):
    path = fresh_dir(tmp_path) / "heat.npz"
    np.savez(path, **arrays)
    ev = attempt(lambda: read_input(path, layout="humaneva15"), path)
    if ev is not None:
        check_evidence(ev, arrays["heatmaps"].shape[1])


# -- 2. the authors' GMM files and the dataset readers -----------------------------------------------
#
# The community files hold pickled dicts: each is drawn in its public layout (with NaN / inf poked
# into the arrays), and then, half the time, one node of the tree (the whole, a dict, a list or an
# array) is replaced by junk.

OBJECT_JUNK = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.floats(), st.integers(-3, 3).map(float),
                        st.lists(st.integers(), max_size=3), st.lists(st.lists(st.floats(), max_size=2), max_size=2),
                        st.lists(st.sampled_from([10**400, -(10**400), 1]), min_size=1, max_size=3),
                        st.dictionaries(st.integers(0, 2), st.integers(), max_size=2))


def _nodes(obj, where=()):
    yield where
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _nodes(value, (*where, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _nodes(value, (*where, i))


def sabotage(draw, obj):
    """`obj` as it is, or with one node of its dict/list tree replaced by junk (or a junk key added)."""
    if not draw(st.booleans()):  # False, the value Hypothesis favours, keeps the file intact
        return obj
    where = draw(st.sampled_from(list(_nodes(obj))[::-1]))  # leaves first, the root last
    junk = draw(st.one_of(OBJECT_JUNK, hostile_arrays()))
    if not where:
        return junk if junk is not None else 0
    parent = obj
    for key in where[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and draw(st.booleans()):
        parent[draw(st.one_of(st.integers(0, 2), st.none()))] = junk  # a key that is not a name
    else:
        parent[where[-1]] = junk
    return obj


METADATA = st.one_of(
    st.none(),
    st.fixed_dictionaries({}, optional={"layout_name": st.sampled_from(["coco", "h36m", "", "x"]),
                                        "keypoints_symmetry": st.one_of(OBJECT_JUNK, st.just([[1, 3], [2, 4]]))}),
    OBJECT_JUNK,
)


@st.composite
def gmm_contents(draw):
    rng = random_generator(draw)
    plan = draw(st.dictionaries(st.sampled_from(["S1", "S9", "Train/S1"]),
                                st.dictionaries(st.sampled_from(["Walking 1", "Box 1 chunk0"]), st.integers(0, 3),
                                                min_size=1, max_size=2), min_size=1, max_size=2))
    j, k = draw(st.sampled_from([17, 15, 1])), draw(st.integers(1, 3))

    def mixture(t):
        a = np.zeros((t, j, k, 5))
        a[..., 0] = rng.dirichlet(np.ones(k), size=(t, j))
        a[..., 1:3] = rng.uniform(0, 640, (t, j, k, 2))
        a[..., 3:] = rng.uniform(0.1, 50, (t, j, k, 2))
        return poke(draw, a, most=draw(st.sampled_from([0, 0, 2])))

    cams = draw(st.integers(1, 3))
    positions = {s: {a: [mixture(t) for _ in range(cams)] for a, t in acts.items()} for s, acts in plan.items()}
    return sabotage(draw, positions), draw(METADATA)


@fuzz(60)
@given(contents=gmm_contents())
def test_fuzz_gmm_reader(tmp_path, contents):
    positions, metadata = contents
    path = fresh_dir(tmp_path) / "data_2d_h36m_gt_gmm.npz"
    arrays = {"positions_2d": boxed(positions)}
    if metadata is not None:
        arrays["metadata"] = boxed(metadata)
    np.savez(path, **arrays)
    out = attempt(lambda: read_gmm_file(path), path)
    if out is not None:
        data, meta = out
        assert isinstance(meta, dict)
        for actions in data.values():
            for views in actions.values():
                for a in views:
                    assert a.dtype == np.float32 and a.ndim == 4 and a.shape[-1] == 5 and np.isfinite(a).all()


@st.composite
def video_pose3d_files(draw, subjects, actions, joints_3d, joints_2d, cameras):
    """A VideoPose3D-layout pair (positions_3d, positions_2d + metadata); one of the two may be absent."""
    rng = random_generator(draw)
    plan = draw(st.dictionaries(st.sampled_from(subjects),
                                st.dictionaries(st.sampled_from(actions), st.integers(0, 3), min_size=1, max_size=2),
                                min_size=1, max_size=2))
    j3, j2, c2 = draw(st.sampled_from(joints_3d)), draw(st.sampled_from(joints_2d)), draw(st.sampled_from([2, 3]))
    extra = draw(st.sampled_from([1, 0, 2, -1]))  # 2D files are a few frames longer (or, broken, shorter)
    pos3d = {s: {a: poke(draw, rng.normal(0, 0.3, (t, j3, 3)) + [0.0, 0.0, 4.0]) for a, t in acts.items()}
             for s, acts in plan.items()}
    pos2d = {s: {a: [poke(draw, rng.uniform(0, 1000, (max(t + extra, 0), j2, c2))) for _ in range(cameras)]
                 for a, t in acts.items()} for s, acts in plan.items()}
    which = draw(st.sampled_from(["both", "3d", "2d"]))
    return (sabotage(draw, pos3d) if which != "2d" else None, sabotage(draw, pos2d) if which != "3d" else None,
            draw(METADATA))


def _write_dataset(root: Path, pos3d, pos2d, meta) -> tuple[Path | None, Path | None]:
    path_3d = path_2d = None
    if pos3d is not None:
        path_3d = root / "data_3d.npz"
        np.savez(path_3d, positions_3d=boxed(pos3d))
    if pos2d is not None:
        path_2d = root / "data_2d.npz"
        arrays = {"positions_2d": boxed(pos2d)}
        if meta is not None:
            arrays["metadata"] = boxed(meta)
        np.savez(path_2d, **arrays)
    return path_3d, path_2d


def _dataset_attempt(fn, paths: list) -> list | None:
    """Like `attempt`, for readers of several files: the message names one of `paths`."""
    try:
        out = fn()
    except DiffPoseError as exc:
        named = [p for p in paths if str(p) in str(exc)]
        check_error(exc, named[0] if named else paths[0])
        event("one-line error")
        return None
    event("read" if out else "read nothing")
    return out


def _check_dataset(seqs, has_2d: bool) -> None:
    for s in seqs:
        if has_2d:  # without a 2D file the 2D is the projection of the (possibly NaN) 3D ground truth
            assert np.isfinite(s.keypoints_2d).all()
        if s.confidence is not None:
            assert np.isfinite(s.confidence).all()


@fuzz(50)
@given(files=video_pose3d_files(["S1", "S9", "S11", "S2"], ["Walking 1", "Directions", "Eating 2"],
                                [32, 17, 5], [17, 16, 15], cameras=4))
def test_fuzz_h36m_reader(tmp_path, files):
    p3, p2 = _write_dataset(fresh_dir(tmp_path), *files)
    seqs = _dataset_attempt(lambda: load_h36m(p3, p2), [p for p in (p3, p2) if p is not None])
    if seqs is not None:
        _check_dataset(seqs, p2 is not None)


HUMANEVA_CAMERAS = "diffpose3d/assets/cameras/humaneva.json"


@fuzz(50)
@given(files=video_pose3d_files(["Train/S1", "Validate/S2", "Train/S3", "Unlabeled/S4"],
                                ["Walking 1 chunk0", "Box 1 chunk1", "Jog 1 chunk2"], [15, 14], [15, 17, 33, 16],
                                cameras=3))
def test_fuzz_humaneva_reader(tmp_path, files):
    p3, p2 = _write_dataset(fresh_dir(tmp_path), *files)
    paths = [p for p in (p3, p2) if p is not None] + [HUMANEVA_CAMERAS]  # the calibration can be at fault
    seqs = _dataset_attempt(lambda: load_humaneva(p3, p2, split=["Train", "Validate", "Unlabeled"]), paths)
    if seqs is not None:
        _check_dataset(seqs, p2 is not None)


@st.composite
def mpi3dhp_contents(draw):
    rng = random_generator(draw)

    def animation(t):
        anim = {"data_3d": poke(draw, rng.normal(0, 300, (t, 17, 3)) + [0, 0, 4000]),
                "data_2d": poke(draw, rng.uniform(0, 2048, (t, 17, draw(st.sampled_from([2, 3])))))}
        if draw(st.booleans()):
            anim["valid"] = (rng.uniform(size=t) > 0.2).astype(draw(st.sampled_from(["float64", "bool", "int8"])))
        return anim

    data = {}
    for key in draw(st.lists(st.sampled_from(["TS1", "TS5", "S1 Seq1", "S2 Seq2", "TS9"]), min_size=1, max_size=3,
                             unique=True)):
        if key.startswith("TS"):
            data[key] = animation(draw(st.integers(0, 3)))
        else:
            cams = draw(st.lists(st.sampled_from([0, 1, "cam8", 2.0, float("inf"), 10**400]), min_size=1, max_size=2,
                                 unique=True))
            data[key] = [{cam: animation(draw(st.integers(0, 3))) for cam in cams}]
    return sabotage(draw, data)


@fuzz(50)
@given(data=mpi3dhp_contents())
def test_fuzz_3dhp_reader(tmp_path, data):
    path = fresh_dir(tmp_path) / "data_test_3dhp.npz"
    np.savez(path, data=boxed(data))
    seqs = _dataset_attempt(lambda: load_3dhp(path), [path])
    if seqs is not None:
        _check_dataset(seqs, True)


@functools.lru_cache
def valid_pickled_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    gmm = np.zeros((3, 17, 2, 5))
    gmm[..., 0, 0] = 1.0
    gmm[..., 1:3] = rng.uniform(0, 500, (3, 17, 2, 2))
    gmm[..., 3:] = 4.0
    kp = rng.uniform(0, 500, (3, 15, 2)).astype(np.float32)
    return {
        "gmm": npz_bytes(compressed=True, positions_2d=boxed({"S1": {"Walking 1": [gmm, gmm]}}),
                         metadata=boxed({"kernels": 2})),
        "humaneva": npz_bytes(positions_2d=boxed({"Train/S1": {"Walking 1 chunk0": [kp, kp, kp]}}),
                              metadata=boxed({"layout_name": "humaneva15"})),
        "3dhp": npz_bytes(data=boxed({"TS1": {"data_3d": rng.normal(size=(3, 17, 3)),
                                              "data_2d": rng.uniform(0, 900, (3, 17, 2))}})),
    }


@fuzz(45)
@given(data=st.data(), which=st.sampled_from(["gmm", "humaneva", "3dhp"]))
def test_fuzz_corrupt_pickled_files(tmp_path, data, which):
    broken = data.draw(corruptions(valid_pickled_files()[which]))
    path = fresh_dir(tmp_path) / f"{which}.npz"
    path.write_bytes(broken)
    read = {"gmm": read_gmm_file, "humaneva": lambda p: load_humaneva(None, p), "3dhp": load_3dhp}[which]
    attempt(lambda: read(path), path)


# -- 3. predict through the CLI ----------------------------------------------------------------------

@st.composite
def predict_inputs(draw) -> tuple[str, bytes, list[str], np.ndarray | None]:
    """A keypoints file (plausible, hostile or corrupted npz / json, or an unsupported suffix), extra
    CLI options, and which joints must come out flagged as missing (when that is known)."""
    kind = draw(st.sampled_from(["npz", "json", "heatmaps", "npz", "json", "hostile npz", "hostile json", "corrupt",
                                 "suffix"]))
    options: list[str] = []
    size = draw(st.sampled_from([None, (640, 480), None, None, (1, 1), (0, 5), (2**40, 3), (10**21, 9)]))
    if size is not None or (kind == "json" and draw(st.integers(0, 5)) < 5):
        options += ["--image-size", *map(str, size or (640, 480))]
    layout = draw(st.sampled_from(LAYOUTS[:-1])) if draw(st.integers(0, 7)) == 7 else None
    if layout is not None:
        options += ["--layout", layout]
    if kind == "npz":
        arrays = draw(plausible_npz())
        kp = arrays["keypoints"]
        declared = layout or (str(arrays["layout"]) if "layout" in arrays else None)
        same = kp.shape[1] == 15 and declared in (None, "humaneva15")  # the tiny model's layout
        in_file = tuple(arrays["image_size"]) if "image_size" in arrays else None
        same = same and (size or in_file) is not None
        missing = expected_missing(kp, size or in_file) if same else None
        return "people.npz", npz_bytes(**arrays), options, missing
    if kind in ("json", "hostile json"):
        document = draw(plausible_json() if kind == "json" else JSON_DOCUMENTS)
        return "people.json", json.dumps(document).encode(), options, None
    if kind == "heatmaps":
        return "heat.npz", npz_bytes(**draw(plausible_heatmaps())), options, None
    if kind == "hostile npz":
        return "people.npz", npz_bytes(**draw(hostile_npz())), options, None
    if kind == "corrupt":
        which = draw(st.sampled_from([".npz", ".json"]))
        return "people" + which, draw(corruptions(valid_files()[which])), options, None
    return "people" + draw(st.sampled_from([".npy", ".csv", ".txt", ""])), draw(st.binary(max_size=50)), options, None


def run_predict(input_path: Path, out: Path, bundle: Path, options=(), capsys=None) -> tuple[int, list[str]]:
    code = main(["predict", str(input_path), "--out", str(out), "--checkpoint", str(bundle), "--quiet", *options])
    err = capsys.readouterr().err if capsys is not None else ""
    return code, [line for line in err.splitlines() if line.strip()]


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.is_dir() else []


@fuzz(70)
@given(case=predict_inputs())
def test_fuzz_predict_cli(tmp_path, tiny_bundle, capsys, case):
    name, content, options, missing = case
    work = fresh_dir(tmp_path)
    src = work / name
    src.write_bytes(content)
    out = work / "out"
    capsys.readouterr()
    code, lines = run_predict(src, out, tiny_bundle, options, capsys)
    event(f"exit {code}")
    if code == 0:
        stem = src.stem
        assert files_under(out) == [f"{stem}.json", f"{stem}.manifest.json", f"{stem}.npz"]
        result = load_result_npz(out / f"{stem}.npz")
        document = json.loads((out / f"{stem}.json").read_text(), parse_constant=reject_constant)
        jsonschema.validate(document, prediction_schema())
        assert sum(len(frame["people"]) for frame in document["frames"]) == len(result) >= 1
        assert np.isfinite(result.pose_3d).all() and np.isfinite(result.hypotheses).all()
        assert np.isfinite(result.keypoints_2d).all() and np.isfinite(result.uncertainty).all()
        assert (result.missing == (result.confidence <= 0)).all()
        assert not result.missing.all(), "a result without any evidence must be refused"
        if missing is not None:  # a person's rows: the frames from the first to the last with evidence
            np.testing.assert_array_equal(result.missing, missing[result.frame_indices])
            kept = np.zeros(len(missing), bool)
            kept[result.frame_indices] = True
            assert missing[~kept].all()  # only frames without any evidence are left out
    else:  # one line naming the file, or the setting (an argument) that was refused
        assert code == 2 and len(lines) == 1 and (str(src) in lines[0] or ": error: argument --" in lines[0]), lines
        assert files_under(out) == []


def _good_input(folder: Path) -> Path:
    src = folder / "people.npz"
    src.write_bytes(valid_files()[".npz"])
    return src


OUTPUT_TRAPS = ["out_is_a_file", "out_under_a_file", "npz_is_a_folder", "json_is_a_folder", "read_only_folder"]


@pytest.mark.parametrize("trap", OUTPUT_TRAPS)
def test_unwritable_output_is_one_line(tmp_path, tiny_bundle, capsys, trap):
    src = _good_input(tmp_path)
    out = tmp_path / "out"
    named = out
    if trap == "out_is_a_file":
        out.write_text("x")
    elif trap == "out_under_a_file":
        (tmp_path / "file").write_text("x")
        out = named = tmp_path / "file" / "out"
    elif trap in ("npz_is_a_folder", "json_is_a_folder"):
        named = out / f"people.{trap[:-len('_is_a_folder')]}"
        named.mkdir(parents=True)
    else:
        out.mkdir()
        out.chmod(0o555)
        if os.access(out, os.W_OK):  # root ignores permissions
            out.chmod(0o755)
            pytest.skip("running as a user who can write to read-only folders")
    try:
        code, lines = run_predict(src, out, tiny_bundle, capsys=capsys)
    finally:
        if out.is_dir():
            out.chmod(0o755)
    assert code == 2 and len(lines) == 1 and str(named) in lines[0], lines
    leftovers = [f for f in files_under(out) if not (out / f).is_dir()]
    assert leftovers == [], leftovers


# -- 4. images and videos ------------------------------------------------------------------------------

@functools.lru_cache
def valid_media() -> dict[str, bytes]:
    import imageio.v3 as iio

    from diffpose3d.io.video import VideoWriter

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    folder = Path(tempfile.mkdtemp())
    try:
        with VideoWriter(folder / "clip.mp4", fps=10) as writer:
            for t in range(4):
                writer.write(np.roll(image, t, axis=1))
        clip = (folder / "clip.mp4").read_bytes()
    finally:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()
    return {
        ".png": iio.imwrite("<bytes>", image, extension=".png"),
        ".jpg": iio.imwrite("<bytes>", image, extension=".jpg"),
        ".mp4": clip,
    }


@fuzz(45)
@given(data=st.data(), suffix=st.sampled_from([".png", ".jpg", ".bmp", ".webp"]))
def test_fuzz_image_reader(tmp_path, data, suffix):
    broken = data.draw(corruptions(valid_media()[suffix if suffix in (".png", ".jpg") else ".png"]))
    path = fresh_dir(tmp_path) / f"photo{suffix}"
    path.write_bytes(broken)
    image = attempt(lambda: read_image(path), path)
    if image is not None:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@fuzz(35)
@given(data=st.data(), suffix=st.sampled_from([".mp4", ".mov", ".avi"]))
def test_fuzz_video_reader(tmp_path, data, suffix):
    broken = data.draw(corruptions(valid_media()[".mp4"]))
    path = fresh_dir(tmp_path) / f"clip{suffix}"
    path.write_bytes(broken)

    def read():
        with VideoReader(path) as reader:
            return list(reader)

    frames = attempt(read, path)
    if frames is not None:
        assert all(f.dtype == np.uint8 and f.ndim == 3 and f.shape[2] == 3 for f in frames)
