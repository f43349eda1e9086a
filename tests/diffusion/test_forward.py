import torch

from diffpose3d.diffusion.forward import gather_component, q_sample
from diffpose3d.diffusion.schedule import make_schedule
from diffpose3d.mixtures.gmm import pick_components

N_DRAWS = 20_000


def _repeat(t: torch.Tensor, n: int) -> torch.Tensor:
    return t.expand((n,) + t.shape[1:]).contiguous()


def _draw_components(weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return pick_components(weights, torch.rand(weights.shape[:-1] + (1,), generator=generator, dtype=weights.dtype))


def test_pick_components_frequencies() -> None:
    w = torch.tensor([[[0.5, 0.3, 0.2, 0.0], [0.0, 0.0, 1.0, 0.0]]], dtype=torch.float64)
    m = _draw_components(_repeat(w, N_DRAWS), torch.Generator().manual_seed(1))
    assert m.shape == (N_DRAWS, 2) and m.dtype == torch.long
    freq = torch.stack([(m == i).double().mean(0) for i in range(4)], -1)
    assert torch.allclose(freq, w[0], atol=0.015)
    assert not (m[:, 0] == 3).any() and (m[:, 1] == 2).all()


def test_gather_component_matches_loop(mixture_factory) -> None:
    weights, means, _, chol = mixture_factory(4, 3, 5, 5)
    m = _draw_components(weights, torch.Generator().manual_seed(0))
    mu, L = gather_component(means, chol, m)
    for b in range(4):
        for j in range(3):
            assert torch.equal(mu[b, j], means[b, j, m[b, j]])
            assert torch.equal(L[b, j], chol[b, j, m[b, j]])


def test_k0_is_ground_truth_exactly(mixture_factory) -> None:
    schedule = make_schedule("cosine", 50)
    weights, means, _, chol = mixture_factory(6, 4, 3, 5, dtype=torch.float32)
    h0 = torch.randn(6, 4, 5)
    h_k, m = q_sample(h0, torch.zeros(6, dtype=torch.long), weights, means, chol, schedule)
    assert torch.equal(h_k, h0) and m.shape == (6, 4)


def test_kK_matches_mixture_moments(mixture_factory) -> None:
    """At k = K each joint's samples have the mixture's mean and covariance (up to the floor)."""
    schedule = make_schedule("cosine", 50)
    weights, means, cov, chol = mixture_factory(1, 2, 3, 5)
    h0 = torch.randn(1, 2, 5, dtype=torch.float64)
    k = torch.full((N_DRAWS,), 50)
    h_k, m = q_sample(
        _repeat(h0, N_DRAWS), k, _repeat(weights, N_DRAWS), _repeat(means, N_DRAWS), _repeat(chol, N_DRAWS),
        schedule, torch.Generator().manual_seed(2),
    )
    freq = torch.stack([(m == i).double().mean(0) for i in range(3)], -1)
    assert torch.allclose(freq, weights[0], atol=0.015)
    # Exact moments of the step-K marginal, which is the mixture up to a sqrt(1e-4) trace of h0.
    a = schedule.alpha_bar[-1]
    centres = means[0] + a.sqrt() * (h0[0, :, None] - means[0])  # (J, M, D)
    w = weights[0][..., None]
    mean = (w * centres).sum(1)
    second = (w[..., None] * ((1 - a) * cov[0] + centres[..., :, None] * centres[..., None, :])).sum(1)
    covariance = second - mean[..., :, None] * mean[..., None, :]
    # Sanity: that is within 1% of the fitted mixture itself.
    mix_mean = (w * means[0]).sum(1)
    assert torch.allclose(mean, mix_mean, atol=0.05)
    emp_mean = h_k.mean(0)
    centred = h_k - emp_mean
    emp_cov = torch.einsum("nja,njb->jab", centred, centred) / (N_DRAWS - 1)
    scale = covariance.diagonal(dim1=-2, dim2=-1).sqrt()  # per-coordinate std
    assert torch.all((emp_mean - mean).abs() < 5 * scale / N_DRAWS**0.5)
    assert torch.allclose(emp_cov / (scale[..., :, None] * scale[..., None, :]),
                          covariance / (scale[..., :, None] * scale[..., None, :]), atol=0.04)


def test_mid_step_conditional_moments(mixture_factory) -> None:
    """Given the component, h_k ~ N(mu + s (h0 - mu), (1 - abar) Sigma): checks the noise colouring."""
    schedule = make_schedule("linear", 20)
    weights, means, cov, chol = mixture_factory(1, 1, 2, 5, seed=3)
    h0 = torch.randn(1, 1, 5, dtype=torch.float64)
    k = torch.full((N_DRAWS,), 12)
    h_k, m = q_sample(
        _repeat(h0, N_DRAWS), k, _repeat(weights, N_DRAWS), _repeat(means, N_DRAWS), _repeat(chol, N_DRAWS),
        schedule, torch.Generator().manual_seed(4),
    )
    a = schedule.alpha_bar[12]
    for c in range(2):
        x = h_k[m[:, 0] == c, 0]
        target_mean = means[0, 0, c] + a.sqrt() * (h0[0, 0] - means[0, 0, c])
        target_cov = (1 - a) * cov[0, 0, c]
        std = target_cov.diagonal().sqrt()
        assert torch.all((x.mean(0) - target_mean).abs() < 5 * std / len(x) ** 0.5)
        emp = torch.cov(x.T)
        assert torch.allclose(emp / torch.outer(std, std), target_cov / torch.outer(std, std), atol=0.06)


def test_per_frame_steps_and_seed(mixture_factory) -> None:
    schedule = make_schedule("cosine", 10)
    weights, means, _, chol = mixture_factory(3, 2, 2, 5, dtype=torch.float32)
    h0 = torch.randn(3, 2, 5)
    k = torch.tensor([0, 5, 10])
    a, _ = q_sample(h0, k, weights, means, chol, schedule, torch.Generator().manual_seed(7))
    b, _ = q_sample(h0, k, weights, means, chol, schedule, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.dtype == torch.float32
    assert torch.equal(a[0], h0[0]) and not torch.allclose(a[1], h0[1])
