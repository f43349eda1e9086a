"""Every Python example in the README runs as written (from the repository root)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

BLOCKS = re.findall(r"```python\n(.*?)```", (REPO_ROOT / "README.md").read_text(), flags=re.S)


def test_the_readme_has_python_examples() -> None:
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index: int, monkeypatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    namespace: dict = {}
    exec(compile(BLOCKS[index], f"README.md python block {index + 1}", "exec"), namespace)
    if "result" in namespace:  # the lifting example: the shapes it promises
        result = namespace["result"]
        t, j = result.pose_3d.shape[:2]
        assert result.hypotheses.shape[0] == t and result.hypotheses.shape[2:] == (j, 3)
        assert result.uncertainty.shape == (t, j)
