"""Training throughput against accuracy: samples/s of the frame lifter (the MLP of h36m_frame), g
(stage 2 through H_K) and the video encoder, in fp32 and bf16 autocast (`train.precision`), with
`torch.compile`, on 1 and 2 threads and as 2 data-parallel processes (gloo), each beside the
validation MPJPE after the same number of steps from the same seed, and the data pipeline's
time per batch.

    python benchmarks/bench_train.py [--steps 60] [--variants fp32-1t,bf16-1t,...] [--set key=value ...]

Data: the HumanEva-I frames of `configs/humaneva_frame.yaml` (shared data; real 2D-3D pairs, the
synthetic detector's evidence) with the frame lifter set to h36m_frame's MLP (`--set` overrides
more); the video encoder uses `configs/humaneva_video.yaml`'s windows (`--video-set`). The steps
are the training code's own losses (`training.stages`); validation is the stage's own measure on
the validation blocks (the lifter's MPJPE; g's sampled-mean MPJPE, N = 5, 5 steps, float32). g
trains on top of the lifter the fp32 1-thread variant trained. Variants:
  fp32-1t bf16-1t fp32-2t bf16-2t   precision and torch threads
  compile-fp32-1t compile-bf16-1t   the network under torch.compile (its compile time shown apart)
  ddp-fp32 ddp-bf16                 2 processes x 1 thread, each half of every global batch
On a loaded machine only ratios measured side by side in one run mean anything.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from common import header
from torch.nn.parallel import DistributedDataParallel

from diffpose3d.config import load_config
from diffpose3d.model import DiffPoseModel
from diffpose3d.training.loop import Autocast
from diffpose3d.training.run import training_data
from diffpose3d.training.stages import (
    denoiser_loss,
    diffpose_val_mm,
    encoder_loss,
    lifter_mpjpe_mm,
    video_encoder_loss,
)
from diffpose3d.training.windows import TrainingWindows

REPO = Path(__file__).resolve().parents[1]
LIFTER = ["model.encoder.kind=mlp", "model.encoder.inputs=person", "model.encoder.width=64",
          "model.encoder.hidden=1024", "model.encoder.blocks=2", "train.batch_size=256", "train.val_max_frames=300"]
VARIANTS = "fp32-1t,bf16-1t,fp32-2t,bf16-2t,ddp-fp32,ddp-bf16,compile-bf16-1t"


class Job:
    """One network's training steps: data, loss, validation, samples per step."""

    def __init__(self, kind: str, frame_sets: list[str], video_sets: list[str], lifter_state: dict | None) -> None:
        self.kind = kind
        config = load_config(REPO / "configs" / ("humaneva_video.yaml" if kind == "video" else "humaneva_frame.yaml"),
                             (video_sets if kind == "video" else frame_sets) + ["train.progress=false"])
        torch.manual_seed(0)
        self.config, self.model = config, DiffPoseModel(config)
        self.batches, self.val = training_data(config, self.model.skeleton)
        self.perm = torch.as_tensor(self.model.skeleton.flip_permutation())
        cfg = config.train
        if kind == "lifter":
            self.net, self.batch, self.num = self.model.encoder, cfg.batch_size, len(self.batches)
            self.loss = encoder_loss(self.model, self.batches, self.perm, torch.device("cpu"))
            self.samples = cfg.batch_size
        elif kind == "g":
            self.model.encoder.load_state_dict(lifter_state)
            self.model.encoder.eval().requires_grad_(False)
            _, residual = lifter_mpjpe_mm(self.model, self.model.encoder, self.val)
            self.model.residual_std.copy_(residual.std(dim=0).clamp_min(1e-3))
            self.net, self.batch, self.num = self.model.denoiser, cfg.batch_size, len(self.batches)
            self.loss = denoiser_loss(self.model, self.batches, self.perm, torch.device("cpu"), cfg.uv_loss_weight)
            self.samples = cfg.batch_size
        else:
            frames = self.batches.frames
            self.windows = TrainingWindows(frames, config.model.encoder.frames, seed=cfg.seed)
            prep = self.model.prepare(frames.keypoints_uv, frames.uv_gmm, frames.focal)
            self.windows.new_epoch(0, prep.encoder_input)
            self.net, self.batch, self.num = self.model.encoder, cfg.window_batch_size, self.windows.count
            self.loss = video_encoder_loss(self.windows, self.perm, self.model.input_mirror, torch.device("cpu"),
                                           cfg.velocity_weight)
            self.samples = cfg.window_batch_size * config.model.encoder.frames

    def data_ms(self, steps: int = 20) -> float:
        """The data pipeline alone: ms per global batch (indices -> the tensors a loss reads)."""
        gen = torch.Generator().manual_seed(1)
        t0 = time.perf_counter()
        for _ in range(steps):
            index = torch.randint(self.num, (self.batch,), generator=gen)
            if self.kind == "video":
                self.windows.batch(index, self.perm.tolist(), self.model.input_mirror)
            else:
                self.batches.batch(index, True, self.perm, gen)
        return (time.perf_counter() - t0) / steps * 1e3

    def validate(self) -> float:
        if self.kind == "g":
            return diffpose_val_mm(self.model, self.val, self.config)
        return lifter_mpjpe_mm(self.model, self.net, self.val)[0]


def train_steps(job: Job, steps: int, precision: str, compile_net: bool, rank: int = 0, world: int = 1) -> dict:
    """`steps` AdamW steps from the job's seed; returns ms/step (after the first), the first step's
    seconds (compile time) and the validation MPJPE."""
    torch.manual_seed(0)
    net = job.net
    net.load_state_dict(job.initial)
    lr = job.config.train.encoder_lr if job.kind != "g" else job.config.train.denoiser_lr
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    # find_unused_parameters: the lifters' feature heads get no gradient in stage 1
    module = DistributedDataParallel(net, find_unused_parameters=True) if world > 1 else net
    if compile_net:
        module = torch.compile(module)
    if precision == "bf16":
        module = Autocast(module)
    gen = torch.Generator().manual_seed(2)
    net.train()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        index = torch.randint(job.num, (job.batch,), generator=gen)
        flip = bool(torch.rand((), generator=gen) < 0.5)
        rows = torch.arange(rank, len(index), world)
        loss = job.loss(module, index, flip, gen, rows)
        opt.zero_grad(set_to_none=True)
        (loss * world).backward()
        if job.kind == "g":
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    net.eval()
    val = job.validate() if rank == 0 else float("nan")
    later = sorted(times[1:]) or times
    return {"ms": later[len(later) // 2] * 1e3, "first_s": times[0], "val_mm": val}


def _ddp_child(rank: int, world: int, port: int, args, kind: str, precision: str, lifter_state, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    job = Job(kind, args.frame_sets, args.video_sets, lifter_state)
    job.initial = {k: v.clone() for k, v in job.net.state_dict().items()}
    result = train_steps(job, args.steps, precision, False, rank, world)
    if rank == 0:
        queue.put(result)
    dist.destroy_process_group()


def run_ddp(args, kind: str, precision: str, lifter_state) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = 29500 + os.getpid() % 1000
    mp.start_processes(_ddp_child, args=(2, port, args, kind, precision, lifter_state, queue), nprocs=2,
                       start_method="spawn", join=True)
    return queue.get()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps per variant (the first one is not timed)")
    ap.add_argument("--variants", default=VARIANTS)
    ap.add_argument("--jobs", default="lifter,g,video")
    ap.add_argument("--set", dest="frame_sets", action="append", default=[], help="override of the frame config")
    ap.add_argument("--video-set", dest="video_sets", action="append", default=[], help="override of the video config")
    args = ap.parse_args()
    os.chdir(REPO)  # the configs' data paths are relative to the repository's root
    args.frame_sets = LIFTER + args.frame_sets
    args.video_sets = ["train.val_max_frames=300"] + args.video_sets
    lifter_state = None
    header(f"training throughput and validation MPJPE after {args.steps} steps (HumanEva-I)")
    for kind in ("lifter", "g", "video"):
        if kind not in args.jobs.split(","):
            continue
        if kind == "g" and lifter_state is None:  # g needs a lifter: the fp32 1-thread one
            lifter = Job("lifter", args.frame_sets, args.video_sets, None)
            lifter.initial = {k: v.clone() for k, v in lifter.net.state_dict().items()}
            torch.set_num_threads(1)
            train_steps(lifter, args.steps, "fp32", False)
            lifter_state = lifter.net.state_dict()
        job = Job(kind, args.frame_sets, args.video_sets, lifter_state)
        job.initial = {k: v.clone() for k, v in job.net.state_dict().items()}
        torch.set_num_threads(1)
        print(f"\n{kind}: {job.samples} samples a step, data pipeline {job.data_ms():.1f} ms per batch (1 thread)")
        print(f"{'variant':18s} {'samples/s':>10} {'ms/step':>8} {'val MPJPE':>10} {'first step':>11}")
        for variant in args.variants.split(","):
            precision = "bf16" if "bf16" in variant else "fp32"
            try:
                if variant.startswith("ddp"):
                    r = run_ddp(args, kind, precision, lifter_state)
                else:
                    torch.set_num_threads(2 if variant.endswith("2t") else 1)
                    r = train_steps(job, args.steps, precision, variant.startswith("compile"))
            except Exception as exc:  # e.g. torch.compile without a C++ compiler
                print(f"{variant:18s} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:100]}")
                continue
            print(f"{variant:18s} {job.samples / r['ms'] * 1e3:10.0f} {r['ms']:8.1f} {r['val_mm']:8.1f} mm "
                  f"{r['first_s']:9.1f} s", flush=True)
            if kind == "lifter" and variant == "fp32-1t" and lifter_state is None:
                lifter_state = {k: v.clone() for k, v in job.net.state_dict().items()}


if __name__ == "__main__":
    main()
