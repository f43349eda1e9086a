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


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A tiny, untrained model bundle (N = 4, 3 steps): for plumbing tests, not accuracy.

    g's last layer starts at zero in a fresh model; it is randomised here so g actually acts.
    """
    import torch

    from diffpose3d.checkpoint import save_bundle
    from diffpose3d.config import load_config
    from diffpose3d.model import DiffPoseModel

    torch.manual_seed(0)
    cfg = load_config(None, ["model.width=16", "model.blocks=1", "model.encoder_width=16", "model.encoder_blocks=1",
                             "inference.hypotheses=4", "inference.steps=3"])
    model = DiffPoseModel(cfg)
    torch.nn.init.normal_(model.denoiser.head.weight, std=0.1)
    folder = tmp_path_factory.mktemp("tiny_bundle")
    save_bundle(model, cfg, folder, {"note": "untrained"})
    return folder
