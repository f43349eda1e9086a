"""Sampler throughput of a model bundle: poses/s at (N, steps) settings, and the fraction of this
machine's measured dense-matmul peak that the denoiser reaches.

    python benchmarks/bench_sampler.py [--checkpoint DIR] [--frames 1024]
"""

from __future__ import annotations

import argparse

import torch

from common import count_flops, header, matmul_peak_gflops, median_seconds
from diffpose3d.checkpoint import load_bundle
from diffpose3d.evidence import gt_mixture

SETTINGS = [(1, 2), (5, 5), (5, 50)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="model bundle (default: the bundled model)")
    ap.add_argument("--frames", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    model, _ = load_bundle(args.checkpoint)
    j = model.skeleton.num_joints
    gen = torch.Generator().manual_seed(0)
    kp = torch.rand(args.frames, j, 2, generator=gen) * 1.2 - 0.6
    gmm = gt_mixture(kp, 0.01)
    header(f"sampler, {args.frames} frames, {j} joints")
    peak = matmul_peak_gflops()
    print(f"dense fp32 matmul peak (2048^3, measured now): {peak:.1f} GFLOP/s")
    h = torch.randn(args.frames, j, 5)
    k = torch.full((args.frames,), 10)
    xyz, feats = model.context(kp)
    ctx = model.conditioning(kp, xyz, feats)
    with torch.inference_mode():
        flops_pose_step = count_flops(lambda: model.denoiser(h, k, ctx)) / args.frames
    print(f"denoiser: {flops_pose_step / 1e6:.2f} MFLOP per pose and step "
          f"({sum(p.numel() for p in model.denoiser.parameters()) / 1e6:.2f} M parameters)")
    print(f"{'N':>3} {'steps':>5} {'poses/s':>10} {'frames/s':>10} {'GFLOP/s':>9} {'of peak':>8}")
    for n, steps in SETTINGS:
        def run():
            return model.sample(kp, gmm, hypotheses=n, steps=steps, generator=torch.Generator().manual_seed(0))

        sec = median_seconds(run, repeats=args.repeats)
        poses = args.frames * n / sec
        gflops = poses * steps * flops_pose_step / 1e9
        print(f"{n:>3} {steps:>5} {poses:>10.0f} {args.frames / sec:>10.1f} {gflops:>9.1f} {gflops / peak:>8.1%}")


if __name__ == "__main__":
    main()
