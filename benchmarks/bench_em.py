"""Fits per second: batched EM (`diffpose3d.uncertainty.em.fit_gmm`) vs scikit-learn, same fits.

    python benchmarks/bench_em.py [--threads 1] [--fits 4000] [--sklearn-fits 60] [--repeats 3]

Each fit: 200 samples of a random 5-cluster 2-D mixture, M = 5, tol 1e-3, max_iter 100, k-means++
initialisation in both (scikit-learn's `init_params="k-means++"`). Both run with the same thread
count (torch threads and, through threadpoolctl, scikit-learn's BLAS/OpenMP pools). Reports the
median of the repeats and the speed ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from diffpose3d.uncertainty.em import fit_gmm


def make_data(fits: int, n: int, d: int, m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (fits, m, d))
    spread = rng.uniform(0.3, 1.5, (fits, m, 1))
    label = rng.integers(0, m, (fits, n))
    pick = lambda a: np.take_along_axis(a, label[..., None], 1)  # noqa: E731
    return (pick(centres) + rng.normal(size=(fits, n, d)) * pick(spread)).astype(np.float32)


def rate(fn, count: int, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return count / statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fits", type=int, default=4000, help="fits per batched EM call")
    parser.add_argument("--sklearn-fits", type=int, default=60)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--dim", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = make_data(args.fits, args.samples, args.dim, 5, seed=0)
    xt = torch.from_numpy(x)
    print(f"threads: torch {torch.get_num_threads()}, sklearn pools limited to {args.threads}; "
          f"{args.samples} samples, D = {args.dim}, M = 5; median of {args.repeats} repeats")
    fit_gmm(xt[:64], covariance="full")  # warm-up
    for cov in ("diag", "full"):
        ours, _ = rate(lambda: fit_gmm(xt, num_components=5, covariance=cov, tol=1e-3), args.fits, args.repeats)
        sub = x[: args.sklearn_fits]

        def sk() -> None:
            with threadpool_limits(args.threads):
                for i, xi in enumerate(sub):
                    GaussianMixture(5, covariance_type=cov, init_params="k-means++", tol=1e-3,
                                    random_state=i).fit(xi)

        theirs, _ = rate(sk, len(sub), args.repeats)
        print(f"{cov:4s}: batched EM {ours:9.0f} fits/s | sklearn {theirs:7.1f} fits/s | ratio {ours / theirs:6.0f}x")


if __name__ == "__main__":
    main()
