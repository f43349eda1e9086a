"""The two video context encoders side by side: training throughput of one stage-1 step, and (with
`--data`) the validation MPJPE each reaches after a fixed number of steps on Human3.6M.

    python benchmarks/bench_video_encoders.py [--steps 10] [--threads 1]
    python benchmarks/bench_video_encoders.py --data --train-steps 300 --eval-every 100

Throughput: forward + backward + AdamW of a stage-1 step under bf16 autocast, at the shipped
configs' sizes (configs/h36m_video.yaml: the MixSTE-style encoder on 16 windows of 27 frames;
configs/h36m_video_tcn.yaml: the temporal convolution on 16 chunks of 64 output frames, each with
its receptive field's context), person-frame inputs, synthetic values. A sample is one output frame
with a loss (a window's 27 frames; a chunk's 64). `--data`: each encoder's stage 1 (the shipped
recipe, step counts shrunk) on the same Human3.6M frames, validation on the same held-out blocks.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch
from common import header, median_seconds

from diffpose3d.config import Config, load_config
from diffpose3d.evidence import person_frame as pf
from diffpose3d.model import DiffPoseModel
from diffpose3d.training.loop import Autocast, Budget

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
VARIANTS = {  # name: (config, overrides)
    "video (MixSTE, 27)": ("h36m_video.yaml", []),
    "tcn 27": ("h36m_video_tcn.yaml", []),
    "tcn 81": ("h36m_video_tcn.yaml", ["model.encoder.frames=81"]),
    "tcn 27, 512 ch": ("h36m_video_tcn.yaml", ["model.encoder.hidden=512"]),
}


def step_fn(config: Config):
    """`(one stage-1 training step, output frames per step)` of the config's video encoder."""
    model = DiffPoseModel(config)
    encoder, e, t = model.encoder, config.model.encoder, config.train
    j = model.skeleton.num_joints
    net = Autocast(encoder) if t.precision == "bf16" else encoder
    opt = torch.optim.AdamW(encoder.parameters(), lr=1e-4)
    if e.kind == "tcn":
        frames_in, frames_out, kwargs = t.chunk_frames + e.frames - 1, t.chunk_frames, {"padded": True}
    else:
        frames_in = frames_out = e.frames
        kwargs = {}
    uv = torch.randn(t.window_batch_size, frames_in, j, pf.CHANNELS) * 0.3
    target = torch.randn(t.window_batch_size, frames_out, j, 3) * 0.2

    def step() -> None:
        encoder.train()
        opt.zero_grad(set_to_none=True)
        (net(uv, **kwargs)[0] - target).norm(dim=-1).mean().backward()
        opt.step()

    return step, t.window_batch_size * frames_out


def throughput(steps: int) -> None:
    header("stage-1 training step of the video encoders (bf16 autocast)")
    print(f"{'encoder':22s} {'params':>9s} {'frames/step':>11s} {'s/step':>8s} {'frames/s':>9s}")
    for name, (file, overrides) in VARIANTS.items():
        config = load_config(CONFIGS / file, overrides)
        step, frames = step_fn(config)
        sec = median_seconds(step, repeats=steps, warmup=2)
        params = sum(p.numel() for p in DiffPoseModel(config).encoder.parameters())
        print(f"{name:22s} {params / 1e6:8.2f}M {frames:11d} {sec:8.3f} {frames / sec:9.0f}")


def accuracy(train_steps: int, eval_every: int, subjects: list[str]) -> None:
    """Stage 1 of each encoder for `train_steps` steps on the same frames; validation MPJPE (mm)."""
    from diffpose3d.training.run import training_data
    from diffpose3d.training.stages import train_encoder

    header(f"stage 1 after {train_steps} steps, Human3.6M {'+'.join(subjects)} (validation: held-out blocks)")
    shared = ["data.train_subjects=[" + ",".join(subjects) + "]", "data.test_stride=8", "train.progress=false",
              f"train.epoch_steps={eval_every}", f"train.encoder_epochs={train_steps // eval_every}",
              "train.eval_every=1", "train.max_minutes=0", f"train.threads={torch.get_num_threads()}"]
    base = load_config(CONFIGS / "h36m_video_tcn.yaml", shared)
    data = None
    for name, (file, overrides) in VARIANTS.items():
        config = load_config(CONFIGS / file, shared + overrides)
        config = replace(config, data=base.data)  # the same frames and blocks for every encoder
        if data is None:
            data = training_data(config, DiffPoseModel(config).skeleton)
        torch.manual_seed(0)
        model = DiffPoseModel(config)
        rows: list[dict] = []
        cpu0, wall0 = time.process_time(), time.monotonic()
        info = train_encoder(model, data[0], data[1], config, torch.device("cpu"), Budget(0), log=rows.append)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        curve = ", ".join(f"{r['stage']}@{r['epoch'] * eval_every}: {r['val_mpjpe_mm']:.1f}" for r in rows)
        print(f"{name:22s} best {info['best_val_mpjpe_mm']:6.1f} mm  cpu {cpu / 60:5.1f} min  "
              f"wall {wall / 60:5.1f} min  [{curve}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per encoder (median)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", action="store_true", help="also train each encoder's stage 1 on Human3.6M")
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--subjects", default="S1,S5,S6,S7")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    throughput(args.steps)
    if args.data:
        accuracy(args.train_steps, args.eval_every, args.subjects.split(","))


if __name__ == "__main__":
    main()
