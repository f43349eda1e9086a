"""Fits per second: batched EM (`diffpose3d.uncertainty.em.fit_gmm`) vs scikit-learn, same fits.

    python benchmarks/bench_em.py [--threads 2] [--fits 16000] [--sklearn-fits 60] [--repeats 3]

Two workloads, the ones this project runs:
- heatmap fits: D = 2, 64 samples (the pixels `fit-gmm` keeps per joint, `--top-k 64`), the
  millions of fits of a whole data set;
- H_K refits: D = 5, 256 samples (what `uncertainty.initial.hk_from_mixtures` draws per joint).
Samples come from random 5-cluster mixtures; M = 5, tol 1e-3, max_iter 100, k-means++ seeding in
both (scikit-learn's `init_params="k-means++"`). Both run with the same thread count (torch threads
and, through threadpoolctl, scikit-learn's BLAS/OpenMP pools). Reports the median of the repeats and
the speed ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from diffpose3d.mixtures.em import fit_gmm

WORKLOADS = (("heatmap fits", 2, 64), ("H_K refits", 5, 256))


def make_data(fits: int, n: int, d: int, m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (fits, m, d))
    spread = rng.uniform(0.3, 1.5, (fits, m, 1))
    label = rng.integers(0, m, (fits, n))
    pick = lambda a: np.take_along_axis(a, label[..., None], 1)
    return (pick(centres) + rng.normal(size=(fits, n, d)) * pick(spread)).astype(np.float32)


def rate(fn, count: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return count / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--fits", type=int, default=16000, help="fits per batched EM call (D = 2; a quarter for D = 5)")
    parser.add_argument("--sklearn-fits", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads: torch {torch.get_num_threads()}, sklearn pools limited to {args.threads}; M = 5; "
          f"median of {args.repeats} repeats")
    for name, dim, samples in WORKLOADS:
        fits = args.fits if dim == 2 else max(1, args.fits // 4)
        x = make_data(fits, samples, dim, 5, seed=0)
        xt = torch.from_numpy(x)
        fit_gmm(xt[:64], covariance="full")  # warm-up
        for cov in ("diag", "full"):
            ours = rate(lambda xt=xt, cov=cov: fit_gmm(xt, num_components=5, covariance=cov, tol=1e-3), fits, args.repeats)
            sub = x[: args.sklearn_fits]

            def sk(sub: np.ndarray = sub, cov: str = cov) -> None:
                with threadpool_limits(args.threads):
                    for i, xi in enumerate(sub):
                        GaussianMixture(5, covariance_type=cov, init_params="k-means++", tol=1e-3,
                                        random_state=i).fit(xi)

            theirs = rate(sk, len(sub), args.repeats)
            print(f"{name:12s} D={dim} N={samples:3d} {cov:4s}: batched EM {ours:8.0f} fits/s | "
                  f"sklearn {theirs:6.1f} fits/s | ratio {ours / theirs:5.0f}x")


if __name__ == "__main__":
    main()
