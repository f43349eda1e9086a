"""Batched lifting: coherent hypotheses do not depend on how frames are batched."""

from dataclasses import replace

import numpy as np
import torch

from diffpose3d.bundle import load_bundle
from diffpose3d.evidence.mixture2d import point_mixture
from diffpose3d.inference.lifting import lift_batches


def test_coherent_lifting_is_the_same_whatever_the_batch_size(tiny_bundle) -> None:
    model, _ = load_bundle(tiny_bundle)
    kp = torch.randn(7, model.skeleton.num_joints, 2, generator=torch.Generator().manual_seed(0)) * 0.3
    gmm = point_mixture(kp, 0.01)
    # float32: in bf16 (inference.precision) a row's rounding depends on its batch (test_precision.py)
    cfg = replace(model.config.inference, coherent=True, precision="fp32")
    sequences = [np.arange(0, 4), np.arange(4, 7)]
    whole = lift_batches(model, kp, gmm, cfg, sequences=sequences)
    batched = lift_batches(model, kp, gmm, replace(cfg, batch_frames=3), sequences=sequences)
    np.testing.assert_allclose(batched.hypotheses, whole.hypotheses, atol=1e-6)
    assert whole.hypotheses.shape == (7, cfg.hypotheses, model.skeleton.num_joints, 3)
    np.testing.assert_allclose(whole.pose, whole.hypotheses.mean(1), atol=1e-6)
    # root-relative, and the spread is the hypotheses' own
    assert np.allclose(whole.hypotheses[..., 0, :], 0.0)
    assert (whole.spread[:, 1:] > 0).all()
