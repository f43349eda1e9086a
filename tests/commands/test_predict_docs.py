"""docs/INPUTS.md: every example file it shows how to write is written as shown, and lifted by
`predict` with the command it shows."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from diffpose3d.cli import main
from diffpose3d.inference.outputs import load_result_npz

DOC = Path(__file__).resolve().parents[2] / "docs" / "INPUTS.md"
TEXT = DOC.read_text()
PYTHON = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
COMMANDS = [line for block in re.findall(r"```bash\n(.*?)```", TEXT, flags=re.S) for line in block.splitlines()
            if line.startswith("diffpose3d predict")]


def test_each_format_has_an_example_and_a_command():
    assert len(PYTHON) == len(COMMANDS) == 3


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_the_documented_example_is_lifted(index, tiny_bundle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(PYTHON[index], f"docs/INPUTS.md python block {index + 1}", "exec"), {})
    argv = shlex.split(COMMANDS[index])[1:]
    assert main([*argv, "--checkpoint", str(tiny_bundle), "--quiet"]) == 0
    name = Path(argv[1]).stem
    result = load_result_npz(tmp_path / "out" / f"{name}.npz")
    assert len(result) >= 1 and np.isfinite(result.pose_3d).all() and not result.missing.all()
    assert capsys.readouterr().out.startswith(f"{argv[1]}: ")
