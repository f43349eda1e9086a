"""What `batch` runs on: named files, folders and lists -> inputs, and each input's result name."""

from __future__ import annotations

import json

import pytest

from diffpose3d.batch.inputs import SUMMARY_STEM, assign_names, expand_inputs
from diffpose3d.errors import InputFileError


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folders_files_and_lists_become_absolute_inputs_each_once(tmp_path, monkeypatch):
    a = touch(tmp_path / "clips" / "a.mp4")
    b = touch(tmp_path / "clips" / "b.jpg")
    touch(tmp_path / "clips" / "notes.md")  # not an input kind: left out of a folder
    touch(tmp_path / "clips" / ".hidden.mp4")
    touch(tmp_path / "clips" / "sub" / "c.mp4")  # subfolders are not walked
    k = touch(tmp_path / "kp" / "k.json", b"{}")
    lists = tmp_path / "lists"
    touch(lists / "paths.txt", b"# my clips\n\n../clips/a.mp4\n../kp/k.json\nmissing.mp4\n../clips/notes.md\n")
    monkeypatch.chdir(tmp_path)
    found = expand_inputs(["clips", "@lists/paths.txt", str(b)])
    assert [i.path for i in found] == [a, b, k, lists / "missing.mp4", tmp_path / "clips" / "notes.md"]
    problems = {i.path.name: i.problem for i in found if i.problem}
    assert problems == {"missing.mp4": "no such file",
                        "notes.md": "unsupported input (a photo, a video, or a .json/.npz keypoints file)"}


@pytest.mark.parametrize(("named", "message"), [
    ("nowhere", "nowhere: no such file or folder"),
    ("@nowhere.txt", "nowhere.txt: no such file or folder"),
    ("empty", "empty: folder holds no photos, videos or keypoints files"),
])
def test_a_named_path_that_gives_nothing_is_refused_in_one_line(tmp_path, monkeypatch, named, message):
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputFileError) as info:
        expand_inputs([named])
    assert str(info.value) == message


def test_the_files_of_results_in_a_folder_are_not_inputs(tmp_path):
    photo = touch(tmp_path / "photo.jpg")
    touch(tmp_path / "photo.npz")
    touch(tmp_path / "photo.json")
    touch(tmp_path / "photo.manifest.json", json.dumps({"files": {"photo.npz": {}, "photo.json": {}}}).encode())
    touch(tmp_path / f"{SUMMARY_STEM}.json", b"{}")
    kp = touch(tmp_path / "keypoints.json", b"{}")
    assert [i.path for i in expand_inputs([str(tmp_path)])] == [kp, photo]


def test_names_are_predicts_and_never_take_another_inputs_result(tmp_path):
    x_jpg, x_png, x_mp4, y = (tmp_path / n for n in ("a/x.jpg", "b/x.jpg", "x.mp4", "y.mp4"))
    z = tmp_path / f"{SUMMARY_STEM}.mp4"
    owners = {"y": str(tmp_path / "elsewhere" / "y.mp4"), "x": str(x_jpg)}
    names = assign_names([x_jpg, x_png, x_mp4, y, z], owners.get)
    assert names == {x_jpg: "x", x_png: "x_jpg", x_mp4: "x_mp4", y: "y_mp4", z: f"{SUMMARY_STEM}_mp4"}
