from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffpose3d.io.atomic import atomic_write, save_json_atomic, save_npz_atomic


def test_writes_land_at_the_exact_path(tmp_path: Path) -> None:
    save_npz_atomic(tmp_path / "sub" / "a.bin", x=np.arange(3), path=np.ones(2))
    with np.load(tmp_path / "sub" / "a.bin") as data:
        np.testing.assert_array_equal(data["x"], [0, 1, 2])
        np.testing.assert_array_equal(data["path"], [1, 1])
    save_json_atomic(tmp_path / "m.json", {"a": 1})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write("partial")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with pytest.raises(ValueError), atomic_write(target, "r"):
        pass
