"""Helpers shared by the video runs' tests (attention and temporal convolution encoders)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from diffpose3d.bundle import load_bundle
from diffpose3d.config import Config
from diffpose3d.data.frames import build_frames
from diffpose3d.data.mirror import flip_gmm, flip_keypoints
from diffpose3d.data.splits import training_splits


@pytest.fixture()
def mirrored_context() -> Callable:
    """`mirrored_context(bundle, cfg)`: on the first test take of `cfg`, the bundle's context `(xyz,
    feats)`, the context of the mirrored take `(xyz_m, feats_m)`, and the context mirrored by
    `flip_context` `(xyz_f, feats_f)`, with the model and the flip permutation."""

    def run(bundle: Path, cfg: Config):
        model, _ = load_bundle(bundle)
        perm = model.skeleton.flip_permutation()
        frames = build_frames(training_splits(cfg)["test"][:1], model.skeleton, cfg.evidence)
        xyz, feats = model.encode(model.prepare(frames.keypoints_uv, frames.uv_gmm))
        xyz_m, feats_m = model.encode(model.prepare(flip_keypoints(frames.keypoints_uv, perm),
                                                    flip_gmm(frames.uv_gmm, perm)))
        xyz_f, feats_f = model.flip_context(xyz, feats, torch.as_tensor(perm))
        return model, perm, (xyz, feats), (xyz_m, feats_m), (xyz_f, feats_f)

    return run
