"""Mirroring: flipping twice is the identity, and a flip swaps the sides."""

import numpy as np
import torch

from diffpose3d.data.mirror import flip_gmm, flip_keypoints, flip_pose
from diffpose3d.mixtures.gmm import GaussianMixture
from diffpose3d.skeleton import get_skeleton

PERM = get_skeleton("humaneva15").flip_permutation()


def test_flip_twice_is_identity_and_flip_swaps_sides() -> None:
    sk = get_skeleton("humaneva15")
    uv = torch.randn(4, 7, 15, 2)
    xyz = np.random.default_rng(0).normal(size=(3, 15, 3))
    assert torch.equal(flip_keypoints(flip_keypoints(uv, PERM), PERM), uv)
    np.testing.assert_array_equal(flip_pose(flip_pose(xyz, PERM), PERM), xyz)
    f = flip_pose(xyz, PERM)
    left, right = sk.index("l_wrist"), sk.index("r_wrist")
    assert f[0, left, 0] == -xyz[0, right, 0] and f[0, left, 1:].tolist() == xyz[0, right, 1:].tolist()
    conf = torch.rand(2, 15, 3)  # a confidence channel rides along unchanged, permuted
    assert torch.equal(flip_keypoints(conf, PERM)[..., 2], conf[..., PERM, 2])


def test_flip_gmm_mirrors_means_and_covariances_like_the_keypoints() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 15, 2, 2, 2, generator=g)
    gmm = GaussianMixture(torch.rand(3, 15, 2, generator=g), torch.randn(3, 15, 2, 2, generator=g),
                          a @ a.transpose(-1, -2) + 0.1 * torch.eye(2))
    flipped = flip_gmm(gmm, torch.as_tensor(PERM))
    torch.testing.assert_close(flipped.means, flip_keypoints(gmm.means.transpose(1, 2), PERM).transpose(1, 2))
    torch.testing.assert_close(flipped.mean(), flip_keypoints(gmm.mean(), PERM))
    again = flip_gmm(flipped, torch.as_tensor(PERM))
    torch.testing.assert_close(again.covariances, gmm.covariances)
    # the u-v covariance changes sign, the variances move with their joint
    torch.testing.assert_close(flipped.covariances[..., 0, 1], -gmm.covariances[:, PERM][..., 0, 1])
    torch.testing.assert_close(flipped.covariances[..., 1, 1], gmm.covariances[:, PERM][..., 1, 1])
