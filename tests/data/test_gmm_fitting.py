"""`diffpose3d fit-gmm`: output layout, and a run stopped mid-way resumes to an identical file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffpose3d.cli import main
from diffpose3d.data.gmm_files import read_gmm_file


def _write_2d(path: Path) -> dict:
    rng = np.random.default_rng(0)
    base = rng.uniform(200, 400, (1, 15, 2)).astype(np.float32)
    data = {
        "Train/S1": {"Walking 1 chunk0": [base + rng.normal(0, 3, (30, 15, 2)).astype(np.float32) for _ in range(2)]},
        "Train/S2": {"Jog 1 chunk0": [base + rng.normal(0, 3, (23, 15, 2)).astype(np.float32)]},
    }
    meta = {"layout_name": "humaneva15", "num_joints": 15,
            "keypoints_symmetry": [[2, 3, 4, 8, 9, 10], [5, 6, 7, 11, 12, 13]]}
    np.savez(path, positions_2d=np.array(data, dtype=object), metadata=np.array(meta, dtype=object))
    return data


def _args(src: Path, out: Path, *extra: str) -> list[str]:
    return ["fit-gmm", "--data-2d", str(src), "--out", str(out), "--chunk-frames", "16", "--components", "3",
            "--swap-prob", "0.2", "--seed", "7", "--no-progress", *extra]


def test_fit_gmm_writes_the_authors_layout(tmp_path: Path) -> None:
    src = tmp_path / "in.npz"
    data = _write_2d(src)
    out = tmp_path / "out.npz"
    assert main(_args(src, out)) == 0
    gmm, meta = read_gmm_file(out)
    for subject, actions in data.items():
        for action, views in actions.items():
            for kp, g in zip(views, gmm[subject][action]):
                assert g.shape == (len(kp), 15, 3, 5)
                top = g[np.arange(len(kp))[:, None], np.arange(15)[None], g[..., 0].argmax(-1)]
                # the heaviest kernel is near the keypoint unless that joint was swapped
                assert np.median(np.linalg.norm(top[..., 1:3] - kp, axis=-1)) < 10
    extra = np.load(out, allow_pickle=True)["covariance_2d"].item()
    assert extra["Train/S2"]["Jog 1 chunk0"][0].shape == (23, 15, 3)
    assert meta["gmm"]["components"] == 3 and meta["layout_name"] == "humaneva15"
    assert not (tmp_path / "out.npz.parts").exists()


def test_interrupted_run_resumes_to_an_identical_file(tmp_path: Path) -> None:
    src = tmp_path / "in.npz"
    _write_2d(src)
    straight, resumed = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(_args(src, straight)) == 0
    assert main(_args(src, resumed, "--stop-after-chunks", "2")) == 1  # "killed" after 2 of 6 chunks
    assert not resumed.exists()
    assert len(list((tmp_path / "b.npz.parts").glob("chunk_*.npz"))) == 2
    assert main(_args(src, resumed)) == 0
    a, b = np.load(straight, allow_pickle=True), np.load(resumed, allow_pickle=True)
    for key in ("positions_2d", "covariance_2d"):
        da, db = a[key].item(), b[key].item()
        for s in da:
            for act in da[s]:
                for va, vb in zip(da[s][act], db[s][act]):
                    np.testing.assert_array_equal(va, vb)


def test_changed_settings_discard_stale_chunks(tmp_path: Path) -> None:
    src = tmp_path / "in.npz"
    _write_2d(src)
    out = tmp_path / "c.npz"
    assert main(_args(src, out, "--stop-after-chunks", "1")) == 1
    assert main(_args(src, out, "--seed", "8")) == 0  # different seed: starts over, still finishes
    ref = tmp_path / "d.npz"
    assert main(_args(src, ref, "--seed", "8")) == 0
    np.testing.assert_array_equal(
        np.load(out, allow_pickle=True)["positions_2d"].item()["Train/S1"]["Walking 1 chunk0"][0],
        np.load(ref, allow_pickle=True)["positions_2d"].item()["Train/S1"]["Walking 1 chunk0"][0],
    )


def test_bad_input_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, positions_2d=np.array({"S1": {"a": [np.zeros((3, 15))]}}, dtype=object))
    assert main(_args(bad, tmp_path / "o.npz")) == 2
    assert "expected (T, J, 2)" in capsys.readouterr().err


def test_an_unrelated_parts_folder_is_never_emptied(tmp_path: Path, capsys: pytest.CaptureFixture[str], snapshot) -> None:
    src = tmp_path / "in.npz"
    _write_2d(src)
    parts = tmp_path / "keep.npz.parts"
    parts.mkdir()
    (parts / "thesis.tex").write_text("years of work")
    (parts / "manifest.json").write_text("{}")
    before = snapshot(tmp_path)
    assert main(_args(src, tmp_path / "keep.npz")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fit-gmm did not write" in err[0] and "thesis.tex" in err[0]
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["device", "fifo", "folder", "link"])
def test_an_output_that_is_not_a_regular_file_is_refused(tmp_path: Path, kind: str, capsys, snapshot, plant) -> None:
    src = tmp_path / "in.npz"
    _write_2d(src)
    out = tmp_path / "out.npz"
    (tmp_path / "elsewhere.npz").write_bytes(b"x")
    plant(out, kind, tmp_path / "elsewhere.npz")
    before = snapshot(tmp_path)
    assert main(_args(src, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0]
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("threads", ["-1", "100000", "x"])
def test_threads_are_bounded_by_the_machine(tmp_path: Path, threads: str, capsys) -> None:
    src = tmp_path / "in.npz"
    _write_2d(src)
    assert main(_args(src, tmp_path / "o.npz", "--threads", threads)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threads" in err[0]
    assert not (tmp_path / "o.npz").exists()


def test_train_threads_are_clamped_to_the_machine() -> None:
    import os

    from diffpose3d.config_ranges import clamp_threads, max_threads

    assert 1 <= max_threads() <= (os.cpu_count() or 1)
    assert clamp_threads(100_000) == max_threads() and clamp_threads(1) == 1 and clamp_threads(0) == 0
