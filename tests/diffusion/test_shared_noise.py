"""Temporally coherent hypotheses: `DDIMSampler.sample(..., noise_groups=G)`."""

import pytest
import torch

from diffpose3d.diffusion.forward import sample_components
from diffpose3d.diffusion.sampler import DDIMSampler, components_from_uniform
from diffpose3d.diffusion.schedule import make_schedule


def toy_model(h: torch.Tensor, k: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """A deterministic per-row 'denoiser' (shrinks towards 0, uses the step)."""
    return h * (0.5 + 0.01 * k.to(h.dtype)[:, None, None])


def same_mixture_for_all_frames(B: int, J: int, M: int, D: int, mixture_factory):
    w, mu, _, L = mixture_factory(1, J, M, D, seed=3)
    return w.expand(B, J, M), mu.expand(B, J, M, D), L.expand(B, J, M, D, D)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_frames_of_a_group_share_their_draws(eta: float, mixture_factory) -> None:
    B, J, M, D, N, G = 7, 4, 3, 5, 6, 3
    w, mu, L = same_mixture_for_all_frames(B, J, M, D, mixture_factory)
    sampler = DDIMSampler(make_schedule("cosine", 20), num_steps=4, eta=eta)
    out = sampler.sample(toy_model, w, mu, L, None, N, torch.Generator().manual_seed(0), noise_groups=G)
    assert out.shape == (B, N, J, D)
    for group in ([0, 1, 2], [3, 4, 5], [6]):
        for b in group[1:]:
            assert torch.equal(out[b], out[group[0]])  # same mixture + shared draw -> same hypotheses
    assert not torch.allclose(out[0], out[3])  # different windows draw independently
    for n in range(1, N):
        assert not torch.allclose(out[0, n], out[0, 0])  # hypotheses differ


def test_without_groups_identical_frames_get_different_draws(mixture_factory) -> None:
    w, mu, L = same_mixture_for_all_frames(4, 3, 2, 5, mixture_factory)
    out = DDIMSampler(make_schedule("cosine", 20), 3).sample(toy_model, w, mu, L, None, 5,
                                                            torch.Generator().manual_seed(0))
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_groups_of_one_reproduce_the_default_sampler(eta: float, mixture_factory) -> None:
    w, mu, _, L = mixture_factory(5, 3, 2, 5, seed=1)
    sampler = DDIMSampler(make_schedule("cosine", 20), num_steps=3, eta=eta)
    a = sampler.sample(toy_model, w, mu, L, None, 4, torch.Generator().manual_seed(2))
    b = sampler.sample(toy_model, w, mu, L, None, 4, torch.Generator().manual_seed(2), noise_groups=1)
    assert torch.equal(a, b)


def test_shared_quantile_follows_each_frames_own_weights(mixture_factory) -> None:
    """Different mixtures in one group: the shared uniform picks each frame's own inverse-CDF component."""
    w, _, _, _ = mixture_factory(6, 4, 3, 5, seed=4)
    u = torch.rand(6, 4, 1, generator=torch.Generator().manual_seed(5), dtype=w.dtype)
    m = components_from_uniform(w, u)
    cdf = w.cumsum(-1)
    for b in range(6):
        for j in range(4):
            lower = cdf[b, j, m[b, j] - 1] if m[b, j] > 0 else 0.0
            assert lower <= u[b, j, 0] < cdf[b, j, m[b, j]] + 1e-12
    # Same rule as forward.sample_components given the same uniforms.
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    u2 = torch.rand(6, 4, 1, generator=g2, dtype=w.dtype)
    assert torch.equal(sample_components(w, g1), components_from_uniform(w, u2))
