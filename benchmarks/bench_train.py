"""Training throughput (samples/s: forward + backward + AdamW step) of the frame model's two stages
and of the video context encoder, at the shipped configs' sizes, with 1 and 2 threads.

    python benchmarks/bench_train.py [--steps 20] [--video-frames 27]

Stage 1 trains the frame lifter on (B, J, 2) keypoints; stage 2 trains g through the GMM forward
process exactly as `train.denoiser_loss` does (frozen lifter, H_K, q_sample, anchored prediction);
the video encoder trains on (B, T, J, 2) windows (a sample is one frame of a window). Inputs are
synthetic: the figures are compute throughput, independent of any data set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from common import header, median_seconds
from diffpose3d.config import load_config
from diffpose3d.diffusion.forward import q_sample
from diffpose3d.evidence.mixture2d import point_mixture
from diffpose3d.model import DiffPoseModel, anchored_prediction
from diffpose3d.models.context_video import VideoContextEncoder

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "humaneva_frame.yaml"


def stage1_step(model: DiffPoseModel, batch: int):
    opt = torch.optim.AdamW(model.encoder.parameters(), lr=1e-4)
    j = model.skeleton.num_joints
    kp, target = torch.rand(batch, j, 2) - 0.5, torch.randn(batch, j, 3) * 0.2

    def step() -> None:
        model.encoder.train()
        opt.zero_grad(set_to_none=True)
        (model.encoder(kp)[0] - target).norm(dim=-1).mean().backward()
        opt.step()

    return step


def stage2_step(model: DiffPoseModel, batch: int):
    opt = torch.optim.AdamW(model.denoiser.parameters(), lr=1e-4)
    j = model.skeleton.num_joints
    kp, txyz = torch.rand(batch, j, 2) - 0.5, torch.randn(batch, j, 3) * 0.2
    gmm = point_mixture(kp, 0.01)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        model.encoder.eval()  # frozen in stage 2
        k = torch.randint(1, model.schedule.K + 1, (batch,), generator=gen)
        with torch.no_grad():
            xyz, feats = model.context(kp)
            hk = model.initial_distribution(gmm, xyz)
        h_k, _ = q_sample(torch.cat([kp, txyz], -1), k, hk.weights, hk.means, hk.cholesky(), model.schedule,
                          generator=gen)
        pred = anchored_prediction(model.denoiser, h_k, k, model.conditioning(kp, xyz, feats, gmm), model.schedule.alpha_bar)
        opt.zero_grad(set_to_none=True)
        (pred[..., 2:] - txyz).norm(dim=-1).mean().backward()
        opt.step()

    return step


def video_step(encoder: VideoContextEncoder, batch: int):
    opt = torch.optim.AdamW(encoder.parameters(), lr=1e-4)
    j = len(encoder.parents)
    uv, target = torch.rand(batch, encoder.frames, j, 2) - 0.5, torch.randn(batch, encoder.frames, j, 3) * 0.2

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        (encoder(uv)[0] - target).norm(dim=-1).mean().backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per timing")
    ap.add_argument("--video-frames", type=int, default=27)
    ap.add_argument("--video-batch", type=int, default=16, help="windows per batch")
    args = ap.parse_args()
    config = load_config(CONFIG)
    batch = config.train.batch_size
    torch.manual_seed(0)
    model = DiffPoseModel(config)
    model.train()  # stage 1 trains the lifter in train mode; stage 2 uses it frozen (eval mode, below)
    video = VideoContextEncoder(list(model.skeleton.parents), frames=args.video_frames)
    video.train()
    jobs = [
        (f"frame stage 1 (lifter, batch {batch})", stage1_step(model, batch), batch),
        (f"frame stage 2 (g through H_K, batch {batch})", stage2_step(model, batch), batch),
        (f"video encoder ({args.video_batch} x {args.video_frames}-frame windows)", video_step(video, args.video_batch),
         args.video_batch * args.video_frames),
    ]
    for threads in (1, 2):
        torch.set_num_threads(threads)
        header(f"training throughput, {threads} thread(s)")
        for name, step, samples in jobs:
            sec = median_seconds(lambda: [step() for _ in range(args.steps)], repeats=3)
            print(f"{name:55s} {samples * args.steps / sec:9.0f} samples/s  ({sec / args.steps * 1e3:6.1f} ms/step)")


if __name__ == "__main__":
    main()
