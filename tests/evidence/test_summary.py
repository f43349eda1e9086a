"""The per-joint evidence summary g may condition on, against values worked out by hand."""

import math

import torch

from diffpose3d.evidence.summary import EVIDENCE_CHANNELS, evidence_summary
from diffpose3d.mixtures.gmm import GaussianMixture


def test_summary_of_a_two_mode_joint_and_a_single_component_mixture() -> None:
    # one joint: 0.7 at (0, 0) with std 0.1, 0.3 at (1, 0) with std 0.1 (a left/right confusion)
    weights = torch.tensor([[[0.3, 0.7]]])
    means = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    cov = torch.eye(2).expand(1, 1, 2, 2, 2) * 0.01
    keypoint = torch.zeros(1, 1, 2)
    s = evidence_summary(GaussianMixture(weights, means, cov.clone()), keypoint)
    assert s.shape == (1, 1, EVIDENCE_CHANNELS)
    # mixture mean (0.3, 0); total variance: u 0.01 + 0.3 * 0.7 = 0.22, v 0.01 -> RMS std sqrt(0.115)
    expected = [0.3, 0.0, math.log(math.sqrt(0.115)), 0.7, 1.0, 0.0, 0.3]
    torch.testing.assert_close(s[0, 0], torch.tensor(expected))
    single = GaussianMixture(torch.ones(1, 1, 1), torch.full((1, 1, 1, 2), 0.5), cov[:, :, :1].clone())
    s1 = evidence_summary(single, torch.full((1, 1, 2), 0.5))
    torch.testing.assert_close(s1[0, 0], torch.tensor([0.0, 0.0, math.log(0.1), 1.0, 0.0, 0.0, 0.0]))


def test_a_zero_weight_slot_says_nothing() -> None:
    # the padding slot's mean must not reach g: it could carry anything (e.g. a stale position)
    weights = torch.tensor([[[1.0, 0.0]]])
    means = torch.tensor([[[[0.0, 0.0], [0.5, -0.5]]]])
    cov = torch.eye(2).expand(1, 1, 2, 2, 2) * 0.01
    s = evidence_summary(GaussianMixture(weights, means, cov.clone()), torch.zeros(1, 1, 2))
    torch.testing.assert_close(s[0, 0, 4:], torch.zeros(3))
