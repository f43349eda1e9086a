"""`diffpose3d batch`: what is refused before any work, in one line with exit 2 (no Ray needed)."""

from __future__ import annotations

import numpy as np
import pytest

from diffpose3d.cli import main


@pytest.mark.parametrize(("argv", "message"), [
    (["nowhere.mp4"], "nowhere.mp4: no such file or folder"),
    (["@nowhere.txt"], "nowhere.txt: no such file or folder"),
    (["kp.npz", "--workers", "0"], "argument --workers: must be between 1 and 4096, got 0"),
    (["kp.npz", "--gpus-per-worker", "-1"], "argument --gpus-per-worker: must be between 0 and 64, got -1"),
    (["kp.npz", "--steps", "99"], "--steps 99: the model has K = "),
    (["kp.npz", "--checkpoint", "no_such_model"], "no_such_model"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "kp.npz", keypoints=np.ones((1, 17, 3), np.float32), image_size=np.array([64, 64]),
             layout=np.array("coco17"))
    assert main(["batch", *argv, "--out", "out"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("diffpose3d batch: error:"), err
    assert not (tmp_path / "out").exists()
