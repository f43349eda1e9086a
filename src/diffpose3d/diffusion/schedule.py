"""Noise schedules: the cumulative signal level `alpha_bar` of the diffusion.

Every schedule is a float64 tensor of shape `(K + 1,)` with `alpha_bar[0] = 1` (step 0 is the clean
pose), strictly decreasing, and `alpha_bar[K]` equal to a small positive floor. The floor keeps the
DDIM update finite; with it the step-K state is H_K up to a `sqrt(floor)` trace of `h_0`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

ALPHA_BAR_FLOOR = 1e-4


def _finish(alpha_bar: torch.Tensor, floor: float) -> torch.Tensor:
    """Map `[alpha_bar[K], 1]` affinely onto `[floor, 1]`: exact endpoints, order kept.

    An affine map (rather than a clamp) keeps the schedule strictly decreasing for any K.
    """
    assert 0.0 < floor < 1.0, f"floor must lie in (0, 1), got {floor}"
    a = alpha_bar.to(torch.float64)
    a = (a - a[-1]) / (a[0] - a[-1])
    a = floor + (1.0 - floor) * a
    assert bool((a[1:] < a[:-1]).all()), "schedule is not strictly decreasing"
    return a


def cosine_alpha_bar(K: int, s: float = 0.008, floor: float = ALPHA_BAR_FLOOR) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021): `alpha_bar(t) = cos^2((t/K + s) / (1 + s) * pi/2)`."""
    assert K >= 1, f"need at least one diffusion step, got K={K}"
    t = torch.arange(K + 1, dtype=torch.float64) / K
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return _finish(f / f[0], floor)


def linear_alpha_bar(
    K: int, beta_start: float = 1e-4, beta_end: float = 0.02, floor: float = ALPHA_BAR_FLOOR
) -> torch.Tensor:
    """DDPM linear-beta schedule, `alpha_bar[k] = prod_{i<=k} (1 - beta_i)`.

    `beta_start`/`beta_end` are given for 1000 steps (DDPM's values) and scaled by `1000 / K`, the
    usual convention, so that short schedules still reach the prior H_K; betas are capped at 0.999.
    """
    assert K >= 1, f"need at least one diffusion step, got K={K}"
    lo, hi = beta_start * 1000.0 / K, beta_end * 1000.0 / K
    assert 0.0 < beta_start <= beta_end, f"need 0 < beta_start <= beta_end, got {beta_start}, {beta_end}"
    betas = torch.linspace(lo, hi, K, dtype=torch.float64).clamp(max=0.999)
    alpha_bar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1.0 - betas, 0)])
    return _finish(alpha_bar, floor)


@dataclass(frozen=True)
class Schedule:
    """`K` diffusion steps and their `alpha_bar (K + 1,)` (float64, on the CPU)."""

    K: int
    alpha_bar: torch.Tensor

    def __post_init__(self) -> None:
        assert self.alpha_bar.shape == (self.K + 1,), (
            f"alpha_bar must have K + 1 = {self.K + 1} entries, got shape {tuple(self.alpha_bar.shape)}"
        )
        assert float(self.alpha_bar[0]) == 1.0, "alpha_bar[0] must be 1 (step 0 is the clean pose)"

    def at(self, k: int | torch.Tensor, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """`alpha_bar[k]` on `like`'s device, in `dtype` (default `like`'s), shaped to broadcast
        against `like`: `k` an int (a scalar) or a `(B,)` tensor (`(B, 1, ..., 1)` for `like (B, ...)`).

        The one lookup of the schedule: the forward process, the DDIM step and the anchored
        prediction all read `alpha_bar` through it.
        """
        k_t = torch.as_tensor(k, dtype=torch.long, device=like.device)
        a = self.alpha_bar.to(like.device)[k_t]
        if a.dim():
            a = a.reshape(a.shape + (1,) * (like.dim() - a.dim()))
        return a.to(like.dtype if dtype is None else dtype)

    def signal_noise(self, k: int | torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(sqrt(alpha_bar[k]), sqrt(1 - alpha_bar[k]))` in `like`'s dtype and device, shaped as `at`
        (the roots are taken in float64)."""
        a = self.at(k, like, dtype=torch.float64)
        return a.sqrt().to(like.dtype), (1.0 - a).sqrt().to(like.dtype)


SCHEDULES = {"cosine": cosine_alpha_bar, "linear": linear_alpha_bar}


def make_schedule(name: str = "cosine", K: int = 50, **kwargs: float) -> Schedule:
    """Build a named schedule (`cosine` or `linear`) with `K` steps."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    return Schedule(K=K, alpha_bar=SCHEDULES[name](K, **kwargs))
