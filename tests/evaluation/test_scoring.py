"""Which frames `evaluate --stride` and `calibrate --stride` score, and what a video model sees of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpose3d.bundle import load_bundle
from diffpose3d.config import EvidenceConfig
from diffpose3d.data.base import PoseSequence
from diffpose3d.data.frames import build_frames
from diffpose3d.evaluation.scoring import frames_to_score, score_model
from diffpose3d.inference.lifting import attach_context

CUT = slice(3, None, 10)


def _walk(name: str, frames: int, seed: int) -> PoseSequence:
    """A smooth random motion: 2D that moves a little from frame to frame, 3D in front of the camera."""
    rng = np.random.default_rng(seed)
    steps = np.cumsum(rng.normal(scale=2.0, size=(frames, 17, 2)), axis=0)
    keypoints = 500.0 + rng.normal(scale=80.0, size=(1, 17, 2)) + steps
    pose = rng.normal(scale=0.3, size=(frames, 17, 3)) + np.array([0.0, 0.0, 5.0])
    return PoseSequence("h36m", "S9", "Walking", name, 0, "h36m17", keypoints, (1000, 1000),
                        pose_3d=pose.astype(np.float32))


@pytest.fixture(scope="module")
def sequences() -> list[PoseSequence]:
    return [_walk("Walking", 64, 0), _walk("Walking 1", 45, 1), _walk("Short", 3, 2)]


@pytest.fixture(scope="module")
def video_model():
    return load_bundle("h36m_video")[0]


def test_a_video_model_sees_consecutive_frames_whatever_the_stride(sequences, video_model):
    evidence = EvidenceConfig(source="keypoints")
    cut = frames_to_score(video_model, sequences, evidence, CUT, seed_offset=7)
    assert [len(s) for s in cut.sequences] == [7, 5, 0]
    for s, seq in enumerate(sequences[:2]):
        full = attach_context(video_model, build_frames([seq], video_model.skeleton, evidence, seed_offset=7 + s))
        rows = np.nonzero(cut.sequence_index == s)[0]
        assert cut.frame_index[rows].tolist() == list(range(len(rows)))
        for part, whole in zip(cut.context, full.context):
            torch.testing.assert_close(part[rows], whole[3::10])
        torch.testing.assert_close(cut.keypoints_uv[rows], full.keypoints_uv[3::10])
        torch.testing.assert_close(cut.target_xyz[rows], full.target_xyz[3::10])
    # thinning the sequence first (the old behaviour) gives the encoder windows of frames 10 apart
    thinned = attach_context(video_model, build_frames(cut.sequences[:1], video_model.skeleton, evidence, seed_offset=7))
    assert not torch.allclose(thinned.context[1], cut.context[1][: len(thinned)], atol=1e-3)


def test_a_frame_model_scores_the_thinned_sequences(sequences, tiny_bundle):
    model = load_bundle(tiny_bundle)[0]
    evidence = EvidenceConfig(source="keypoints")
    cut = frames_to_score(model, sequences, evidence, CUT, seed_offset=7)
    thinned = build_frames([s.slice(3, None, 10) for s in sequences], model.skeleton, evidence, seed_offset=7)
    assert cut.context is None
    torch.testing.assert_close(cut.keypoints_uv, thinned.keypoints_uv)
    assert cut.sequence_index.tolist() == thinned.sequence_index.tolist()


def test_score_model_reports_the_cut_frames(sequences, video_model):
    reports = score_model(video_model, sequences, EvidenceConfig(source="keypoints"), video_model.config.inference,
                          "h36m", cut=CUT)
    assert reports[video_model.config.inference.mode].to_dict()["frames"] == 12
