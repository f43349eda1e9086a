from pathlib import Path

import numpy as np
import pytest
import torch

from diffpose3d.diffusion.forward import gather_component, q_sample
from diffpose3d.diffusion.sampler import DDIMSampler, deterministic_refine
from diffpose3d.diffusion.schedule import Schedule, make_schedule
from diffpose3d.mixtures.gmm import pick_components
from diffpose3d.models.denoiser import Denoiser
from diffpose3d.models.graph import TrunkSize

DATA = Path(__file__).parent / "data"
TINY_PARENTS = [-1, 0, 1, 0]


@pytest.mark.parametrize("n", [1, 2, 5, 7, 50])
def test_set_timesteps(n: int) -> None:
    sampler = DDIMSampler(make_schedule("cosine", 50), ddim_steps=n)
    ts = sampler.timesteps
    assert ts.shape == (n + 1,) and ts[0] == 50 and ts[-1] == 0
    assert torch.all(ts[1:] < ts[:-1])
    assert len(sampler.pairs) == n
    with pytest.raises(ValueError):
        sampler.set_timesteps(51)


def test_oracle_step_follows_the_forward_trajectory(mixture_factory) -> None:
    """With eta = 0 and a perfect h_0, a DDIM step lands on the same-noise forward sample."""
    schedule = make_schedule("cosine", 50)
    sampler = DDIMSampler(schedule, 5)
    weights, means, _, chol = mixture_factory(4, 3, 2, 5)
    h0 = torch.randn(4, 3, 5, dtype=torch.float64)
    m = pick_components(weights, torch.rand(4, 3, 1, generator=torch.Generator().manual_seed(0), dtype=weights.dtype))
    mu, L = gather_component(means, chol, m)
    eps = (L @ torch.randn(4, 3, 5, 1, dtype=torch.float64)).squeeze(-1)

    def forward(k: int) -> torch.Tensor:
        a = schedule.alpha_bar[k]
        return mu + a.sqrt() * (h0 - mu) + (1 - a).sqrt() * eps

    for k, k_prev in [(50, 40), (30, 10), (10, 0)]:
        prev, pred = sampler.step(h0, k, k_prev, forward(k), mu, L)
        assert torch.allclose(prev, forward(k_prev), atol=1e-10)
        assert pred is h0


def test_stochastic_step_has_the_forward_marginal(mixture_factory) -> None:
    """eta = 1 with an oracle: h_{k_prev} ~ N(mu + s (h0 - mu), (1 - abar) Sigma)."""
    schedule = make_schedule("cosine", 20)
    sampler = DDIMSampler(schedule, 4, eta=1.0)
    n = 20_000
    _, means, cov, chol = mixture_factory(1, 1, 1, 5, seed=5)
    mu, L, Sigma = means[:, :, 0].expand(n, 1, 5), chol[:, :, 0].expand(n, 1, 5, 5), cov[0, 0, 0]
    h0 = torch.randn(1, 1, 5, dtype=torch.float64).expand(n, 1, 5)
    g = torch.Generator().manual_seed(6)
    h_k, _ = q_sample(h0, torch.full((n,), 15), torch.ones(n, 1, 1, dtype=torch.float64),
                      mu[:, :, None], L[:, :, None], schedule, g)
    prev, _ = sampler.step(h0, 15, 5, h_k, mu, L, generator=g)
    a = schedule.alpha_bar[5]
    std = ((1 - a) * Sigma).diagonal().sqrt()
    target = mu[0, 0] + a.sqrt() * (h0[0, 0] - mu[0, 0])
    assert torch.all((prev[:, 0].mean(0) - target).abs() < 5 * std / n**0.5)
    emp = torch.cov(prev[:, 0].T)
    assert torch.allclose(emp / torch.outer(std, std), (1 - a) * Sigma / torch.outer(std, std), atol=0.05)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_oracle_model_recovers_h0_from_any_start(mixture_factory, eta: float) -> None:
    B, J, N = 3, 4, 6
    weights, means, _, chol = mixture_factory(B, J, 3, 5, dtype=torch.float32)
    target = torch.randn(B, J, 5)

    def oracle(h: torch.Tensor, k: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return context  # the context carries the true h_0 of each frame

    sampler = DDIMSampler(make_schedule("cosine", 50), 5, eta=eta)
    out = sampler.sample(oracle, weights, means, chol, target, hypotheses=N, generator=torch.Generator().manual_seed(0),
                         antithetic=False)
    assert out.shape == (B, N, J, 5)
    assert torch.allclose(out, target[:, None].expand(B, N, J, 5), atol=1e-6)


def test_hypotheses_are_frame_major_and_from_their_own_mixture() -> None:
    """Row b * N + n of the batch belongs to frame b: its start comes from frame b's mixture."""
    B, J, N, D = 3, 2, 4, 5
    means = (torch.arange(B, dtype=torch.float32) * 100)[:, None, None, None].expand(B, J, 1, D).contiguous()
    chol = (torch.eye(D) * 1e-3).expand(B, J, 1, D, D).contiguous()
    weights = torch.ones(B, J, 1)
    context = torch.arange(B, dtype=torch.float32)[:, None, None].expand(B, J, 7).contiguous()
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def model(h: torch.Tensor, k: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        assert h.shape == (B * N, J, D) and k.shape == (B * N,) and ctx.shape == (B * N, J, 7)
        seen.append((h.clone(), ctx.clone()))
        return h

    sampler = DDIMSampler(make_schedule("cosine", 10), 2)
    out = sampler.sample(model, weights, means, chol, context, hypotheses=N, antithetic=False)
    frame = torch.arange(B).repeat_interleave(N).float()
    h_start, ctx = seen[0]
    assert torch.allclose(ctx[:, 0, 0], frame)
    assert torch.allclose(h_start[:, 0, 0], frame * 100, atol=0.01)
    assert torch.allclose(out[:, :, 0, 0], (torch.arange(B) * 100.0)[:, None].expand(B, N), atol=0.01)


def test_seeded_and_inference_mode(mixture_factory) -> None:
    weights, means, _, chol = mixture_factory(2, 4, 2, 5, dtype=torch.float32)
    model = Denoiser(TINY_PARENTS, context_dim=3, num_steps=10, size=TrunkSize(width=8, blocks=1, heads=2)).eval()
    context = torch.randn(2, 4, 3)
    sampler = DDIMSampler(make_schedule("cosine", 10), 3, eta=0.5)
    with torch.inference_mode():
        a, b, c = (sampler.sample(model, weights, means, chol, context, hypotheses=3,
                                  generator=torch.Generator().manual_seed(seed), antithetic=False) for seed in (1, 1, 2))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert not a[:, 0].equal(a[:, 1])  # hypotheses differ


def _tiny_run() -> np.ndarray:
    """A fixed tiny seeded model and mixture; the output is stored in data/tiny_sampler.npy."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Denoiser(TINY_PARENTS, context_dim=3, num_steps=10, size=TrunkSize(width=8, blocks=1, heads=2)).eval()
    g = torch.Generator().manual_seed(123)
    B, J, M, D = 2, 4, 2, 5
    weights = torch.softmax(torch.randn(B, J, M, generator=g), -1)
    means = torch.randn(B, J, M, D, generator=g)
    chol = torch.diag_embed(0.1 + torch.rand(B, J, M, D, generator=g))
    context = torch.randn(B, J, 3, generator=g)
    sampler = DDIMSampler(make_schedule("cosine", 10), 3, eta=0.5)
    with torch.inference_mode():
        out = sampler.sample(model, weights, means, chol, context, hypotheses=3, generator=torch.Generator().manual_seed(7),
                             antithetic=False)
    return out.numpy()


def test_sampler_matches_stored_values() -> None:
    """Regression: regenerate with `np.save(DATA / "tiny_sampler.npy", _tiny_run())` only on purpose."""
    expected = np.load(DATA / "tiny_sampler.npy")
    got = _tiny_run()
    assert got.shape == (2, 3, 4, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_deterministic_refine_authors_mode() -> None:
    calls: list[int] = []

    def model(h: torch.Tensor, k: torch.Tensor, ctx: None) -> torch.Tensor:
        calls.append(int(k[0]))
        assert ctx is None and k.shape == (h.shape[0],)
        return 0.5 * h

    init = torch.randn(4, 3, 5)
    out = deterministic_refine(model, init, None, [2, 1])
    assert calls == [2, 1]
    assert torch.allclose(out, init * 0.25)


@pytest.mark.parametrize(("eta", "expected"), [(0.0, 0.890333209), (1.0, 1.175832692)])
def test_one_ddim_step_against_hand_computed_values(eta: float, expected: float) -> None:
    """alpha_bar[2] = 0.25, alpha_bar[1] = 0.64, h_2 = 1.0, mu = 0.2, predicted h_0 = 0.5, z = 1:
    x_0 = 0.3, eps = (0.8 - 0.5 * 0.3) / sqrt(0.75) = 0.750555350;
    eta 0: h_1 = 0.8 * 0.5 + 0.2 * 0.2 + sqrt(1 - 0.64) * eps = 0.890333209;
    eta 1: sigma = sqrt(0.36 / 0.75 * (1 - 0.25 / 0.64)) = 0.540832691,
    h_1 = 0.44 + sqrt(0.36 - sigma^2) * eps + sigma * z = 1.175832692."""
    schedule = Schedule(K=2, alpha_bar=torch.tensor([1.0, 0.64, 0.25], dtype=torch.float64))
    one = torch.ones(1, 1, 1, dtype=torch.float64)
    h_prev, h0 = DDIMSampler(schedule, ddim_steps=2, eta=eta).step(
        0.5 * one, 2, 1, 1.0 * one, 0.2 * one, one[..., None], z=one)
    assert float(h0) == 0.5
    assert float(h_prev) == pytest.approx(expected, abs=1e-9)
