"""Shared fixtures: where the read-only shared data lives, and a skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """`$DIFFPOSE3D_SHARED` or `../shared` beside the repository."""
    return Path(os.environ.get("DIFFPOSE3D_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def humaneva_dir() -> Path:
    path = shared_dir() / "data" / "humaneva"
    if not (path / "data_3d_humaneva15_train.npz").is_file():
        pytest.skip(f"real HumanEva-I files not found in {path} (set DIFFPOSE3D_SHARED)")
    return path
