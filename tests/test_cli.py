"""The command line: every bad value ends with one line and exit 2, before any work; `--help`
imports no command and no torch; the start-up settings the commands rely on."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from diffpose3d.cli import main


@pytest.fixture(scope="module")
def keypoints_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "one.npz"
    kp = np.random.default_rng(0).uniform(50, 400, (1, 17, 3))
    kp[..., 2] = 0.9
    np.savez(path, keypoints=kp, image_size=np.array([640, 480]), layout=np.array("coco17"))
    return path


HOSTILE = [
    (["--hypotheses", "0"], "argument --hypotheses: must be between 1 and 1000, got 0"),
    (["--hypotheses", "-3"], "argument --hypotheses: must be between 1 and 1000, got -3"),
    (["--hypotheses", "many"], "argument --hypotheses: expected a whole number, got 'many'"),
    (["--steps", "0"], "argument --steps: must be between 1 and 1000000, got 0"),
    (["--steps", "51"], "--steps 51: the model has K = 50 diffusion steps; choose 1 to 50"),
    (["--seed", "99999999999999999999"], "argument --seed: must be between 0 and 4294967295"),
    (["--seed", "-1"], "argument --seed: must be between 0 and 4294967295, got -1"),
    (["--device", "cuda:99"], "argument --device: 'cuda:99': "),
    (["--device", "toaster"], "argument --device: 'toaster' is not a device"),
    (["--max-people", "0"], "argument --max-people: must be between 1 and 100, got 0"),
    (["--person", "-2"], "argument --person: must be between 0 and 1000000000, got -2"),
    (["--person", "tallest"], "argument --person: expected all, largest or a person id, got 'tallest'"),
    (["--image-size", "0", "480"], "argument --image-size: must be between 1 and 1048576, got 0"),
    (["--aggregate", "mode"], "argument --aggregate: invalid choice: 'mode'"),
    (["--checkpoint", "no/such/model"], "no/such/model: checkpoint not found"),
    (["--focal", "0"], "argument --focal: must be a number of pixels in (0, 1e+07], got 0"),
    (["--focal", "wide"], "argument --focal: expected a focal length in pixels, got 'wide'"),
    (["--export", "fbx"], "argument --export: export format fbx: choose from bvh, gltf (comma-separated)"),
]


@pytest.mark.parametrize(("extra", "message"), HOSTILE)
def test_every_bad_value_is_one_line_and_exit_2_with_nothing_written(keypoints_file, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    code = main(["predict", str(keypoints_file), "--out", str(out), *extra])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("diffpose3d predict: error: "), lines
    assert message in lines[0], lines
    assert captured.out == "" and not out.exists()


def test_cuda_on_a_machine_without_it_is_refused_in_words(keypoints_file, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["predict", str(keypoints_file), "--out", str(tmp_path / "o"), "--device", "cuda"]) == 2
    assert "no CUDA device on this machine" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_cli_messages_use_the_flags_words(tmp_path, capsys):
    src = tmp_path / "k.npz"
    np.savez(src, keypoints=np.ones((2, 17, 2)))
    assert main(["predict", str(src), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--image-size W H" in err and err.count("\n") == 1


def _imports_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_help_imports_no_command_and_no_torch():
    top = _imports_after("from diffpose3d.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert "torch" not in top and not any(m.startswith("diffpose3d.commands.") for m in top)
    predict = _imports_after("from diffpose3d.cli import main\nmain(['predict', '--help'])")
    assert "torch" not in predict and "diffpose3d.commands.predict" in predict
    assert "diffpose3d.commands.train" not in predict and "mediapipe" not in predict


def test_predict_and_demo_ask_openmp_not_to_spin(monkeypatch, keypoints_file, tmp_path):
    import os

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    main(["predict", str(keypoints_file), "--out", str(tmp_path / "o"), "--hypotheses", "0"])
    assert os.environ.get("OMP_WAIT_POLICY") == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    main(["predict", str(keypoints_file), "--out", str(tmp_path / "o"), "--hypotheses", "0"])
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"  # the user's choice wins
