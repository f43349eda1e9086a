"""Batched EM: many small, independent Gaussian-mixture fits at once, in PyTorch.

`fit_gmm(x (B, N, D), weights (B, N))` fits one M-component mixture per row `b` to the (optionally
weighted, e.g. heatmap pixels weighted by their value) samples `x[b]`. Every fit is independent:
a fit's result depends only on its own data and its own random draws, never on how long its
neighbours in the batch take (converged fits leave the working set and are frozen).

Numerics (safe in float32):
- each fit is standardised first (weighted mean 0, unit variance per feature), EM runs in those
  units and the result is mapped back, so the fit is equivariant to shifts and scales of the data;
- `reg_covar` is **relative**: `reg_covar * var_d` (the fit's weighted data variance of feature d)
  is added to the diagonal of every covariance, the scale-free analogue of scikit-learn's absolute
  `reg_covar`; `reg_covar_abs` (data units squared, per fit and/or feature) is added on top, e.g. the
  quantisation variance of a heatmap pixel;
- a component that loses all its mass is kept with a tiny weight (~1e-6) as a broad component (the
  fit's data mean and covariance), so nothing is ever NaN; a fit whose weights are all zero is
  fitted with uniform weights; a feature with zero variance keeps unit scale.
Components come out sorted by weight, heaviest first.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import torch

from diffpose3d.mixtures.gmm import GaussianMixture

COVARIANCE_TYPES = ("full", "diag")
INIT_METHODS = ("kmeans++", "kmeans")
_LOG2E, _LN2 = 1.0 / math.log(2.0), math.log(2.0)
_CACHE_ELEMENTS = 2**20  # responsibilities per chunk (4 MB of float32): measured fastest with 2 threads
_MEMORY_ELEMENTS = 2**24  # per-chunk working set, in elements (about 64 MB of float32 per big tensor)


def fit_gmm(
    x: torch.Tensor,
    weights: torch.Tensor | None = None,
    num_components: int = 5,
    *,
    covariance: str = "full",
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    reg_covar_abs: float | torch.Tensor = 0.0,
    init: str = "kmeans++",
    kmeans_iter: int = 30,
    generator: torch.Generator | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
) -> tuple[GaussianMixture, torch.Tensor]:
    """Fit `B` independent GMMs to `x (B, N, D)` with sample weights `(B, N)` (None = equal).

    Returns the mixtures (weights `(B, M)`, means `(B, M, D)`, covariances `(B, M, D, D)`; a diagonal
    fit returns diagonal matrices) and the weighted mean log-likelihood per sample `(B,)` under the
    final parameters (scikit-learn's `score`). EM stops per fit when the mean log-likelihood changes
    by less than `tol`. `init`: "kmeans++" (seeding only, then hard assignment) or "kmeans"
    (seeding + `kmeans_iter` Lloyd iterations, scikit-learn's default). Random draws come from
    `generator` (on `x`'s device) or a new one seeded with `seed`. `reg_covar_abs` broadcasts to
    `(B, D)` (a per-fit value is `(B, 1)`). `chunk_size` fits are processed at a time (default:
    cache-sized, within a fixed memory budget); on the CPU the chunks run on `torch.get_num_threads()`
    worker threads. Results depend on `chunk_size` (each chunk has its own seed), not on threads.
    """
    if x.dim() != 3:
        raise ValueError(f"x must be (B, N, D), got {tuple(x.shape)}")
    if covariance not in COVARIANCE_TYPES:
        raise ValueError(f"covariance must be one of {COVARIANCE_TYPES}, got {covariance!r}")
    if init not in INIT_METHODS:
        raise ValueError(f"init must be one of {INIT_METHODS}, got {init!r}")
    if num_components < 1:
        raise ValueError(f"num_components must be >= 1, got {num_components}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x holds NaN or infinite values")
    b, n, d = x.shape
    if n < 1:
        raise ValueError("every fit needs at least one sample")
    if not x.is_floating_point():
        x = x.float()
    w = torch.ones(b, n, dtype=x.dtype, device=x.device) if weights is None else weights.to(x)
    if w.shape != (b, n):
        raise ValueError(f"weights must be {(b, n)}, got {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError("weights must be finite and non-negative")
    try:
        reg_abs = torch.as_tensor(reg_covar_abs, dtype=x.dtype, device=x.device).expand(b, d)
    except RuntimeError:
        raise ValueError(f"reg_covar_abs must broadcast to {(b, d)} (per fit: shape (B, 1))") from None
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(seed)
    m = num_components
    chunk = chunk_size or _default_chunk(n, m, d)
    starts = range(0, b, chunk)
    # One seed per chunk, drawn up front: results depend on the chunking, never on thread timing.
    seeds = torch.randint(0, 2**62, (len(starts),), generator=generator, device=generator.device).tolist()

    def run(start: int, seed: int):
        sl = slice(start, start + chunk)
        gen = torch.Generator(device=x.device).manual_seed(seed)
        return _fit_chunk(x[sl], w[sl], m, covariance, max_iter, tol, reg_covar, reg_abs[sl], init, kmeans_iter, gen)

    results = _map_chunks(run, list(starts), seeds, parallel=x.device.type == "cpu")
    out_w, out_mu, out_cov, out_ll = (torch.cat(parts) for parts in zip(*results))
    gmm = GaussianMixture(out_w, out_mu, out_cov)
    return gmm, out_ll


def _default_chunk(n: int, m: int, d: int) -> int:
    """Fits per chunk: the `(chunk, M, N)` responsibilities stay cache-sized (measured fastest), and
    the whole working set stays within the memory budget."""
    by_cache = _CACHE_ELEMENTS // (n * m)
    by_memory = _MEMORY_ELEMENTS // (n * (m + 2 * (d * d + d + 1)))
    return max(1, min(by_cache, by_memory))


def _map_chunks(run, starts: list[int], seeds: list[int], parallel: bool) -> list:
    """`run(start, seed)` for every chunk, on `torch.get_num_threads()` threads when there is more
    than one chunk (CPU). Tiny batched GEMMs slow down when torch splits them over threads, so each
    worker runs its chunk's operations on one thread; the torch setting is restored afterwards."""
    before = torch.get_num_threads()
    threads = min(before, len(starts))
    if not parallel or threads < 2:
        return [run(start, seed) for start, seed in zip(starts, seeds)]

    def one_thread_run(start: int, seed: int):
        torch.set_num_threads(1)
        return run(start, seed)

    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one_thread_run, starts, seeds))
    finally:
        torch.set_num_threads(before)


# -- one chunk ---------------------------------------------------------------------------------


def _fit_chunk(x, w, m, covariance, max_iter, tol, reg_rel, reg_abs, init, kmeans_iter, generator):
    b, n, d = x.shape
    full = covariance == "full"
    total = w.sum(1, keepdim=True)
    w = torch.where(total > 0, w / total.clamp_min(torch.finfo(x.dtype).tiny), torch.full_like(w, 1.0 / n))
    center = (w.unsqueeze(-1) * x).sum(1)  # (b, D)
    var = (w.unsqueeze(-1) * (x - center.unsqueeze(1)) ** 2).sum(1)
    scale = torch.where(var > 0, var.sqrt(), torch.ones_like(var))
    z = (x - center.unsqueeze(1)) / scale.unsqueeze(1)
    reg = reg_rel * torch.where(var > 0, torch.ones_like(var), torch.zeros_like(var)) + reg_abs / scale**2
    reg = reg.clamp_min(torch.finfo(x.dtype).eps)  # never a singular covariance

    centers = _kmeanspp(z, w, m, generator)
    if init == "kmeans":
        centers = _lloyd(z, w, centers, kmeans_iter)
    lay = _Layout(d, full, z)
    reg = reg[:, lay.first] * lay.diag_mask  # packed (b, P): only on the diagonal entries
    feats = _features(z, lay)  # (b, N, K): EM needs only these sufficient statistics
    feats_t = feats.transpose(1, 2).contiguous()  # (b, K, N): both layouts, see `_e_step`
    resp = torch.nn.functional.one_hot(_sqdist(z.transpose(1, 2), centers).min(1).indices, m).to(z.dtype)
    params = _m_step(torch.bmm((w.unsqueeze(-1) * resp).transpose(1, 2), feats), reg, lay)

    # Working set: fits leave it in batches once converged; a converged fit's parameters are
    # copied out at its first convergence, so later updates of the working set never reach it.
    final = [p.clone() for p in params]
    active = torch.arange(b, device=x.device)
    finished = torch.zeros(b, dtype=torch.bool, device=x.device)
    fa, fta, wa, rega, pa = feats, feats_t, w, reg, params
    prev = torch.full((b,), -math.inf, dtype=x.dtype, device=x.device)
    for _ in range(max_iter):
        ll, stats = _e_step(fa, fta, wa, pa, lay)
        pa = _m_step(stats, rega, lay)
        new = ((ll - prev).abs() < tol) & ~finished
        prev = ll
        if bool(new.any()):
            rows = new.nonzero().squeeze(1)
            for f, p in zip(final, pa):
                f.index_copy_(0, active[rows], p.index_select(0, rows))
            finished |= new
        n_done = int(finished.sum())
        if n_done == finished.numel():
            break
        if 8 * n_done >= finished.numel():  # compact once an eighth of the working set is done
            keep = (~finished).nonzero().squeeze(1)
            active, fa, fta, wa, rega, prev = (t.index_select(0, keep) for t in (active, fa, fta, wa, rega, prev))
            pa = tuple(p.index_select(0, keep) for p in pa)
            finished = finished[keep]
    else:  # max_iter reached: keep the last parameters of the unconverged fits
        rows = (~finished).nonzero().squeeze(1)
        for f, p in zip(final, pa):
            f.index_copy_(0, active[rows], p.index_select(0, rows))
    ll, _ = _e_step(feats, feats_t, w, final, lay)
    pi, mu, cov = final
    cov = lay.unpack(cov)
    ll = ll - scale.log().sum(-1)  # density in data units
    mu = mu * scale.unsqueeze(1) + center.unsqueeze(1)
    cov = cov * (scale.unsqueeze(-1) * scale.unsqueeze(-2)).unsqueeze(1)
    order = torch.sort(pi, dim=-1, descending=True, stable=True).indices
    pi = pi.gather(-1, order)
    mu = mu.gather(1, order.unsqueeze(-1).expand(-1, -1, d))
    cov = cov.gather(1, order[..., None, None].expand(-1, -1, d, d))
    return pi, mu, cov, ll


class _Layout:
    """Packed storage of symmetric D x D matrices: the entries (i <= j) of `pairs` (all of them for
    full covariances, the diagonal for diagonal ones), so the EM loop needs no matrix indexing."""

    def __init__(self, d: int, full: bool, like: torch.Tensor) -> None:
        self.d, self.full = d, full
        self.pairs = [(i, j) for i in range(d) for j in range(i, d)] if full else [(i, i) for i in range(d)]
        self.pos = {pair: k for k, pair in enumerate(self.pairs)}
        p = len(self.pairs)
        opts = {"dtype": like.dtype, "device": like.device}
        self.diag_mask = torch.tensor([float(i == j) for i, j in self.pairs], **opts)
        self.first = torch.tensor([i for i, _ in self.pairs], device=like.device)
        self.second = torch.tensor([j for _, j in self.pairs], device=like.device)
        # packed positions of the variances (i, i) and (j, j) of each entry (i, j)
        self.first_var = torch.tensor([self.pos[(i, i)] for i, _ in self.pairs], device=like.device)
        self.second_var = torch.tensor([self.pos[(j, j)] for _, j in self.pairs], device=like.device)
        self.quad_scale = torch.tensor([-0.5 if i == j else -1.0 for i, j in self.pairs], **opts)
        # packed -> full: index into the packed entries plus one trailing zero (absent entries)
        self.full_index = torch.tensor(
            [self.pos.get((min(i, j), max(i, j)), p) for i in range(d) for j in range(d)], device=like.device)
        self.eye = self.diag_mask.clone()

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        padded = torch.cat([packed, torch.zeros_like(packed[..., :1])], -1)
        return padded[..., self.full_index].reshape(*packed.shape[:-1], self.d, self.d)


def _features(z: torch.Tensor, lay: _Layout) -> torch.Tensor:
    """`[1, z_1..z_D, z_i z_j ((i, j) in pairs)]` per sample `(b, N, K)`: log-densities are linear in these."""
    return torch.cat([torch.ones_like(z[..., :1]), z, z[..., lay.first] * z[..., lay.second]], -1)


def _sqdist(zt: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Squared distances `(b, M, N)` between samples `zt (b, D, N)` (feature-major) and centres
    `(b, M, D)`, accumulated feature by feature: for small D far faster than a batched GEMM."""
    dist = (centers[:, :, 0, None] - zt[:, None, 0, :]).square_()
    for k in range(1, zt.shape[1]):
        dist.add_((centers[:, :, k, None] - zt[:, None, k, :]).square_())
    return dist


def _draw(p: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One index per row of non-negative `p (b, N)`, drawn on the generator's device."""
    idx = torch.multinomial(p.to(generator.device), 1, generator=generator)
    return idx.to(p.device).squeeze(1)


def _kmeanspp(z: torch.Tensor, w: torch.Tensor, m: int, generator: torch.Generator) -> torch.Tensor:
    """Weighted greedy k-means++ seeding: centres `(b, M, D)`.

    Each new centre is the best (lowest weighted potential) of `2 + ln M` candidates drawn with
    probability `w * dist^2`, as in scikit-learn.
    """
    b = z.shape[0]
    zt = z.transpose(1, 2).contiguous()
    rows = torch.arange(b, device=z.device)
    trials = 2 + int(math.log(m))
    no_mass = (w.sum(1, keepdim=True) <= 0).to(z.dtype)
    first = _draw(w + no_mass, generator)
    centers = [z[rows, first]]
    dist = ((z - centers[0].unsqueeze(1)) ** 2).sum(-1)
    for _ in range(1, m):
        p = w * dist
        empty = p.sum(1, keepdim=True) <= 0  # all mass on the centres already chosen
        p = torch.where(empty, w + no_mass, p)
        cand = torch.multinomial(p.to(generator.device), trials, replacement=True, generator=generator)
        cand = z[rows.unsqueeze(1), cand.to(z.device)]  # (b, L, D)
        cand_dist = torch.minimum(dist.unsqueeze(1), _sqdist(zt, cand))  # (b, L, N)
        best = (cand_dist * w.unsqueeze(1)).sum(-1).argmin(1)  # (b,)
        centers.append(cand[rows, best])
        dist = cand_dist[rows, best]
    return torch.stack(centers, 1)


def _lloyd(z: torch.Tensor, w: torch.Tensor, centers: torch.Tensor, iters: int) -> torch.Tensor:
    """Weighted Lloyd iterations; an empty cluster keeps its centre."""
    m = centers.shape[1]
    zt = z.transpose(1, 2).contiguous()
    labels = None
    for _ in range(iters):
        new = _sqdist(zt, centers).min(1).indices
        if labels is not None and bool((new == labels).all()):
            break
        labels = new
        a = torch.nn.functional.one_hot(labels, m).to(z.dtype) * w.unsqueeze(-1)  # (b, N, M)
        mass = a.sum(1)  # (b, M)
        sums = torch.bmm(a.transpose(1, 2), z)
        centers = torch.where(mass.unsqueeze(-1) > 0, sums / mass.clamp_min(1e-30).unsqueeze(-1), centers)
    return centers


def _m_step(stats: torch.Tensor, reg: torch.Tensor, lay: _Layout):
    """Weighted sufficient statistics `(b, M, K)` (see `_features`) -> `(pi, mu, packed cov)`."""
    d = lay.d
    eps = 10 * torch.finfo(stats.dtype).eps
    nk = stats[..., 0]  # (b, M)
    empty = (nk < eps).unsqueeze(-1)
    nk_safe = nk.clamp_min(eps).unsqueeze(-1)
    mu = stats[..., 1 : 1 + d] / nk_safe
    cov = stats[..., 1 + d :] / nk_safe - mu.index_select(-1, lay.first) * mu.index_select(-1, lay.second)
    cov = cov + (-cov).clamp_min(0) * lay.diag_mask  # cancellation can dip a variance below 0
    if lay.full:  # ... and push a correlation past +-1 (a 2-D covariance is then indefinite)
        bound = (cov[..., lay.first_var] * cov[..., lay.second_var]).sqrt() * (1.0 - 1e-4)
        cov = torch.where(lay.diag_mask.bool(), cov, torch.maximum(torch.minimum(cov, bound), -bound))
    cov = cov + reg.unsqueeze(1)
    # An emptied component becomes broad and nearly weightless: the (standardised) data moments.
    mu = torch.where(empty, torch.zeros_like(mu), mu)
    cov = torch.where(empty, lay.eye + reg.unsqueeze(1), cov)
    pi = nk + eps
    pi = pi / pi.sum(-1, keepdim=True)
    return pi, mu, cov


def _e_step(feats: torch.Tensor, feats_t: torch.Tensor, w: torch.Tensor, params, lay: _Layout):
    """Weighted mean log-likelihood `(b,)` and the weighted sufficient statistics `(b, M, K)`.

    The log-density of every component is linear in the features `[1, z, z_i z_j]`, so all
    `N x M` log-densities come from one batched matrix product, and so do the next M-step's sums.
    """
    pi, mu, cov = params
    d = lay.d
    if not lay.full or d == 1:  # diagonal matrices
        prec, logdet = 1.0 / cov, cov.log().sum(-1)
        pmu = prec * mu
    else:
        prec, logdet = _precision(cov, lay)
        pmu = (lay.unpack(prec) * mu.unsqueeze(-2)).sum(-1)  # (b, M, D)
    const = -0.5 * ((mu * pmu).sum(-1) + logdet + d * math.log(2 * math.pi)) + pi.log()
    # base-2 log-densities: exp2 is several times cheaper than exp on CPU
    coef = torch.cat([const.unsqueeze(-1), pmu, prec * lay.quad_scale], -1).mul_(_LOG2E)  # (b, M, K)
    # Operand layouts chosen by measurement (MKL batched GEMM on tiny matrices, one thread): the
    # transposed views of the two stored layouts are the fast ones, except the statistics for K > 12.
    log2_p = torch.bmm(coef, feats.transpose(1, 2))  # (b, M, N), component-major
    top = log2_p.amax(1, keepdim=True)
    p = log2_p.sub_(top).exp2_()
    total = p.sum(1, keepdim=True)  # (b, 1, N)
    ll_n = (total.log2() + top).squeeze(1).mul_(_LN2)  # (b, N), natural log
    p.mul_(w.unsqueeze(1) / total)  # weighted responsibilities
    stats = torch.bmm(p, feats_t.transpose(1, 2) if feats.shape[-1] <= 12 else feats)  # (b, M, K)
    return (w * ll_n).sum(1), stats


def _precision(cov: torch.Tensor, lay: _Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed precision matrices and log-determinants of many tiny SPD matrices (packed `(..., P)`).

    An unrolled Cholesky on whole tensors of entries: for D <= ~8 this is far faster than batched
    LAPACK calls on millions of 2x2 or 5x5 matrices. A pivot is clamped to a relative floor, so a
    numerically indefinite matrix gets a finite (jittered) answer instead of NaN.
    """
    d = lay.d
    if d == 2:  # the heatmap case, in closed form (the same pivot floor): a third of the operations
        a, b, c = cov.unbind(-1)  # packed (0, 0), (0, 1), (1, 1)
        floor = torch.maximum(a, c).clamp_min(torch.finfo(cov.dtype).tiny) * 1e-7
        a = torch.maximum(a, floor)
        b_over_a = b / a
        schur = torch.maximum(c - b * b_over_a, floor)
        det = a * schur
        prec = torch.stack([schur + b * b_over_a, -b, a], -1) / det.unsqueeze(-1)
        return prec, det.log()
    c = {pair: cov[..., k] for pair, k in lay.pos.items()}
    diag = torch.stack([c[(i, i)] for i in range(d)], -1)
    floor = diag.amax(-1).clamp_min(torch.finfo(cov.dtype).tiny) * 1e-7
    zero = torch.zeros_like(floor)
    chol: dict[tuple[int, int], torch.Tensor] = {}
    for j in range(d):
        pivot = c[(j, j)] - sum((chol[(j, k)] ** 2 for k in range(j)), zero)
        chol[(j, j)] = torch.maximum(pivot, floor).sqrt()
        for i in range(j + 1, d):
            acc = c[(j, i)] - sum((chol[(i, k)] * chol[(j, k)] for k in range(j)), zero)
            chol[(i, j)] = acc / chol[(j, j)]
    inv: dict[tuple[int, int], torch.Tensor] = {}  # inverse of the lower factor, lower triangular
    for i in range(d):
        inv[(i, i)] = 1.0 / chol[(i, i)]
        for j in range(i):
            acc = sum((chol[(i, k)] * inv[(k, j)] for k in range(j, i)), zero)
            inv[(i, j)] = -acc * inv[(i, i)]
    prec = [sum((inv[(k, a)] * inv[(k, b)] for k in range(b, d)), zero) for a, b in lay.pairs]
    logdet = 2 * sum((chol[(j, j)].log() for j in range(d)), zero)
    return torch.stack(prec, -1), logdet
