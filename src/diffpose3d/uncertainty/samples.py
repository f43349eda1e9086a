"""Training-like model inputs drawn as a bundle's training draws them, and synthetic shifts of them.

`input_batches` builds the pose table of some subjects of a bundle's dataset and draws samples the
way `training.batches.TableBatches` does: real cameras and (`data.virtual.share`) random virtual
ones, exact 2D, real detections or the synthetic detector, truncation by the image border. The
shifts (`Shift`) move these draws away from training, to calibrate how far the spread must widen
off-domain without ever looking at another dataset: views outside the training's camera ranges,
bodies of other proportions (every bone's length scaled at random, symmetric left/right), and
joints cut off by the image border.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from diffpose3d.config import Config, VirtualCameraConfig
from diffpose3d.data.bodies import scale_bones
from diffpose3d.data.loading import load_sequences
from diffpose3d.data.pose_table import build_pose_table
from diffpose3d.data.splits import heldout_blocks
from diffpose3d.errors import ConfigError
from diffpose3d.evidence.mixture2d import broad_mixture, fill_missing, top_mode
from diffpose3d.mixtures.gmm import GaussianMixture
from diffpose3d.skeleton import Skeleton
from diffpose3d.training.batches import Batch, TableBatches


@dataclass(frozen=True)
class Shift:
    """A synthetic departure from training: `bone_scale` the log-normal spread of bone lengths,
    `virtual` views from these camera ranges (None: the training's own mix), `truncate` the share
    of samples that lose a random 20-50 % of their joints (the lowest ones) to the image border."""

    name: str
    bone_scale: float = 0.0
    virtual: VirtualCameraConfig | None = None
    truncate: float = 0.0


def extreme_views(base: VirtualCameraConfig) -> VirtualCameraConfig:
    """Every sample through a virtual camera from steep elevations, strong rolls and close, wide lenses."""
    return replace(base, share=1.0, elevation=(50.0, 80.0), roll=25.0, focal=(0.6, 1.2))


def default_shifts(config: Config) -> tuple[Shift, ...]:
    """The calibration shifts for a bundle: other bodies, steep views, truncation, and all three."""
    views = extreme_views(config.data.virtual)
    return (
        Shift("bones", bone_scale=0.15),
        Shift("steep views", virtual=views),
        Shift("truncated", truncate=1.0),
        Shift("all", bone_scale=0.15, virtual=views, truncate=0.5),
    )


def input_batches(config: Config, skeleton: Skeleton, subjects: list[str], block: str | None = None) -> TableBatches:
    """A `TableBatches` of `subjects` of the bundle's dataset, with the detections of `data.data_2d`;
    with `block` ('train', 'val' or 'test') only that block of every take (`data.splits.heldout_blocks`)."""
    d = config.data
    if d.dataset not in ("h36m", "humaneva"):
        raise ConfigError(f"training-like inputs need a dataset with cameras (h36m, humaneva), not {d.dataset}")
    projected = replace(config, data=replace(d, data_2d=""))
    split = d.train_split or None
    poses = load_sequences(projected, subjects=subjects, split=split)
    detections = load_sequences(config, subjects=subjects, split=split) if d.data_2d else None
    if not poses:
        raise ConfigError(f"no sequences of subjects {subjects} in {d.data_3d}")
    if block is not None:
        poses = heldout_blocks(poses, d, block)
        detections = heldout_blocks(detections, d, block) if detections is not None else None
    table = build_pose_table(poses, detections, skeleton.name)
    return TableBatches(table, skeleton, config.evidence, d.virtual)


def draw_inputs(batches: TableBatches, n: int, seed: int, shift: Shift | None = None, chunk: int = 4096) -> Batch:
    """`n` samples drawn as training draws them (no mirror), moved by `shift`."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.arange(batches.skeleton.num_joints)
    parts = []
    table, virtual = batches.table, batches.virtual
    for start in range(0, n, chunk):
        index = torch.randint(len(table), (min(chunk, n - start),), generator=gen)
        if shift is not None and shift.bone_scale > 0:
            saved = table.world
            table.world = saved.clone()
            table.world[index] = scale_bones(saved[index], batches.skeleton.parents,
                                              batches.skeleton.flip_permutation(), shift.bone_scale, gen)
        if shift is not None and shift.virtual is not None:
            batches.virtual = shift.virtual
        try:
            batch = batches.batch(index, False, perm, gen)
        finally:
            batches.virtual = virtual
            if shift is not None and shift.bone_scale > 0:
                table.world = saved
        if shift is not None and shift.truncate > 0:
            batch = _truncate(batch, batches.skeleton, shift.truncate, gen)
        parts.append(batch)
    return Batch(torch.cat([p.keypoints_uv for p in parts]),
                 GaussianMixture.cat([p.uv_gmm for p in parts], dim=0),
                 torch.cat([p.target_uv for p in parts]), torch.cat([p.target_xyz for p in parts]),
                 torch.cat([p.focal for p in parts]))


def _truncate(batch: Batch, skeleton: Skeleton, share: float, gen: torch.Generator) -> Batch:
    """A `share` of the samples lose their lowest 20-50 % of joints (largest v) to the border."""
    b, j = batch.keypoints_uv.shape[:2]
    cut = torch.rand(b, generator=gen) < share
    lose = (j * (0.2 + 0.3 * torch.rand(b, generator=gen))).long()
    rank = batch.target_uv[..., 1].argsort(1, descending=True).argsort(1)
    missing = cut[:, None] & (rank < lose[:, None])
    missing[:, 0] = False  # keep the root: the person frame needs a present joint to start from
    aspect = torch.ones(b)
    gmm = batch.uv_gmm.where(missing, broad_mixture((b, j), aspect, batch.uv_gmm.weights.shape[-1]))
    keypoints = fill_missing(top_mode(gmm), missing, skeleton.parents)
    return Batch(keypoints, gmm, batch.target_uv, batch.target_xyz, batch.focal)
