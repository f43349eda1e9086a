"""Reverse process: DDIM in mixture-shifted coordinates, with an h_0-predicting network.

Inside one mixture component the forward process is plain diffusion of `x = h - mu_m` with noise
`eps ~ N(0, Sigma_m)`: `x_k = sqrt(abar_k) x_0 + sqrt(1 - abar_k) eps`. So DDIM (Song et al. 2021)
applies unchanged to `x`, with the noise coloured by the component's Cholesky factor. The component
`m` of each hypothesis is fixed when it is drawn from H_K and kept for all steps.

The network is any callable `model(h_k (B, J, D), k (B,) long, context (B, J, C) | None) -> h_0`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from diffpose3d.diffusion.forward import correlated_noise, gather_component, sample_mixture
from diffpose3d.diffusion.schedule import Schedule
from diffpose3d.mixtures.gmm import pick_components

Model = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


class DDIMSampler:
    """DDIM sampler over a `Schedule`; `eta = 0` is deterministic given the H_K draw, `eta = 1` is
    DDPM-like. `ddim_steps` reverse steps are evenly spaced over `0..K` (K is the schedule's length,
    the config's `diffusion.num_steps`)."""

    def __init__(self, schedule: Schedule, ddim_steps: int = 5, eta: float = 0.0) -> None:
        if not eta >= 0.0:
            raise ValueError(f"eta must be non-negative, got {eta}")
        self.schedule = schedule
        self.eta = float(eta)
        self.timesteps = torch.empty(0, dtype=torch.long)
        self.set_timesteps(ddim_steps)

    def set_timesteps(self, ddim_steps: int) -> torch.Tensor:
        """Use `ddim_steps` reverse steps: `ddim_steps + 1` evenly spaced, strictly descending steps
        from K to 0."""
        K = self.schedule.K
        if not 1 <= ddim_steps <= K:
            raise ValueError(f"the number of reverse steps must be in 1..K={K}, got {ddim_steps}")
        self.timesteps = torch.linspace(K, 0, ddim_steps + 1, dtype=torch.float64).round().long()
        return self.timesteps

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """`(k, k_prev)` for each reverse step, in order of application."""
        ts = self.timesteps.tolist()
        return list(itertools.pairwise(ts))

    def step(
        self,
        pred_h0: torch.Tensor,
        k: int | torch.Tensor,
        k_prev: int | torch.Tensor,
        sample: torch.Tensor,
        mu: torch.Tensor,
        chol: torch.Tensor | None = None,
        *,
        eta: float | None = None,
        generator: torch.Generator | None = None,
        z: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One DDIM update from step `k` to `k_prev < k`, all in `(B, J, D)`.

        `sample` is `h_k`, `mu`/`chol` the component of each joint. Returns `(h_{k_prev}, pred_h0)`.
        `chol` may be None when no noise is injected (`eta = 0`). `z` (standard normal, `(B, J, D)`)
        replaces the injected noise's own draw, so callers can share it between rows.
        """
        if isinstance(k, int) and isinstance(k_prev, int):
            assert 0 <= k_prev < k <= self.schedule.K, f"need 0 <= k_prev < k <= K, got k={k}, k_prev={k_prev}"
        eta = self.eta if eta is None else float(eta)
        a_k = self.schedule.at(k, sample)
        a_prev = self.schedule.at(k_prev, sample)
        x0 = pred_h0 - mu
        # Implied (coloured) noise of the current sample; alpha_bar[k] < 1 for every k >= 1.
        eps = (sample - mu - a_k.sqrt() * x0) / (1.0 - a_k).sqrt()
        sigma = eta * ((1.0 - a_prev) / (1.0 - a_k) * (1.0 - a_k / a_prev)).clamp(min=0.0).sqrt()
        # h_prev = mu + sqrt(a_prev) x0 + c eps + sigma L z, written so k_prev = 0 gives pred_h0 exactly.
        s_prev = a_prev.sqrt()
        h_prev = s_prev * pred_h0 + (1.0 - s_prev) * mu + (1.0 - a_prev - sigma**2).clamp(min=0.0).sqrt() * eps
        if eta > 0.0:
            assert chol is not None, "eta > 0 injects noise N(0, Sigma_m): pass the Cholesky factors"
            noise = correlated_noise(chol, generator) if z is None else (chol @ z.unsqueeze(-1)).squeeze(-1)
            h_prev = h_prev + sigma * noise
        return h_prev, pred_h0

    @torch.no_grad()
    def sample(
        self,
        model: Model,
        weights: torch.Tensor,
        means: torch.Tensor,
        chol: torch.Tensor,
        context: torch.Tensor | None,
        *,
        hypotheses: int,
        antithetic: bool,
        generator: torch.Generator | None = None,
        draws: NoiseDraws | None = None,
    ) -> torch.Tensor:
        """Draw `N = hypotheses` poses per frame from H_K and denoise them.

        Mixtures are `(B, J, M, ...)`, `context (B, J, C)`. All `B * N` hypotheses run as one batch
        (frame-major: row `b * N + n`). Returns `(B, N, J, D)`. Runs without autograd; a seeded
        `generator` on the input's device makes the result reproducible.

        `draws` supplies the random numbers instead of `generator` (`NoiseDraws`): rows given the
        same draws (e.g. every frame of a sequence) get hypotheses that are coherent over time. Each
        frame still colours the shared draw with its own mixture, so hypothesis n of a clip is one
        plausible motion instead of per-frame jitter.

        `antithetic` centres the N hypotheses' standard-normal noise across the N (zero sum) and
        rescales it by sqrt(N / (N - 1)) (`zero_sum_normals`): each hypothesis is still exactly an
        N(0, I) draw coloured by its component, and the N still span every direction (a full-rank
        covariance per joint for N >= 4 in 3-D), but their mean carries no Monte Carlo noise where g
        is linear and the components' 3-D factors agree, so the point estimate is not blurred by the
        sampling. (Mirrored pairs with an unpaired fifth left a fifth of one sample's deviation in the
        mean of N = 5; a zero-noise fifth left two directions: a singular covariance.)
        """
        if hypotheses < 1:
            raise ValueError(f"the number of hypotheses must be >= 1, got {hypotheses}")
        B, J, M, D = means.shape
        assert weights.shape == (B, J, M), f"weights must be {(B, J, M)}, got {tuple(weights.shape)}"
        assert chol.shape == (B, J, M, D, D), f"chol must be {(B, J, M, D, D)}, got {tuple(chol.shape)}"
        N = hypotheses

        def rep(t: torch.Tensor) -> torch.Tensor:
            return t.unsqueeze(1).expand((B, N) + t.shape[1:]).reshape((B * N,) + t.shape[1:])

        ctx = rep(context) if context is not None else None
        if draws is None and not antithetic:
            # The H_K draw: one component per joint and hypothesis, kept for the whole trajectory.
            h, _, mu, L = sample_mixture(rep(weights), rep(means), rep(chol), generator)
        else:
            if draws is None:
                draws = NoiseDraws.draw(B, N, J, D, generator=generator, like=means)
            assert draws.uniform.shape == (B, N, J, 1) and draws.normal.shape == (B, N, J, D), (
                f"draws must be {(B, N, J, 1)} and {(B, N, J, D)}, got "
                f"{tuple(draws.uniform.shape)}, {tuple(draws.normal.shape)}"
            )
            u, z0 = draws.uniform.to(means), draws.normal.to(means)
            if antithetic:
                z0 = zero_sum_normals(z0)
            m = pick_components(rep(weights), u.reshape(B * N, J, 1))
            mu, L = gather_component(rep(means), rep(chol), m)
            h = mu + (L @ z0.reshape(B * N, J, D).unsqueeze(-1)).squeeze(-1)
        for i, (k, k_prev) in enumerate(self.pairs):
            k_batch = torch.full((B * N,), k, dtype=torch.long, device=h.device)
            pred_h0 = model(h, k_batch, ctx)
            z = None
            if draws is not None and draws.steps is not None and self.eta > 0.0:
                z = draws.steps[:, i].to(means).reshape(B * N, J, D)
            h, _ = self.step(pred_h0, k, k_prev, h, mu, L, generator=generator, z=z)
        return h.reshape(B, N, J, D)


@dataclass
class NoiseDraws:
    """The random numbers of `DDIMSampler.sample` for B frames, given by the caller.

    `uniform (B, N, J, 1)` picks each joint's H_K component (inverse CDF) and `normal (B, N, J, D)`
    is the standard-normal noise that component colours, for N hypotheses (made zero-sum by the
    sampler when antithetic); `steps (B, S, N, J, D)`, optional, is the noise injected at each of
    the S reverse steps when `eta > 0` (drawn per frame when absent).
    """

    uniform: torch.Tensor
    normal: torch.Tensor
    steps: torch.Tensor | None = None

    @staticmethod
    def draw(
        B: int, N: int, J: int, D: int, *, generator: torch.Generator | None = None,
        like: torch.Tensor | None = None, steps: int = 0,
    ) -> NoiseDraws:
        kw = {"generator": generator, "device": None if like is None else like.device,
              "dtype": None if like is None else like.dtype}
        uniform = torch.rand((B, N, J, 1), **kw)
        normal = torch.randn((B, N, J, D), **kw)
        return NoiseDraws(uniform, normal, torch.randn((B, steps, N, J, D), **kw) if steps else None)

    def __getitem__(self, index) -> NoiseDraws:
        """The draws of some frames (any index of the B axis)."""
        return NoiseDraws(self.uniform[index], self.normal[index], None if self.steps is None else self.steps[index])


def zero_sum_normals(z: torch.Tensor) -> torch.Tensor:
    """`(B, N, ...)` i.i.d. standard normals -> N zero-sum ones that are each still N(0, 1):
    `(z - mean_N z) * sqrt(N / (N - 1))` (the mean removes 1/N of each one's variance)."""
    n = z.shape[1]
    if n < 2:
        return z
    return (z - z.mean(dim=1, keepdim=True)) * math.sqrt(n / (n - 1))


@torch.no_grad()
def deterministic_refine(
    model: Model,
    init_h: torch.Tensor,
    context: torch.Tensor | None,
    ks: Sequence[int],
) -> torch.Tensor:
    """The "authors" mode: what the released DiffPose code does at test time, for comparison.

    Starts from a pre-trained lifter's output `init_h (B, J, D)` (no H_K draw, no noise, one
    hypothesis) and applies `h <- model(h, k, context)` for each step in `ks` (usually 1-2 small
    steps). With their tiny betas the DDIM eta=0 update reduces to this. The released code passes no
    context to g; pass `context=None` (if the model accepts it) to mimic that.
    """
    assert len(ks) >= 1, "give at least one step"
    h = init_h
    for k in ks:
        k_batch = torch.full(h.shape[:1], int(k), dtype=torch.long, device=h.device)
        h = model(h, k_batch, context)
    return h
