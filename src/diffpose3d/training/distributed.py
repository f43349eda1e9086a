"""Data-parallel training on PyTorch's own engine (`torchrun`): gloo on CPU, nccl on GPU.

    torchrun --nproc_per_node 2 -m diffpose3d train --config configs/humaneva_frame.yaml --out runs/x

Every rank draws the same global batch and the same randomness (flip, diffusion step, noise) from
identically seeded generators and computes the loss on its own shard of that batch; DDP averages the
gradients. So N processes follow the same trajectory as one process with the same global batch
(up to floating-point summation order; with dropout > 0 the masks, drawn per rank, differ).
Rank 0 alone logs and writes checkpoints.
Several machines: give torchrun `--nnodes`, `--node_rank` and `--rdzv_endpoint host:port`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_name: str) -> tuple[DistInfo, torch.device | None]:
    """Join the process group that `torchrun` describes in the environment (no-op otherwise).

    Returns the rank information and, under torchrun with CUDA, this rank's device.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), None
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name not in ("cpu",)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    device = None
    if use_cuda:
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return DistInfo(rank, world, local), device


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
