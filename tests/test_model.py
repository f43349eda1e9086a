"""The model's parametrisation: with g = 0 the sampler is exact for a Gaussian H_K, so the N
hypotheses scatter around the lifter exactly as H_K says (calibrated by construction)."""

import pytest
import torch

from diffpose3d.config import InferenceConfig, load_config
from diffpose3d.diffusion.hk import excess_2d_std_in_metres
from diffpose3d.errors import ConfigError
from diffpose3d.evidence.mixture2d import point_mixture
from diffpose3d.evidence.summary import evidence_summary
from diffpose3d.mixtures.gmm import GaussianMixture
from diffpose3d.model import DiffPoseModel


def _model(steps=50):
    torch.manual_seed(0)
    cfg = load_config(None, ["model.denoiser.width=16", "model.denoiser.blocks=1", "model.encoder.width=16",
                             "model.encoder.blocks=1", f"model.diffusion.num_steps={steps}"])
    model = DiffPoseModel(cfg).eval()
    model.residual_std.fill_(0.05)
    return model


def _seeded_sample(model, kp, gmm, hypotheses: int, steps: int, seed: int, antithetic: bool = False):
    inference = InferenceConfig(hypotheses=hypotheses, steps=steps, antithetic=antithetic)
    return model.sample(kp, gmm, inference, generator=torch.Generator().manual_seed(seed))


def test_untrained_g_maps_hk_samples_to_hypotheses_with_the_hk_spread():
    model = _model()
    kp = torch.rand(2, 15, 2) * 0.8 - 0.4
    gmm = point_mixture(kp, 0.01)
    states, lifter = _seeded_sample(model, kp, gmm, hypotheses=400, steps=50, seed=0)
    xyz = states[..., 2:]
    assert torch.allclose(xyz.mean(1), lifter, atol=0.01)  # centred on the lifter
    fine = float(xyz[:, :, 1:].std(1).mean())  # joints other than the root
    assert 0.045 < fine < 0.055
    # 5 coarse DDIM steps contract the spread (by about prod cos(dtheta) ~ 0.78 here); the
    # model's spread_scale, fitted on validation data after training, undoes such contraction.
    states, _ = _seeded_sample(model, kp, gmm, hypotheses=400, steps=5, seed=0)
    coarse = float(states[..., 2:][:, :, 1:].std(1).mean())
    assert 0.7 < coarse / fine < 0.85
    model.spread_scale.fill_(fine / coarse)
    states, _ = _seeded_sample(model, kp, gmm, hypotheses=400, steps=5, seed=0)
    assert abs(float(states[..., 2:][:, :, 1:].std(1).mean()) - fine) < 0.002


def test_hypotheses_differ_and_the_root_is_not_special_in_the_state():
    model = _model()
    kp = torch.rand(1, 15, 2) * 0.8 - 0.4
    states, _ = _seeded_sample(model, kp, point_mixture(kp, 0.01), hypotheses=5, steps=5, seed=1)
    assert float((states[0, 0] - states[0, 1]).abs().max()) > 1e-3


def test_broad_2d_evidence_widens_the_3d_part_of_hk():
    kp = torch.rand(3, 15, 2) * 0.8 - 0.4
    gmm = point_mixture(kp, 0.01)
    cov = gmm.covariances.clone()
    cov[:, 10] *= 400  # joint 10: 20x broader 2D evidence (occluded / out of frame)
    broad = GaussianMixture(gmm.weights, gmm.means, cov)
    xyz = torch.randn(3, 15, 3) * 0.3
    extra = excess_2d_std_in_metres(broad, xyz)
    assert torch.all(extra[:, 10] > 0.05) and torch.allclose(extra[:, :10], torch.zeros(3, 10))
    model = _model()
    hk = model.initial_distribution(broad, xyz)
    var = hk.covariance().diagonal(dim1=-2, dim2=-1)[..., 2:]  # (B, J, 3)
    assert torch.all(var[:, 10] > 2 * var[:, 9])


def test_antithetic_pairs_remove_the_monte_carlo_blur_of_the_mean():
    model = _model()
    kp = torch.rand(3, 15, 2) * 0.8 - 0.4
    gmm = point_mixture(kp, 0.01)
    gen = torch.Generator().manual_seed(2)
    states, lifter = model.sample(kp, gmm, InferenceConfig(hypotheses=4, steps=5, antithetic=True), generator=gen)
    xyz = states[..., 2:]
    # with g = 0 the map from H_K noise to hypotheses is linear: zero-sum noise cancels exactly
    assert torch.allclose(xyz.mean(1), lifter, atol=1e-5)
    assert float((xyz[:, 0] - xyz[:, 1]).abs().max()) > 1e-3
    odd, _ = _seeded_sample(model, kp, gmm, hypotheses=5, steps=5, seed=2, antithetic=True)
    assert torch.allclose(odd[..., 2:].mean(1), lifter, atol=1e-5)
    dev = odd[..., 2:] - odd[..., 2:].mean(1, keepdim=True)  # (B, N, J, 3)
    cov = torch.einsum("bnjc,bnjd->bjcd", dev, dev) / 4
    assert float(torch.linalg.eigvalsh(cov[:, 1:].double()).min()) > 0  # N = 5: a full-rank covariance
    plain, _ = _seeded_sample(model, kp, gmm, hypotheses=4, steps=5, seed=2)
    assert float((plain[..., 2:].mean(1) - lifter).abs().max()) > 1e-3


def test_g_is_conditioned_on_the_evidence_summary_with_the_anchor_last():
    cfg = load_config(None, ["model.denoiser.width=16", "model.denoiser.blocks=1", "model.encoder.width=16",
                             "model.encoder.blocks=1", "model.denoiser.evidence_features=true"])
    model = DiffPoseModel(cfg).eval()
    kp = torch.rand(2, 15, 2) - 0.5
    gmm = point_mixture(kp, 0.01)
    xyz, feats = model.context(kp)
    cond = model.conditioning(kp, xyz, feats, gmm)
    assert cond.shape == (2, 15, model.conditioning_dim) == (2, 15, 16 + 7 + 5)
    assert model.denoiser.context_dim == model.conditioning_dim
    torch.testing.assert_close(cond[..., -5:], torch.cat([kp, xyz], dim=-1))  # the anchor g's skip uses
    torch.testing.assert_close(cond[..., 16:23], evidence_summary(gmm, kp))
    # the authors mode's g sees the anchor only
    states, _ = model.sample(kp, gmm, InferenceConfig(mode="authors"))
    assert states.shape == (2, 1, 15, 5) and torch.isfinite(states).all()


def test_motion_channels_need_a_video_context():
    with pytest.raises(ConfigError, match="motion_radius needs a video context"):
        DiffPoseModel(load_config(None, ["model.denoiser.motion_radius=3"]))


def test_a_calibrated_model_that_keeps_bones_widens_directions_not_bone_lengths():
    from dataclasses import replace

    model = _model()
    kp = torch.rand(3, 15, 2) * 0.8 - 0.4
    gmm = point_mixture(kp, 0.01)
    cfg = InferenceConfig(hypotheses=40, steps=5)
    plain, _ = model.sample(kp, gmm, cfg, generator=torch.Generator().manual_seed(2))
    model.conformal_scale.fill_(3.0)
    linear, _ = model.sample(kp, gmm, cfg, generator=torch.Generator().manual_seed(2))
    kept, _ = model.sample(kp, gmm, replace(cfg, keep_bones=True), generator=torch.Generator().manual_seed(2))
    parents = list(model.skeleton.parents)

    def bones(states):
        xyz = states[..., 2:]
        return (xyz[..., 1:, :] - xyz[..., parents[1:], :]).norm(dim=-1)

    torch.testing.assert_close(kept[..., 2:].mean(1), linear[..., 2:].mean(1))  # the same pose
    stretched = (bones(linear) - bones(plain)).abs().mean()
    assert (bones(kept) - bones(plain)).abs().mean() < 0.5 * stretched
    assert float(kept[..., 2:].std(1).mean()) > 1.5 * float(plain[..., 2:].std(1).mean())
