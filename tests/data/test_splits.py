from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffpose3d.data.base import PoseSequence
from diffpose3d.data.h36m import load_h36m
from diffpose3d.data.humaneva import load_humaneva
from diffpose3d.data.protocols import protocol_filters
from diffpose3d.data.splits import holdout_split


def _seq(n: int, name: str = "a", camera: int = 0) -> PoseSequence:
    return PoseSequence(dataset="custom", subject="S1", action="A", name=name, camera_index=camera,
                        skeleton="h36m17", keypoints_2d=np.zeros((n, 17, 2), np.float32), image_size=(100, 100),
                        frame_indices=np.arange(n))


def test_holdout_blocks_are_disjoint_with_gaps() -> None:
    seqs = [_seq(200, "a", 0), _seq(200, "a", 1), _seq(57, "b"), _seq(12, "short")]
    parts = holdout_split(seqs, fractions=(0.7, 0.1, 0.2), gap_frames=10)
    assert set(parts) == {"train", "val", "test"}
    assert [s.name for s in parts["train"]].count("short") == 1
    assert all(s.name != "short" for s in parts["val"] + parts["test"])
    for name, camera in (("a", 0), ("a", 1), ("b", 0)):
        blocks = {p: [s for s in parts[p] if s.key == ("S1", name, camera)] for p in parts}
        assert all(len(b) == 1 for b in blocks.values())
        frames = {p: set(b[0].frame_indices.tolist()) for p, b in blocks.items()}
        assert not (frames["train"] & frames["val"]) and not (frames["val"] & frames["test"])
        assert min(frames["val"]) - max(frames["train"]) > 10
        assert min(frames["test"]) - max(frames["val"]) > 10
        total = sum(len(f) for f in frames.values())
        assert total == len(next(s for s in seqs if s.key == ("S1", name, camera))) - 20
    # same cut for every camera of a take, and deterministic
    a0 = [s.frame_indices for s in parts["test"] if s.name == "a"]
    np.testing.assert_array_equal(a0[0], a0[1])
    again = holdout_split(seqs)
    np.testing.assert_array_equal(again["val"][0].frame_indices, parts["val"][0].frame_indices)


def test_holdout_without_val() -> None:
    parts = holdout_split([_seq(100)], fractions=(0.8, 0.0, 0.2), gap_frames=5)
    assert parts["val"] == []
    assert len(parts["train"][0]) + len(parts["test"][0]) == 95
    with pytest.raises(ValueError):
        holdout_split([_seq(10)], fractions=(0.5, -0.1, 0.6))


def test_protocols_drive_the_readers(h36m_files: dict[str, Path], humaneva_files: dict[str, Path]) -> None:
    test = load_h36m(h36m_files["3d"], **protocol_filters("h36m", "test"))
    assert {s.subject for s in test} == {"S9", "S11"}
    train = load_humaneva(humaneva_files["3d"], **protocol_filters("humaneva", "train"))
    assert {(s.split, s.action) for s in train} == {("Train", "Walk"), ("Train", "Box")}
    val = load_humaneva(humaneva_files["3d"], **protocol_filters("humaneva", "test"))
    assert {(s.split, s.action) for s in val} == {("Validate", "Jog")}
    with pytest.raises(ValueError, match="no protocol"):
        protocol_filters("h36m", "val")


def test_heldout_blocks_follow_the_config_cut() -> None:
    from diffpose3d.config import DataConfig
    from diffpose3d.data.splits import heldout_blocks

    seqs = [_seq(400, "a", 0), _seq(400, "a", 1), _seq(30, "short")]
    data = DataConfig(holdout_fractions=[0.9, 0.05, 0.05], holdout_gap_frames=50)
    direct = holdout_split(seqs, fractions=(0.9, 0.05, 0.05), gap_frames=50)
    for block in ("train", "val", "test"):
        got = heldout_blocks(seqs, data, block)
        assert [s.key for s in got] == [s.key for s in direct[block]]
        for a, b in zip(got, direct[block]):
            np.testing.assert_array_equal(a.frame_indices, b.frame_indices)
    # 400 frames: 300 usable after two gaps of 50 -> 270 | 15 | 15, the blocks 50 frames apart
    val, test = heldout_blocks(seqs, data, "val")[0], heldout_blocks(seqs, data, "test")[0]
    assert (len(val), len(test)) == (15, 15) and test.frame_indices[0] - val.frame_indices[-1] == 51
    with pytest.raises(ValueError, match="block"):
        heldout_blocks(seqs, data, "calibration")


def test_pose_table_validates_on_every_takes_held_out_block(h36m_files):
    """Without data.val_subjects, a pose-table run trains on every take's train block and validates on
    its val block: no validation pose is in the table, and the test blocks are in neither."""
    import torch

    from diffpose3d.config import load_config
    from diffpose3d.data.loading import load_sequences
    from diffpose3d.data.splits import heldout_blocks
    from diffpose3d.model import DiffPoseModel
    from diffpose3d.training.run import training_data

    cfg = load_config(None, [
        "data.dataset=h36m", f"data.data_3d={h36m_files['3d']}", "data.pose_table=true", "data.train_subjects=[S1]",
        "data.actions=[]", "data.holdout=true", "data.holdout_fractions=[0.5,0.25,0.25]", "data.holdout_gap_frames=1",
        "data.test_stride=1", "model.skeleton=h36m17",
    ])
    batches, val = training_data(cfg, DiffPoseModel(cfg).skeleton)
    takes = load_sequences(cfg, subjects=["S1"], split=None)
    train_blocks = heldout_blocks([s for s in takes if s.camera_index == 0], cfg.data, "train")
    val_blocks = heldout_blocks(takes, cfg.data, "val")
    assert len(batches.table) == sum(len(s) for s in train_blocks)
    assert len(val) == sum(len(s) for s in val_blocks)
    table_roots = batches.table.world[:, 0]
    for seq in heldout_blocks([s for s in takes if s.camera_index == 0], cfg.data, "val") + \
            heldout_blocks([s for s in takes if s.camera_index == 0], cfg.data, "test"):
        world = torch.as_tensor(seq.camera.camera_to_world(seq.pose_3d)[:, 0], dtype=torch.float32)
        assert float(torch.cdist(world, table_roots).min()) > 1e-4
