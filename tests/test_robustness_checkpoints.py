"""Training checkpoints survive damage (#20): a kill at any point of a save, a truncated, garbage,
deleted or foreign file resumes bit-exact from the last good save (one-line warning) or is refused
in one line; never a silent restart. The same for `fit-gmm` chunks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from diffpose3d.cli import main
from diffpose3d.config import TrainConfig
from diffpose3d.errors import InputFileError
from diffpose3d.training import state as training_state
from diffpose3d.training.loop import Budget, StageSpec, run_stage

EPOCHS = 4
X = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
Y = torch.randn(64, 1, generator=torch.Generator().manual_seed(1))
CFG = TrainConfig(batch_size=16, eval_every=1, progress=False)


class Killed(BaseException):
    """A kill -9 at the exact point: nothing after it runs (not even `except Exception`)."""


def _loss(module, index, flip, gen, rows):
    return ((module(X[index[rows]]) - Y[index[rows]]) ** 2).sum() / len(index)


def _validate(module):
    with torch.no_grad():
        return float(((module(X) - Y) ** 2).mean())


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _run(folder: Path, resume: bool = False, stage: str = "encoder", epochs: int = EPOCHS) -> torch.nn.Module:
    net = _net()
    torch.manual_seed(123)  # the global RNG a killed process would have had: resume restores its own
    run_stage(StageSpec(stage, epochs, 1e-2, 0, 1.0), net, _loss, _validate, 64, CFG, budget=Budget(0.0),
              checkpoint_dir=folder, resume=resume)
    return net


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    return _run_state(None)


def _run_state(folder: Path | None, resume: bool = False) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in _run(folder, resume).state_dict().items()}


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _kill_at(monkeypatch, name: str, call: int) -> None:
    """Make the `call`-th call of `training_state.<name>` die before it does anything."""
    real, calls = getattr(training_state, name), []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise Killed
        return real(*args, **kwargs)
    monkeypatch.setattr(training_state, name, dying)


def _saves(folder: Path) -> list[Path]:
    return sorted(folder.glob("encoder-e*.safetensors"))


def test_a_kill_between_the_weights_and_the_pointer_resumes_bit_exact(tmp_path, reference, monkeypatch, capsys):
    with monkeypatch.context() as m:
        _kill_at(m, "save_json_atomic", 3)  # epoch 3's file is written, its pointer is not
        with pytest.raises(Killed):
            _run(tmp_path)
    assert json.loads((tmp_path / "encoder.json").read_text())["epoch"] == 2
    _same(_run_state(tmp_path, resume=True), reference)
    assert "warning" not in capsys.readouterr().err  # the pointer's save is complete: nothing to warn about
    assert [p.name for p in _saves(tmp_path)] == ["encoder-e000003.safetensors", "encoder-e000004.safetensors"]


def test_a_kill_while_the_weights_are_written_leaves_the_previous_save(tmp_path, reference, monkeypatch):
    with monkeypatch.context() as m:
        _kill_at(m, "atomic_write", 2)
        with pytest.raises(Killed):
            _run(tmp_path)
    assert [p.name for p in _saves(tmp_path)] == ["encoder-e000001.safetensors"]
    assert not list(tmp_path.glob(".*.tmp"))
    _same(_run_state(tmp_path, resume=True), reference)


def _stopped_after(folder: Path, epochs: int, monkeypatch) -> None:
    with monkeypatch.context() as m:
        _kill_at(m, "atomic_write", epochs + 1)
        with pytest.raises(Killed):
            _run(folder)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "flipped_bytes", "deleted", "other_stage"])
def test_a_damaged_latest_save_falls_back_to_the_previous_with_a_warning(tmp_path, reference, monkeypatch, capsys, damage):
    _stopped_after(tmp_path, 3, monkeypatch)
    latest = tmp_path / "encoder-e000003.safetensors"
    blob = latest.read_bytes()
    if damage == "truncated":
        latest.write_bytes(blob[: len(blob) // 2])
    elif damage == "garbage":
        latest.write_bytes(b"\x00garbage" * 10)
    elif damage == "flipped_bytes":
        latest.write_bytes(blob[:-5] + bytes(b ^ 0xFF for b in blob[-5:]))
    elif damage == "deleted":
        latest.unlink()
    else:  # the denoiser stage's save under the encoder's name
        other = tmp_path / "other"
        _run(other, stage="denoiser", epochs=1)
        shutil.copy(next(other.glob("denoiser-e*.safetensors")), latest)
    capsys.readouterr()
    _same(_run_state(tmp_path, resume=True), reference)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warning" in err[0] and "encoder-e000003" in err[0] and "epoch 2" in err[0], err


@pytest.mark.parametrize("pointer", [b"", b"{not json", b"\xff\xfe\x00", b"[]", b'{"file": "../../etc/passwd"}'])
def test_a_garbage_pointer_resumes_from_the_newest_valid_save(tmp_path, reference, monkeypatch, capsys, pointer):
    _stopped_after(tmp_path, 3, monkeypatch)
    (tmp_path / "encoder.json").write_bytes(pointer)
    capsys.readouterr()
    _same(_run_state(tmp_path, resume=True), reference)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "encoder.json" in err and "epoch 3" in err


def test_nothing_valid_left_is_refused_in_one_line_never_a_silent_restart(tmp_path, monkeypatch):
    _stopped_after(tmp_path, 3, monkeypatch)
    for save in _saves(tmp_path):
        save.unlink()  # the pointer survives, the weights are gone
    with pytest.raises(InputFileError, match="no valid encoder checkpoint") as info:
        _run(tmp_path, resume=True)
    assert "\n" not in str(info.value) and "encoder-e000003.safetensors" in str(info.value)
    (tmp_path / "encoder.json").unlink()
    (tmp_path / "encoder.safetensors").write_bytes(b"old layout")  # a file of the older two-file layout
    with pytest.raises(InputFileError, match="older layout"):
        _run(tmp_path, resume=True)


def test_a_save_of_another_model_is_refused(tmp_path, monkeypatch):
    _stopped_after(tmp_path, 2, monkeypatch)
    net = torch.nn.Linear(3, 1)  # other tensors than the saved ones
    with pytest.raises(InputFileError, match="does not hold this model's encoder state"):
        run_stage(StageSpec("encoder", EPOCHS, 1e-2, 0, 1.0), net, _loss, _validate, 64, CFG, budget=Budget(0.0),
                  checkpoint_dir=tmp_path, resume=True)


def test_a_fresh_run_replaces_an_old_runs_saves_only_once_its_own_is_complete(tmp_path, monkeypatch):
    _run(tmp_path)  # an old, finished run: saves of epochs 3 and 4
    with monkeypatch.context() as m:
        _kill_at(m, "atomic_write", 2)
        with pytest.raises(Killed):
            _run(tmp_path)  # a new run (no resume) killed in its second save
    assert [p.name for p in _saves(tmp_path)] == ["encoder-e000001.safetensors"]


# -- fit-gmm chunks ----------------------------------------------------------------------------------


def _fit_args(src: Path, out: Path, *extra: str) -> list[str]:
    return ["fit-gmm", "--data-2d", str(src), "--out", str(out), "--chunk-frames", "8", "--components", "2",
            "--top-k", "16", "--seed", "3", "--no-progress", *extra]


def test_a_damaged_fit_gmm_chunk_is_fitted_again(tmp_path, capsys):
    rng = np.random.default_rng(0)
    kp = rng.uniform(200, 400, (1, 15, 2)).astype(np.float32) + rng.normal(0, 3, (20, 15, 2)).astype(np.float32)
    src = tmp_path / "in.npz"
    np.savez(src, positions_2d=np.array({"S1": {"Walk": [kp]}}, dtype=object))
    straight, resumed = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(_fit_args(src, straight)) == 0
    assert main(_fit_args(src, resumed, "--stop-after-chunks", "2")) == 1
    chunks = sorted((tmp_path / "b.npz.parts").glob("chunk_*.npz"))
    chunks[0].write_bytes(chunks[0].read_bytes()[:40])  # truncated
    np.savez(chunks[1], gmm=np.zeros((3, 15, 2, 5), np.float32), cov=np.zeros((3, 15, 2), np.float32))  # wrong shape
    capsys.readouterr()
    for _ in range(2):  # the damage is mended, not hit again on every rerun
        assert main(_fit_args(src, resumed)) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("fitting it again" in line for line in err), err
    a = np.load(straight, allow_pickle=True)["positions_2d"].item()["S1"]["Walk"][0]
    b = np.load(resumed, allow_pickle=True)["positions_2d"].item()["S1"]["Walk"][0]
    np.testing.assert_array_equal(a, b)
