"""Community npz files are read without running code (#20): the restricted unpickler of
`io.unpickle.load_pickled_npz` rebuilds the real files and np.savez dicts, and refuses a payload in one
line, in every reader (`evaluate --predictions`, `fit-gmm --data-2d`, the dataset readers)."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from diffpose3d.cli import main
from diffpose3d.errors import InputFileError
from diffpose3d.io.unpickle import load_pickled_npz


class _System:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # what a crafted file would run on np.load(allow_pickle=True)
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w')",))


def test_the_real_files_load(humaneva_dir):
    pos2d = load_pickled_npz(humaneva_dir / "data_2d_humaneva15_gt_train.npz", "positions_2d")
    meta = load_pickled_npz(humaneva_dir / "data_2d_humaneva15_gt_train.npz", "metadata")
    with np.load(humaneva_dir / "data_2d_humaneva15_gt_train.npz", allow_pickle=True) as ref:
        expected = ref["positions_2d"].item()
    assert pos2d.keys() == expected.keys() and isinstance(meta, dict)
    subject = sorted(expected)[0]
    action = sorted(expected[subject])[0]
    for a, b in zip(pos2d[subject][action], expected[subject][action]):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_np_savez_dicts_round_trip(tmp_path):
    data = {"S1": {"Walk 1": [np.arange(12, dtype=np.float32).reshape(2, 2, 3), np.zeros((1, 2, 3))]},
            "S2": {"Box": [None, np.ones((3, 2, 3), np.float64)]}}
    meta = {"layout_name": "h36m", "num_joints": np.int64(17), "symmetry": [[1, 2], [3, 4]], "flag": True,
            "set": {1, 2}, "complex": 1j, "scale": np.float32(0.5)}
    np.savez(tmp_path / "x.npz", positions_3d=np.array(data, dtype=object), metadata=np.array(meta, dtype=object),
             plain=np.arange(5))
    got = load_pickled_npz(tmp_path / "x.npz", "positions_3d")
    np.testing.assert_array_equal(got["S1"]["Walk 1"][0], data["S1"]["Walk 1"][0])
    assert got["S2"]["Box"][0] is None and got["S2"]["Box"][1].dtype == np.float64
    assert load_pickled_npz(tmp_path / "x.npz", "metadata") == meta
    np.testing.assert_array_equal(load_pickled_npz(tmp_path / "x.npz", "plain"), np.arange(5))


def _payload_file(path: Path, key: str, payload: object) -> Path:
    np.savez(path, **{key: np.array({"S1": {"Walk": [payload]}}, dtype=object)})
    return path


@pytest.mark.parametrize("kind", [_System, _Eval])
def test_a_payload_is_refused_and_never_run(tmp_path, kind):
    marker = tmp_path / "PWNED"
    path = _payload_file(tmp_path / "evil.npz", "positions_2d", kind(marker))
    with pytest.raises(InputFileError, match="evil.npz: 'positions_2d' holds a pickled .*refused") as info:
        load_pickled_npz(path, "positions_2d")
    assert "\n" not in str(info.value)
    assert not marker.exists()


def _npz_with_member(path: Path, name: str, payload: bytes) -> Path:
    """An npz whose member `name` is an object-array header followed by `payload` (a raw pickle)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": ()})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name, buf.getvalue() + payload)
    return path


@pytest.mark.parametrize("payload, match", [
    (b"cposix\nsystem\n(S'touch PWNED'\ntR.", "pickled posix.system, .*refused"),  # protocol 0 GLOBAL
    (b"c__builtin__\neval\n(S'1'\ntR.", "pickled builtins.eval"),  # a Python 2 module name for builtins
    (b"cbuiltins\ngetattr\n(cbuiltins\nlist\nS'x'\ntR.", "pickled builtins.getattr"),
    (b"\x80\x04\x95" + b"\x00" * 8, "not a readable .npz file"),  # truncated
    (b"(" * 100_000 + b".", "cannot unpickle"),  # a mark stack of 100000
])
def test_hand_made_pickles_are_refused_in_one_line(tmp_path, monkeypatch, payload, match):
    monkeypatch.chdir(tmp_path)
    path = _npz_with_member(tmp_path / "crafted.npz", "positions_3d.npy", payload)
    with pytest.raises(InputFileError, match=f"crafted.npz: .*{match}") as info:
        load_pickled_npz(path, "positions_3d")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "PWNED").exists()


def test_a_header_that_claims_more_data_than_the_file_holds_is_refused(tmp_path):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    with zipfile.ZipFile(tmp_path / "big.npz", "w") as archive:
        archive.writestr("x.npy", buf.getvalue() + b"\x00" * 64)
    with pytest.raises(InputFileError, match="truncated"):
        load_pickled_npz(tmp_path / "big.npz", "x")


def test_a_predictions_payload_exits_2_with_one_line(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    path = _payload_file(tmp_path / "predictions.npz", "positions_3d", _System(marker))
    code = main(["evaluate", "--predictions", str(path), "--dataset", "h36m", "--data-3d", str(path),
                 "--out", str(tmp_path / "report.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "predictions.npz" in err and "refused" in err, err
    assert not marker.exists()


def test_a_fit_gmm_payload_exits_2_with_one_line(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    path = _payload_file(tmp_path / "data_2d.npz", "positions_2d", _System(marker))
    code = main(["fit-gmm", "--data-2d", str(path), "--out", str(tmp_path / "o.npz"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "data_2d.npz" in err and "refused" in err, err
    assert not marker.exists() and not (tmp_path / "o.npz").exists()


def test_pickle_dumps_of_the_payload_would_have_run(tmp_path):
    """The test's payload is live: plain pickle runs it (so the refusals above are meaningful)."""
    marker = tmp_path / "PWNED"
    pickle.loads(pickle.dumps(_System(marker)))
    assert marker.exists()
