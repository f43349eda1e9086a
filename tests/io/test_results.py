"""Output folders: a result's files are one unit (staged, manifest last, rolled forward after a
kill), one run per folder at a time, and readers refuse mixed files.

A kill -9 is simulated exactly: at the chosen point the output folder is copied as it is on disk
(what a killed process leaves), then the run is stopped; the copy is what readers and the next
run see.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from diffpose3d.errors import DiffPoseError, InputFileError, OutputFileError
from diffpose3d.inference import outputs
from diffpose3d.inference.outputs import load_result_npz, write_result
from diffpose3d.inference.result import PoseResult
from diffpose3d.io import results
from diffpose3d.io.results import OutputFolder, verify_result


def fake_result(frames: int, seed: int) -> PoseResult:
    rng = np.random.default_rng(seed)
    hyp = rng.normal(0, 0.1, (frames, 2, 3, 3))
    return PoseResult(
        joint_names=["pelvis", "knee", "ankle"], parents=[-1, 0, 1], pose_3d=hyp.mean(1), hypotheses=hyp,
        covariance=np.tile(np.eye(3) * 1e-2, (frames, 3, 1, 1)), uncertainty=np.full((frames, 3), 0.1),
        keypoints_2d=rng.uniform(0, 100, (frames, 3, 2)), confidence=np.ones((frames, 3)),
        missing=np.zeros((frames, 3), bool), lifter_3d=hyp.mean(1), image_size=(100, 100),
        frame_indices=np.arange(frames),
    )


class Killed(BaseException):
    """Stands for the process dying: nothing after it runs (the snapshot was taken before)."""


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def consistent_pair(folder: Path, name: str) -> int:
    """The npz and the JSON are one run's (the same run id and frame count); returns the frames."""
    verify_result(folder / f"{name}.npz")
    verify_result(folder / f"{name}.json")
    res = load_result_npz(folder / f"{name}.npz")
    doc = json.loads((folder / f"{name}.json").read_text())
    assert doc["meta"]["run"] == res.meta["run"] and doc["num_frames"] == len(res)
    return len(res)


def test_a_result_is_written_with_its_manifest_and_nothing_else(tmp_path):
    write_result(fake_result(3, 0), tmp_path / "out", "clip")
    assert listing(tmp_path / "out") == ["clip.json", "clip.manifest.json", "clip.npz"]
    manifest = json.loads((tmp_path / "out" / "clip.manifest.json").read_text())
    assert set(manifest["files"]) == {"clip.npz", "clip.json"} and consistent_pair(tmp_path / "out", "clip") == 3


# The points where a kill can land: during the JSON write (staging), and before each rename of
# the commit: staging -> .commit, npz, json, manifest.
KILL_POINTS = ["json", 0, 1, 2, 3]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_kill_at_any_point_leaves_the_old_or_the_new_result_whole(tmp_path, monkeypatch, point):
    out, snapshot = tmp_path / "out", tmp_path / "after_kill"
    write_result(fake_result(10, 1), out, "clip")
    replace = os.replace
    calls = {"n": 0}

    def kill_here():
        shutil.copytree(out, snapshot)
        raise Killed()

    def replace_or_die(src, dst):
        if calls["n"] == point:
            kill_here()
        calls["n"] += 1
        return replace(src, dst)

    write_json = outputs._write_json

    def json_dies_halfway(result, path):
        write_json(result, path)
        Path(path).write_bytes(Path(path).read_bytes()[:100])  # the part written before the kill
        kill_here()

    if point == "json":
        monkeypatch.setattr(outputs, "_write_json", json_dies_halfway)
    else:
        monkeypatch.setattr(results.os, "replace", replace_or_die)
    with pytest.raises(Killed):
        write_result(fake_result(2000, 2), out, "clip")
    monkeypatch.undo()
    # Before any rerun, a reader gets a whole result or a one-line refusal, never a mixed pair.
    try:
        frames = consistent_pair(snapshot, "clip")
        assert frames in (10, 2000)
    except InputFileError as exc:
        assert len(str(exc).splitlines()) == 1 and "run predict" in str(exc)
    # The next run on the folder finishes or discards what the killed one left.
    with OutputFolder(snapshot):
        pass
    assert consistent_pair(snapshot, "clip") == (10 if point in ("json", 0) else 2000)
    assert listing(snapshot) == ["clip.json", "clip.manifest.json", "clip.npz"]


def test_a_failed_rerun_leaves_the_previous_result_whole(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write_result(fake_result(10, 1), out, "clip")
    before = {name: (out / name).read_bytes() for name in listing(out)}

    def disk_full(result, path):
        Path(path).write_text('{"schema": "diffpose3d.pred')
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs, "_write_json", disk_full)
    with pytest.raises(OutputFileError, match="No space left on device"):
        write_result(fake_result(2000, 2), out, "clip")
    assert {name: (out / name).read_bytes() for name in listing(out)} == before
    assert consistent_pair(out, "clip") == 10


def test_a_rerun_replaces_the_whole_set_and_drops_files_the_new_result_lacks(tmp_path):
    out = tmp_path / "out"
    with OutputFolder(out) as folder, folder.result("clip") as stage:
        stage.path("clip_render.png").write_bytes(b"old render")
        stage.path("clip.npz").write_bytes(b"old")
    with OutputFolder(out) as folder, folder.result("clip") as stage:
        stage.path("clip.npz").write_bytes(b"new")
    assert listing(out) == ["clip.manifest.json", "clip.npz"] and (out / "clip.npz").read_bytes() == b"new"


def test_two_runs_on_one_folder_cannot_interleave(tmp_path, tiny_bundle, capsys):
    from diffpose3d.cli import main

    src = tmp_path / "people.npz"
    kp = np.random.default_rng(0).uniform(50, 400, (2, 17, 3))
    kp[..., 2] = 0.9
    np.savez(src, keypoints=kp, image_size=np.array([640, 480]))
    out = tmp_path / "out"
    with OutputFolder(out):
        with pytest.raises(OutputFileError, match="another diffpose3d run is writing to this folder"):
            OutputFolder(out).__enter__()
        code = main(["predict", str(src), "--out", str(out), "--checkpoint", str(tiny_bundle), "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "another diffpose3d run is writing" in err[0]
    assert main(["predict", str(src), "--out", str(out), "--checkpoint", str(tiny_bundle), "--quiet"]) == 0
    assert listing(out) == ["people.json", "people.manifest.json", "people.npz"]  # the lock file is gone


def test_a_file_from_another_run_is_refused_by_the_reader(tmp_path):
    out = tmp_path / "out"
    write_result(fake_result(3, 0), out, "a")
    write_result(fake_result(5, 1), tmp_path / "other", "a")
    shutil.copy(tmp_path / "other" / "a.npz", out / "a.npz")  # a 5-frame npz beside a 3-frame json
    with pytest.raises(InputFileError, match=r"a.npz: does not match a.manifest.json") as info:
        load_result_npz(out / "a.npz")
    assert isinstance(info.value, DiffPoseError) and len(str(info.value).splitlines()) == 1


def test_complete_result_vouches_only_for_a_whole_untouched_result(tmp_path):
    out = tmp_path / "out"
    write_result(fake_result(3, 0), out, "clip")
    assert set(results.complete_result(out, "clip")["files"]) == {"clip.npz", "clip.json"}
    assert results.complete_result(out, "other") is None  # no manifest
    data = bytearray((out / "clip.json").read_bytes())
    data[-3] ^= 1  # same size, other bytes
    (out / "clip.json").write_bytes(bytes(data))
    assert results.complete_result(out, "clip") is None
    write_result(fake_result(3, 0), out, "clip")
    (out / "clip.npz").unlink()
    assert results.complete_result(out, "clip") is None
    write_result(fake_result(3, 0), out, "clip")
    (out / ".clip.commit").mkdir()  # a commit of it is pending
    assert results.complete_result(out, "clip") is None


def test_a_joined_folder_commits_under_the_lock_holders_run(tmp_path):
    with OutputFolder(tmp_path / "out") as owner:
        worker = OutputFolder.joined(owner.path, owner.run_id)
        with worker.result("clip") as stage:
            stage.path("clip.npz").write_bytes(b"x")
    manifest = json.loads((tmp_path / "out" / "clip.manifest.json").read_text())
    assert manifest["run"] == owner.run_id and results.complete_result(tmp_path / "out", "clip") is not None
