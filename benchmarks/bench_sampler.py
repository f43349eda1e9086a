"""Sampler throughput of a model bundle: poses/s at (N, steps) settings, and the fraction of this
machine's measured dense-matmul peak that the denoiser reaches, for each inference backend.

    python benchmarks/bench_sampler.py [--checkpoint DIR] [--frames 1024] [--backends torch,onnxruntime] [--compile]

`--compile` also times one denoiser pass eagerly and under `torch.compile` (reported, not used by the
package: the gain measured here did not pay for the compile time).
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import torch
from common import count_flops, header, matmul_peak_gflops, median_seconds

from diffpose3d.bundle import load_bundle
from diffpose3d.config import InferenceConfig
from diffpose3d.evidence.mixture2d import point_mixture
from diffpose3d.model import POSES_PER_PASS

SETTINGS = [(1, 2), (5, 5), (5, 50)]


def compare_compile(model, h, k, ctx, repeats: int) -> None:
    with torch.inference_mode():
        eager = median_seconds(lambda: model.denoiser(h, k, ctx), repeats=repeats)
        t0 = time.perf_counter()
        compiled = torch.compile(model.denoiser)
        compiled(h, k, ctx)
        build = time.perf_counter() - t0
        fast = median_seconds(lambda: compiled(h, k, ctx), repeats=repeats)
    print(f"torch.compile, one pass of {h.shape[0]} poses: eager {eager * 1e3:.1f} ms, compiled {fast * 1e3:.1f} ms "
          f"({eager / fast:.2f}x), compile time {build:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="model bundle (default: the bundled model)")
    ap.add_argument("--frames", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    default_backends = "torch,onnxruntime" if importlib.util.find_spec("onnxruntime") else "torch"
    ap.add_argument("--backends", default=default_backends, help=f"comma-separated (default {default_backends})")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile on one denoiser pass")
    args = ap.parse_args()
    model, _ = load_bundle(args.checkpoint)
    j = model.skeleton.num_joints
    gen = torch.Generator().manual_seed(0)
    kp = torch.rand(args.frames, j, 2, generator=gen) * 1.2 - 0.6
    gmm = point_mixture(kp, 0.01)
    header(f"sampler, {args.frames} frames, {j} joints, passes of {POSES_PER_PASS} poses")
    peak = matmul_peak_gflops()
    print(f"dense fp32 matmul peak (2048^3, measured now): {peak:.1f} GFLOP/s")
    rows = min(POSES_PER_PASS, args.frames)  # one denoiser pass, as the sampler runs it
    h, k = torch.randn(rows, j, 5), torch.full((rows,), 10)
    ctx = model.conditioning(kp[:rows], *model.context(kp[:rows]), gmm[:rows])
    with torch.inference_mode():
        flops_pose_step = count_flops(lambda: model.denoiser(h, k, ctx)) / rows
    print(f"denoiser: {flops_pose_step / 1e6:.2f} MFLOP per pose and step "
          f"({sum(p.numel() for p in model.denoiser.parameters()) / 1e6:.2f} M parameters)")
    for backend in args.backends.split(","):
        model.use_backend(backend)
        print(f"backend {backend}")
        print(f"{'N':>3} {'steps':>5} {'poses/s':>10} {'frames/s':>10} {'GFLOP/s':>9} {'of peak':>8}")
        for n, steps in SETTINGS:
            def run(n: int = n, steps: int = steps):
                inference = InferenceConfig(hypotheses=n, steps=steps, antithetic=False)
                return model.sample(kp, gmm, inference, generator=torch.Generator().manual_seed(0))

            sec = median_seconds(run, repeats=args.repeats)
            poses = args.frames * n / sec
            gflops = poses * steps * flops_pose_step / 1e9
            print(f"{n:>3} {steps:>5} {poses:>10.0f} {args.frames / sec:>10.1f} {gflops:>9.1f} {gflops / peak:>8.1%}")
    model.use_backend("torch")
    if args.compile:
        compare_compile(model, h, k, ctx, args.repeats)


if __name__ == "__main__":
    main()
