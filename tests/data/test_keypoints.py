from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from diffpose3d.data.keypoints import load_keypoints
from diffpose3d.data.loading import load_dataset
from diffpose3d.errors import InputFileError
from diffpose3d.skeleton import map_keypoints


def _person(rng: np.random.Generator, score: float, frame: int) -> dict:
    kp = np.concatenate([rng.uniform(0, 600, (17, 2)), rng.uniform(0.5, 1, (17, 1))], -1)
    return {"image_id": frame, "keypoints": kp.reshape(-1).tolist(), "score": score, "category_id": 1}


def test_coco_json_best_person_and_gaps(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    records = [_person(rng, 0.9, 0), _person(rng, 0.95, 0), _person(rng, 0.4, 1), _person(rng, 0.8, 3)]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(records))
    seq = load_keypoints(path, image_size=(640, 480))
    assert seq.dataset == "custom" and seq.skeleton == "h36m17" and seq.image_size == (640, 480)
    np.testing.assert_array_equal(seq.frame_indices, [0, 1, 2, 3])
    best = np.asarray(records[1]["keypoints"]).reshape(17, 3)
    mapped = map_keypoints(best[None], "coco17", "h36m17")[0]  # the detector-to-mocap correction
    np.testing.assert_allclose(seq.keypoints_2d[0, 0], mapped[0, :2], rtol=1e-5)  # pelvis
    np.testing.assert_allclose(seq.confidence[0, 0], mapped[0, 2], rtol=1e-6)
    assert (seq.confidence[2] == 0).all() and np.isfinite(seq.keypoints_2d).all()  # frame 2 has no detection
    he = load_keypoints(path, image_size=(640, 480), layout="humaneva15")
    assert he.keypoints_2d.shape == (4, 15, 2)


def test_npz_layouts_and_nan(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    kp = rng.uniform(0, 500, (6, 33, 3)).astype(np.float32)
    kp[..., 2] = rng.uniform(0.2, 1.0, (6, 33))
    kp[2, 23, 0] = np.nan  # l_hip missing in frame 2
    path = tmp_path / "blaze.npz"
    np.savez(path, keypoints=kp, image_size=np.array([1280, 720]), layout=np.array("blazepose33"))
    seq = load_dataset("custom", None, path)[0]
    assert seq.image_size == (1280, 720) and seq.keypoints_2d.shape == (6, 17, 2)
    assert seq.confidence[2, 0] == 0 and seq.confidence[2, 4] == 0  # pelvis and l_hip lose confidence
    assert seq.confidence[1, 0] > 0 and np.isfinite(seq.keypoints_2d).all()

    plain = tmp_path / "plain.npz"
    np.savez(plain, poses=rng.uniform(0, 500, (3, 17, 2)))
    seq = load_keypoints(plain, image_size=(500, 500), layout="h36m17")
    assert (seq.confidence == 1).all()


def test_bad_inputs(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps([{"image_id": 0, "keypoints": [1, 2, 3]}]))
    with pytest.raises(InputFileError, match="k.json: record 0: 'keypoints' must be 51 numbers"):
        load_keypoints(path, image_size=(10, 10))
    with pytest.raises(InputFileError, match="k.json: keypoint JSON carries no image size"):
        load_keypoints(path)
    path.write_text("{not json")
    with pytest.raises(InputFileError, match="k.json: not valid JSON"):
        load_keypoints(path, image_size=(10, 10))
    record = json.dumps({"image_id": 0, "keypoints": [1.0] * 51})
    path.write_text("[" + record.replace('"image_id": 0', '"image_id": 0, "image_id": 1') + "]")
    with pytest.raises(InputFileError, match="k.json: one object names the key 'image_id' twice"):
        load_keypoints(path, image_size=(10, 10))
    npz = tmp_path / "k.npz"
    np.savez(npz, keypoints=np.zeros((3, 17, 2)))
    with pytest.raises(InputFileError, match=r"k.npz: carries no image size: give it \(--image-size W H; in Python"):
        load_keypoints(npz)
    np.savez(npz, keypoints=np.zeros((3, 12, 2)), image_size=np.array([10, 10]))
    with pytest.raises(InputFileError, match="k.npz: cannot tell the layout of 12 joints"):
        load_keypoints(npz)
    np.savez(npz, keypoints=np.zeros((3, 17, 2)), image_size=np.array([10, 10]), layout=np.array("humaneva15"))
    with pytest.raises(InputFileError, match="k.npz: layout 'humaneva15' has 15 joints, data has 17"):
        load_keypoints(npz)


def _records(**overrides) -> list[dict]:
    rec = _person(np.random.default_rng(3), 0.9, 0)
    rec.update(overrides)
    return [rec]


@pytest.mark.parametrize(("records", "message"), [
    (_records(score="high"), "record 0: 'score' must be a number"),
    (_records(score={"v": 1}), "record 0: 'score' must be a number"),
    (_records(image_id=[0, 1]), "record 0: the frame id must be an integer or a string"),
    (_records(image_id=-3), "record 0: frame id -3 is negative"),
    (_records(image_id=1.5), "record 0: the frame id must be an integer or a string"),
    (_records(image_id=True), "record 0: the frame id must be an integer or a string"),
    (_records(image_id=0) + _records(image_id="a.jpg"), "frame ids mix integers and strings"),
    (_records(track_id=-1), "record 0: a track id must be an integer from 0 to"),
    (_records(keypoints=[10**400] * 51), "record 0: 'keypoints' must be 51 numbers"),
    (_records() + _records(image_id=2**31 - 1), "frame ids 0 to 2147483647 span more than"),
    (_records() + _records(image_id=10**12), "record 1: frame id 1000000000000 is larger than 2147483647"),
])
def test_hostile_json_records_give_one_line_errors(tmp_path: Path, records: list, message: str) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps(records))
    with pytest.raises(InputFileError, match=message):
        load_keypoints(path, image_size=(640, 480))


def test_json_unknown_layout_and_deep_nesting(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps(_records()))
    with pytest.raises(InputFileError, match="k.json: unknown layout 'zzz'"):
        load_keypoints(path, image_size=(640, 480), src_layout="zzz")
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputFileError, match="k.json: not valid JSON"):
        load_keypoints(path, image_size=(640, 480))


@pytest.mark.parametrize(("arrays", "message"), [
    ({"keypoints": np.zeros((0, 17, 3))}, "keypoints hold no frames"),
    ({"keypoints": np.ones((2, 17, 2), np.complex64)}, "keypoints must be numeric"),
    ({"image_size": np.array([np.inf, 480.0])}, r"image_size must be \(width, height\)"),
    ({"image_size": np.array([[640, 480], [1, 2]])}, r"image_size must be \(width, height\)"),
    ({"image_size": np.array([10**7, 480])}, "image_size .* is absurdly large"),
])
def test_hostile_npz_arrays_give_one_line_errors(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "k.npz"
    np.savez(path, **{"keypoints": np.ones((2, 17, 2)), "image_size": np.array([640, 480]), **arrays})
    with pytest.raises(InputFileError, match=f"k.npz: {message}") as info:
        load_keypoints(path)
    assert len(str(info.value).splitlines()) == 1


def test_corrupt_npz_and_absurd_header_give_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "k.npz"
    path.write_bytes(b"PK\x03\x04" + b"garbage" * 10)  # looks like a zip, is not one
    with pytest.raises(InputFileError, match="k.npz: not a readable .npz"):
        load_keypoints(path)
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000000, 17, 3), }"
    header += b" " * (117 - len(header)) + b"\n"
    member = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 64
    with zipfile.ZipFile(path, "w") as archive:  # claims 400 PiB over 64 bytes
        archive.writestr("keypoints.npy", member)
    with pytest.raises(InputFileError, match="k.npz: member 'keypoints' declares 389099121094 MB"):
        load_keypoints(path, image_size=(640, 480))


def test_coordinates_far_outside_the_image_are_missing(tmp_path: Path) -> None:
    kp = np.random.default_rng(4).uniform(0, 600, (2, 17, 3))
    kp[..., 2] = 0.9
    kp[0, 5, :2] = 1e30  # finite, but 1e30 px from a 640 x 480 image: the model would produce NaN
    kp[1, 6, 0] = -1e6
    path = tmp_path / "far.npz"
    np.savez(path, keypoints=kp, image_size=np.array([640, 480]))
    seq = load_keypoints(path, layout="coco17")
    assert seq.confidence[0, 5] == 0 and seq.confidence[1, 6] == 0
    assert (seq.confidence > 0).sum() == 2 * 17 - 2 and np.abs(seq.keypoints_2d).max() < 640


def test_confidences_outside_the_unit_range_are_clamped_with_a_warning(tmp_path: Path) -> None:
    from diffpose3d.io.limits import InputWarning

    kp = np.random.default_rng(5).uniform(0, 600, (2, 17, 3))
    kp[..., 2] = 0.5
    kp[0, 3, 2], kp[1, 4, 2] = 7.0, -2.0
    path = tmp_path / "k.npz"
    np.savez(path, keypoints=kp, image_size=np.array([640, 480]))
    with pytest.warns(InputWarning, match="k.npz: 2 confidence"):
        seq = load_keypoints(path, layout="coco17")
    assert seq.confidence[0, 3] == 1.0 and seq.confidence[1, 4] == 0.0
    assert ((seq.confidence >= 0) & (seq.confidence <= 1)).all()


def test_an_npz_member_that_is_a_raw_pickle_is_refused_unread(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "k.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("keypoints.npy", pickle.dumps({"run": "me"}))
    with pytest.raises(InputFileError, match="k.npz: member 'keypoints' is not an .npy array"):
        load_keypoints(path, image_size=(640, 480))
    np.savez(path, keypoints=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputFileError, match="k.npz: member 'keypoints' holds Python objects"):
        load_keypoints(path, image_size=(640, 480))


def test_a_json_that_links_to_a_device_or_is_too_large_is_not_read(tmp_path: Path, monkeypatch) -> None:
    from diffpose3d.io import limits

    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")
    with pytest.raises(InputFileError, match="zero.json: is not a regular file"):
        load_keypoints(link, image_size=(640, 480))
    big = tmp_path / "big.json"
    big.write_text(json.dumps(_records() * 50))
    monkeypatch.setattr(limits, "MAX_TEXT_BYTES", 1000)
    with pytest.raises(InputFileError, match="big.json: larger than"):
        load_keypoints(big, image_size=(640, 480))


def test_every_person_of_a_coco_json_gets_an_id_kept_over_frames(tmp_path: Path) -> None:
    from diffpose3d.data.keypoints import load_keypoint_people

    rng = np.random.default_rng(7)
    left, right = _person(rng, 0.9, 0), _person(rng, 0.8, 0)
    left["keypoints"] = (np.asarray(left["keypoints"]).reshape(17, 3) * [0.4, 1, 1]).reshape(-1).tolist()
    right["keypoints"] = (np.asarray(right["keypoints"]).reshape(17, 3) * [0.4, 1, 1] + [380, 0, 0]).reshape(-1).tolist()
    records = []
    for t in range(4):  # the two people swap places in the list, and the right one is missing in frame 2
        moved = [dict(r, image_id=t, keypoints=(np.asarray(r["keypoints"]).reshape(17, 3) + [3 * t, 0, 0]).reshape(-1).tolist())
                 for r in (left, right)]
        records += moved[::-1] if t % 2 else moved
    records = [r for r in records if not (r["image_id"] == 2 and r is records[-1])]
    records = [r for i, r in enumerate(records) if not (r["image_id"] == 2 and np.asarray(r["keypoints"])[0] > 300)]
    path = tmp_path / "people.json"
    path.write_text(json.dumps(records))
    people, names = load_keypoint_people(path, layout="coco17", image_size=(800, 600))
    assert names is None and [pid for pid, _ in people] == [0, 1]
    (_, a), (_, b) = people
    assert a.keypoints_2d[:, 0, 0].max() < 300 < b.keypoints_2d[[0, 1, 3], 0, 0].min()  # identities kept
    np.testing.assert_array_equal(a.frame_indices, [0, 1, 2, 3])
    np.testing.assert_array_equal(b.frame_indices, [0, 1, 2, 3])
    assert (b.confidence[2] == 0).all() and (b.confidence[[0, 1, 3]] > 0).any(axis=1).all()  # the gap: missing

    named = [dict(r, image_id=f"photo{r['image_id']}.jpg") for r in records if r["image_id"] < 2]
    path.write_text(json.dumps(named))
    people, names = load_keypoint_people(path, layout="coco17", image_size=(800, 600))
    assert names == ["photo0.jpg", "photo1.jpg"] and [len(s) for _, s in people] == [2, 2]

    tracked = [dict(r, track_id=7) for r in records if np.asarray(r["keypoints"])[0] < 300]
    path.write_text(json.dumps(tracked))
    people, _ = load_keypoint_people(path, layout="coco17", image_size=(800, 600))
    assert [pid for pid, _ in people] == [7]


def test_a_file_without_any_evidence_has_no_people(tmp_path: Path) -> None:
    from diffpose3d.data.keypoints import load_keypoint_people

    path = tmp_path / "nan.npz"
    np.savez(path, keypoints=np.full((3, 17, 3), np.nan), image_size=np.array([640, 480]))
    assert load_keypoint_people(path, layout="coco17")[0] == []
    four = tmp_path / "four.npz"
    kp = np.full((2, 5, 17, 3), np.nan)
    kp[1, 2:4] = np.random.default_rng(0).uniform(10, 300, (2, 17, 3))
    kp[1, 2:4, :, 2] = 0.8
    np.savez(four, keypoints=kp, image_size=np.array([640, 480]))
    people, _ = load_keypoint_people(four, layout="coco17")
    assert [pid for pid, _ in people] == [1] and list(people[0][1].frame_indices) == [2, 3]


@pytest.mark.parametrize("key", ["image_id", "frame", "track_id", "person_id"])
@pytest.mark.parametrize("value", [1e30, 2**63, 2**31, 10**400, -(2**63) - 1])
def test_huge_ids_are_range_checked_where_they_are_read(tmp_path: Path, key: str, value) -> None:
    from diffpose3d.data.keypoints import load_keypoint_people

    path = tmp_path / "k.json"
    path.write_text(json.dumps(_records(**{key: value})))
    for load in (load_keypoints, lambda p, **kw: load_keypoint_people(p, layout="h36m17", **kw)):
        with pytest.raises(InputFileError, match="record 0") as info:
            load(path, image_size=(640, 480))
        assert len(str(info.value).splitlines()) == 1


def test_ids_up_to_the_bound_are_read(tmp_path: Path) -> None:
    from diffpose3d.data.keypoints import MAX_ID, load_keypoint_people

    path = tmp_path / "k.json"
    path.write_text(json.dumps(_records(image_id=float(MAX_ID), track_id=MAX_ID)))
    people, _ = load_keypoint_people(path, layout="h36m17", image_size=(640, 480))
    assert [pid for pid, _ in people] == [0] or len(people) == 1
