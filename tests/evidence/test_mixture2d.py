import numpy as np
import torch

from diffpose3d.cameras import normalize_screen_coordinates
from diffpose3d.data.gmm_files import decode_gmm
from diffpose3d.evidence.mixture2d import broad_mixture, map_gmm, mixture_to_pixels, mixture_to_uv, top_mode
from diffpose3d.mixtures.gmm import GaussianMixture
from diffpose3d.skeleton import get_skeleton, map_keypoints


def _random_mixture(t, j, m, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(t, j, m, generator=g) + 0.1
    w = w / w.sum(-1, keepdim=True)
    mu = torch.randn(t, j, m, 2, generator=g) * 0.3
    a = torch.randn(t, j, m, 2, 2, generator=g) * 0.05
    cov = a @ a.transpose(-1, -2) + 1e-3 * torch.eye(2)
    return GaussianMixture(w, mu, cov)


def test_pixel_to_normalised_matches_the_keypoint_normalisation():
    mu = torch.tensor([[[[320.0, 240.0]], [[0.0, 0.0]]]])  # (1, 2, 1, 2)
    g = GaussianMixture(torch.ones(1, 2, 1), mu, torch.eye(2).expand(1, 2, 1, 2, 2) * 16.0)
    n = mixture_to_uv(g, 640, 480)
    ref = normalize_screen_coordinates(mu.numpy(), 640, 480)
    assert np.allclose(n.means.numpy(), ref)
    assert torch.allclose(n.covariances[0, 0, 0], torch.eye(2) * 16.0 * (2 / 640) ** 2)
    back = mixture_to_pixels(n, 640, 480)
    torch.testing.assert_close(back.means, mu)
    torch.testing.assert_close(back.covariances, g.covariances)


def test_map_gmm_means_follow_map_keypoints_for_single_components():
    g = _random_mixture(3, 17, 1)
    mapped = map_gmm(g, "coco17", "humaneva15", 0.75)
    ref = map_keypoints(g.means[:, :, 0].numpy(), "coco17", "humaneva15", confidence=False)
    assert np.allclose(mapped.means[:, :, 0].numpy(), ref, atol=1e-6)


def test_derived_joint_is_the_distribution_of_the_mean_of_its_sources():
    g = _random_mixture(1, 17, 2, seed=3)
    mapped = map_gmm(g, "coco17", "humaneva15", 0.75, max_components=4)
    pelvis = get_skeleton("humaneva15").index("pelvis")
    hips = [get_skeleton("coco17").index(n) for n in ("l_hip", "r_hip")]
    # Monte Carlo: average of independent draws from the two hip mixtures
    gen = torch.Generator().manual_seed(0)
    a = GaussianMixture(g.weights[0, hips[0]], g.means[0, hips[0]], g.covariances[0, hips[0]]).sample(200_000, gen)
    b = GaussianMixture(g.weights[0, hips[1]], g.means[0, hips[1]], g.covariances[0, hips[1]]).sample(200_000, gen)
    mc = (a + b) / 2
    joint = GaussianMixture(mapped.weights[0, pelvis], mapped.means[0, pelvis], mapped.covariances[0, pelvis])
    assert torch.allclose(joint.mean(), mc.mean(0), atol=5e-3)
    assert torch.allclose(joint.covariance(), torch.cov(mc.T), atol=2e-3)
    assert abs(float(joint.weights.sum()) - 1) < 1e-6


def test_missing_joints_become_broad_and_top_mode_picks_the_heaviest():
    g = _random_mixture(2, 16, 3)
    mapped = map_gmm(g, "mpii16", "h36m17", 1.0)
    neck = get_skeleton("h36m17").index("neck_nose")
    torch.testing.assert_close(mapped.covariances[:, neck, 0], broad_mixture((2,), 1.0).covariances[:, 0])
    b = broad_mixture((2, 3), 0.75, 2)
    assert torch.allclose(b.weights.sum(-1), torch.ones(2, 3))
    w = torch.tensor([[[0.2, 0.7, 0.1]]])
    mu = torch.arange(6.0).reshape(1, 1, 3, 2)
    assert torch.equal(top_mode(GaussianMixture(w, mu, torch.eye(2).expand(1, 1, 3, 2, 2))), mu[:, :, 1])


def test_authors_layout_to_mixture():
    arr = np.zeros((2, 15, 3, 5), np.float32)
    arr[..., 0] = [1.0, 0.0, 0.0]
    arr[..., 1] = 100.0
    arr[..., 2] = 50.0
    arr[..., 3] = 4.0
    arr[..., 4] = 9.0
    g = decode_gmm(arr)
    assert torch.allclose(g.weights[0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(g.covariances[0, 0, 0], torch.diag(torch.tensor([4.0, 9.0])))


def test_visibility_blends_in_broader_copies_of_the_heatmap_modes():
    from diffpose3d.evidence.detection import with_visibility
    from diffpose3d.evidence.mixture2d import stack_mixtures

    g = _random_mixture(1, 3, 2, seed=5)
    vis = np.array([[1.0, 0.5, 0.0]], np.float32)
    out = with_visibility(g, vis, scale=3.0)
    assert out.weights.shape == (1, 3, 4)
    assert torch.allclose(out.weights.sum(-1), torch.ones(1, 3))
    assert torch.allclose(out.mean(), g.mean(), atol=1e-6)  # same centre
    spread = out.covariance().diagonal(dim1=-2, dim2=-1).sum(-1)[0]
    assert spread[0] < spread[1] < spread[2]  # less visible -> broader
    stacked = stack_mixtures([g, out])
    assert stacked.weights.shape == (2, 3, 4) and torch.allclose(stacked.weights.sum(-1), torch.ones(2, 3))


def test_a_frame_without_a_person_gets_the_same_evidence_as_a_joint_of_confidence_zero():
    # One "no evidence" mixture: the detector finding nobody, a joint of confidence 0 and a joint
    # the input layout lacks all get the moments of a uniform position over the image.
    from diffpose3d.evidence.detection import detection_evidence
    from diffpose3d.evidence.mixture2d import keypoints_to_gmm

    size = (640, 480)
    nobody, conf = detection_evidence(None, size, 33)
    assert (conf == 0).all()
    zero = keypoints_to_gmm(np.full((1, 33, 2), 100.0, np.float32), np.zeros((1, 33), np.float32), size)
    torch.testing.assert_close(nobody.covariances, zero.covariances)
    torch.testing.assert_close(nobody.means, zero.means)
    lacking = map_gmm(_random_mixture(1, 16, 1), "mpii16", "h36m17", size[1] / size[0])
    neck = get_skeleton("h36m17").index("neck_nose")
    torch.testing.assert_close(lacking.covariances[0, neck, 0], zero.covariances[0, 0, 0])


def test_point_mixture_per_keypoint_std_and_padding() -> None:
    from diffpose3d.evidence.mixture2d import point_mixture

    kp = torch.tensor([[[0.1, -0.2], [0.5, 0.3]]])
    std = torch.tensor([[0.01, 0.2]])
    g = point_mixture(kp, std, num_components=3)
    assert g.weights.tolist() == [[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]]
    assert torch.equal(g.mean(), kp)
    np.testing.assert_allclose(g.spread().numpy(), std.numpy(), rtol=1e-6)
    assert torch.equal(g.covariances[..., 0, 1], torch.zeros(1, 2, 3))
