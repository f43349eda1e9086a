"""Hostile and out-of-range settings (#20): YAML alias bombs and non-UTF-8 files are refused in one
line before they expand; every setting is range-checked where it is parsed (explicit checks that
hold under `python -O`); a bundle with non-finite weights is refused; `train --resume` without
its saved config is refused in one line."""

from __future__ import annotations

import itertools
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from diffpose3d.bundle import load_bundle
from diffpose3d.cli import main
from diffpose3d.config import Config, load_config
from diffpose3d.config_ranges import RANGES
from diffpose3d.errors import ConfigError, InputFileError

REPO = Path(__file__).resolve().parents[1]


def _alias_bomb(levels: int = 9) -> str:
    """~2 KB of YAML that a plain safe_load expands to 9**levels strings."""
    names = "abcdefghijklmnop"
    lines = [f'{names[0]}: &{names[0]} ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in itertools.pairwise(names[:levels]):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [2, 7, 9])
def test_an_alias_bomb_is_refused_before_it_expands(tmp_path, levels):
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(levels))
    tracemalloc.start()
    try:
        with pytest.raises(InputFileError, match="bomb.yaml: not valid YAML .*aliases"):
            load_config(path)
        assert tracemalloc.get_traced_memory()[1] < 50 << 20
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("content, match", [
    (b"name: caf\xe9\n", r"not UTF-8 text \(byte 9\)"),
    (b"\xff\xfe\x00n\x00a", "not UTF-8"),
    (b"name: " + b"[" * 20000 + b"]" * 20000, "not valid YAML"),
    (b"train: {seed: 1}\n" + b"#" * (2 << 20), "larger than 1 MiB"),
    (b"train: &t {seed: 1}\n", "anchors and aliases"),
    (b"inference:\n  reprojection_widening: 1.5\n  hypotheses: 5\n  reprojection_widening: 0.0\n",
     r"key 'reprojection_widening' appears twice in one section, line 4"),
])
def test_bad_config_files_are_one_line(tmp_path, content, match):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=match) as info:
        load_config(path)
    assert "\n" not in str(info.value) and "c.yaml" in str(info.value)


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=-5", "train.batch_size must be an integer in [1, 65536], got -5"),
    ("train.batch_size=0", "train.batch_size must be an integer"),
    ("train.eval_every=0", "train.eval_every must be an integer in [1, "),
    ("model.denoiser.heads=0", "model.denoiser.heads must be an integer in [1, 64], got 0"),
    ("model.denoiser.width=7", "model.denoiser.width must be a multiple of model.denoiser.heads=4, got 7"),
    ("model.encoder.width=10", "model.encoder.width must be a multiple of model.encoder.heads=4, got 10"),
    ("model.diffusion.num_steps=0", "model.diffusion.num_steps must be an integer in [1, 10000], got 0"),
    ("model.skeleton=bogus", "model.skeleton must be one of h36m17 | "),
    ("train.encoder_lr=nan", "train.encoder_lr must be a number in (0, 1], got nan"),
    ("train.denoiser_lr=-1", "train.denoiser_lr must be a number in (0, 1]"),
    ("data.holdout_fractions=[1,0,0]", "data.holdout_fractions must be three numbers [train, val, test]"),
    ("data.holdout_fractions=[0.5,0.5]", "data.holdout_fractions must be three numbers"),
    ("train.seed=99999999999999999999", "train.seed must be an integer in [0, 4294967295]"),
    ("inference.seed=-1", "inference.seed must be an integer in [0, 4294967295], got -1"),
    ("inference.steps=0", "inference.steps must be an integer in [1, 10000], got 0"),
    ("inference.steps=51", "inference.steps must be <= model.diffusion.num_steps=50, got 51"),
    ("inference.hypotheses=0", "inference.hypotheses must be an integer in [1, 1000]"),
    ("inference.aggregate=max", "inference.aggregate must be one of mean | median | reprojection, got 'max'"),
    ("evidence.synthetic.swap_prob=1.5", "evidence.synthetic.swap_prob must be a number in [0, 1], got 1.5"),
    ("train.max_minutes=inf", "train.max_minutes must be a number >= 0, got inf"),
    ("train.batch_size=2.5", "train.batch_size: expected an integer, got 2.5"),
    ("train.batch_size=true", "train.batch_size: expected an integer, got True"),
    ("train.max_minutes=[1]", "train.max_minutes: expected a number"),
    ("data.actions=[", "override 'data.actions=[': not a YAML value"),
    ("data.actions=[&a x, *a]", "not a YAML value"),
    ("name={a: 1}", "name: expected a string"),
])
def test_out_of_range_settings_name_the_key_and_the_range(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_range_table_knows_only_real_fields_and_the_real_choices():
    import dataclasses

    from diffpose3d.data.frames import SOURCES
    from diffpose3d.diffusion.hk import DEPTH_PRIORS
    from diffpose3d.diffusion.schedule import SCHEDULES
    from diffpose3d.inference.aggregate import AGGREGATES
    from diffpose3d.model import CONTEXTS
    from diffpose3d.models.onnx_backend import BACKENDS

    def keys(obj, prefix=""):
        for f in dataclasses.fields(obj):
            value, key = getattr(obj, f.name), f"{prefix}{f.name}"
            yield from keys(value, key + ".") if dataclasses.is_dataclass(value) else [key]

    assert set(RANGES) <= set(keys(Config()))
    for key, names in [("evidence.source", SOURCES), ("model.diffusion.depth_prior", DEPTH_PRIORS),
                       ("model.diffusion.schedule", SCHEDULES), ("inference.aggregate", AGGREGATES),
                       ("model.encoder.kind", CONTEXTS), ("inference.backend", BACKENDS)]:
        assert all(RANGES[key](n) is None for n in names) and RANGES[key]("bogus") is not None, key


def test_checks_hold_under_python_O():
    code = ("from diffpose3d.config import load_config\n"
            "from diffpose3d.errors import ConfigError\n"
            "try:\n    load_config(None, ['inference.steps=0'])\nexcept ConfigError as e:\n    print('refused', e)\n")
    res = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120)
    assert "refused inference.steps must be an integer" in res.stdout, res.stdout + res.stderr


def test_train_refuses_bad_settings_with_exit_2(tmp_path, capsys):
    code = main(["train", "--config", str(REPO / "configs" / "humaneva_frame.yaml"), "--out", str(tmp_path / "o"),
                 "--set", "train.batch_size=-5"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "train.batch_size must be an integer in [1, 65536], got -5" in err
    assert not (tmp_path / "o").exists()


# -- bundles -------------------------------------------------------------------------------------------


@pytest.fixture()
def bundle(tiny_bundle, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(tiny_bundle, tmp_path / "b"))


def test_a_bundle_with_one_nan_weight_is_refused(bundle):
    state = load_file(str(bundle / "model.safetensors"))
    name = sorted(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)[0]
    state[name].view(-1)[0] = float("nan")
    save_file(state, str(bundle / "model.safetensors"))
    with pytest.raises(InputFileError, match=f"model.safetensors: tensor '{name}' holds NaN or infinite values"):
        load_bundle(bundle)


@pytest.mark.parametrize("content, match", [
    (_alias_bomb().encode(), "config.yaml: not valid YAML .*aliases"),
    (b"name: \xff\n", "config.yaml: not UTF-8"),
    (b"model: {denoiser: {heads: 0}}\n", "config.yaml: model.denoiser.heads must be"),
    (b"train: {seed: 1}\ntrain: {seed: 2}\n", "config.yaml: not valid YAML .*key 'train' appears twice"),
])
def test_a_bad_bundle_config_is_refused_in_one_line(bundle, content, match):
    (bundle / "config.yaml").write_bytes(content)
    with pytest.raises(InputFileError, match=match):
        load_bundle(bundle)


def test_a_non_utf8_info_file_is_ignored(bundle):
    (bundle / "info.json").write_bytes(b'{"name": "\xff"}')
    model, info = load_bundle(bundle)
    assert info == {} and torch.isfinite(next(model.parameters())).all()


def test_resume_without_the_saved_config_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    args = ["train", "--config", str(REPO / "configs" / "humaneva_frame.yaml"), "--out", str(out), "--resume"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config.yaml: missing" in err
    (out / "config.yaml").write_bytes(b"name: \xff\n")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config.yaml: not UTF-8" in err


def test_outputs_that_cannot_be_a_file_or_a_folder_are_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code = main(["train", "--config", str(REPO / "configs" / "humaneva_frame.yaml"), "--out", str(tmp_path / "file")])
    assert code == 2 and "file: is a file" in capsys.readouterr().err
    import numpy as np

    src = tmp_path / "in.npz"
    np.savez(src, positions_2d=np.array({"S1": {"Walk": [np.zeros((2, 15, 2), np.float32)]}}, dtype=object))
    for out, match in [("/", "/: is a folder"), (str(tmp_path), "is a folder")]:
        assert main(["fit-gmm", "--data-2d", str(src), "--out", out, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and match in err, err
    assert main(["fit-gmm", "--data-2d", str(src), "--out", str(tmp_path / "o.npz"), "--seed", "99999999999999999999"]) == 2
    assert "--seed must be an integer in [0, 4294967295]" in capsys.readouterr().err
