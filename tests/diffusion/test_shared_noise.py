"""Temporally coherent hypotheses: `DDIMSampler.sample(..., draws=NoiseDraws)` shared by frames."""

import pytest
import torch

from diffpose3d.diffusion.forward import sample_mixture
from diffpose3d.diffusion.sampler import DDIMSampler, NoiseDraws
from diffpose3d.diffusion.schedule import make_schedule
from diffpose3d.mixtures.gmm import pick_components


def toy_model(h: torch.Tensor, k: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """A deterministic per-row 'denoiser' (shrinks towards 0, uses the step)."""
    return h * (0.5 + 0.01 * k.to(h.dtype)[:, None, None])


def same_mixture_for_all_frames(B: int, J: int, M: int, D: int, mixture_factory):
    w, mu, _, L = mixture_factory(1, J, M, D, seed=3)
    return w.expand(B, J, M), mu.expand(B, J, M, D), L.expand(B, J, M, D, D)


def shared(draws: NoiseDraws, rows: list[int]) -> NoiseDraws:
    """Frame b gets the draws of `rows[b]`."""
    return draws[torch.tensor(rows)]


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("antithetic", [False, True])
def test_frames_given_the_same_draws_share_their_hypotheses(eta: float, antithetic: bool, mixture_factory) -> None:
    B, J, M, D, N, S = 7, 4, 3, 5, 6, 4
    w, mu, L = same_mixture_for_all_frames(B, J, M, D, mixture_factory)
    sampler = DDIMSampler(make_schedule("cosine", 20), ddim_steps=S, eta=eta)
    per_window = NoiseDraws.draw(3, N, J, D, generator=torch.Generator().manual_seed(0), steps=S)
    draws = shared(per_window, [0, 0, 0, 1, 1, 1, 2])
    out = sampler.sample(toy_model, w, mu, L, None, hypotheses=N, generator=torch.Generator().manual_seed(1),
                         antithetic=antithetic, draws=draws)
    assert out.shape == (B, N, J, D)
    for group in ([0, 1, 2], [3, 4, 5], [6]):
        for b in group[1:]:
            assert torch.equal(out[b], out[group[0]])  # same mixture + shared draws -> same hypotheses
    assert not torch.allclose(out[0], out[3])  # other draws, other hypotheses
    for n in range(1, N):
        assert not torch.allclose(out[0, n], out[0, 0])  # hypotheses differ


def test_without_draws_identical_frames_get_different_draws(mixture_factory) -> None:
    w, mu, L = same_mixture_for_all_frames(4, 3, 2, 5, mixture_factory)
    sampler = DDIMSampler(make_schedule("cosine", 20), 3)
    out = sampler.sample(toy_model, w, mu, L, None, hypotheses=5, generator=torch.Generator().manual_seed(0), antithetic=False)
    assert not torch.allclose(out[0], out[1])


def test_given_draws_are_used_as_the_sampler_would_draw_them(mixture_factory) -> None:
    """The antithetic sampler draws its uniforms then its normals: handing it the same numbers
    as `NoiseDraws` gives the same hypotheses."""
    w, mu, _, L = mixture_factory(5, 3, 2, 5, seed=1)
    sampler = DDIMSampler(make_schedule("cosine", 20), ddim_steps=3)
    a = sampler.sample(toy_model, w, mu, L, None, hypotheses=4, generator=torch.Generator().manual_seed(2), antithetic=True)
    draws = NoiseDraws.draw(5, 4, 3, 5, generator=torch.Generator().manual_seed(2), like=mu)
    b = sampler.sample(toy_model, w, mu, L, None, hypotheses=4, antithetic=True, draws=draws)
    assert torch.equal(a, b)


def test_shared_quantile_follows_each_frames_own_weights(mixture_factory) -> None:
    """Different mixtures in one group: the shared uniform picks each frame's own inverse-CDF component."""
    w, _, _, _ = mixture_factory(6, 4, 3, 5, seed=4)
    u = torch.rand(6, 4, 1, generator=torch.Generator().manual_seed(5), dtype=w.dtype)
    m = pick_components(w, u)
    cdf = w.cumsum(-1)
    for b in range(6):
        for j in range(4):
            lower = cdf[b, j, m[b, j] - 1] if m[b, j] > 0 else 0.0
            assert lower <= u[b, j, 0] < cdf[b, j, m[b, j]] + 1e-12
    # The forward process's own draw uses the same rule: its first uniforms pick its components.
    _, means, _, chol = mixture_factory(6, 4, 3, 5, seed=4)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    u2 = torch.rand(6, 4, 1, generator=g2, dtype=w.dtype)
    assert torch.equal(sample_mixture(w, means, chol, g1)[1], pick_components(w, u2))


def test_zero_sum_normals_are_still_standard_normal_and_span_every_direction() -> None:
    from diffpose3d.diffusion.sampler import zero_sum_normals

    z = zero_sum_normals(torch.randn(40_000, 5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert torch.allclose(z.sum(1), torch.zeros(40_000, 3, dtype=torch.float64), atol=1e-12)
    assert abs(float(z.var()) - 1.0) < 0.01 and abs(float(z.mean())) < 0.01
    # five zero-sum draws in 3-D still give a full-rank sample covariance
    dev = z[:100] - z[:100].mean(1, keepdim=True)
    cov = dev.transpose(1, 2) @ dev / 4
    assert float(torch.linalg.eigvalsh(cov).min()) > 1e-6
