"""The context of many frames: the frame lifter in batches, and the local motion g sees."""

import numpy as np
import torch

from diffpose3d.config import load_config
from diffpose3d.context import local_motion, run_encoder
from diffpose3d.model import DiffPoseModel


def test_run_encoder_batches_the_frame_lifter_and_restores_its_mode() -> None:
    torch.manual_seed(0)
    model = DiffPoseModel(load_config(None, ["model.encoder.width=16", "model.encoder.blocks=1"]))
    model.encoder.train()
    kp = torch.randn(5000, 15, 2)  # more than one batch of 4096
    xyz, feats = run_encoder(model.encoder, kp, None, model.config.model.encoder, model.skeleton.flip_permutation())
    assert model.encoder.training  # restored
    model.encoder.eval()
    with torch.no_grad():
        ref_xyz, ref_feats = model.encoder(kp[4090:4100])
    torch.testing.assert_close(xyz[4090:4100], ref_xyz)
    torch.testing.assert_close(feats[4090:4100], ref_feats)
    assert xyz.shape == (5000, 15, 3) and feats.shape == (5000, 15, 16)


def test_local_motion_is_the_neighbours_offset_clamped_at_each_sequence_end() -> None:
    values = torch.arange(7, dtype=torch.float32).reshape(7, 1, 1) ** 2  # frames 0..6, one joint, one channel
    rows = [np.array([0, 1, 2, 3]), np.array([6, 5, 4])]  # two sequences, the second stored backwards
    motion = local_motion(values, rows, radius=2)  # channels: offsets -2, -1, +1, +2
    assert motion.shape == (7, 1, 4)
    # frame 1 (sequence 1, position 1): neighbours 0 (clamped for -2), 0, 4, 9
    assert motion[1, 0].tolist() == [-1.0, -1.0, 3.0, 8.0]
    # frame 5 (sequence 2, position 1: its order is 36, 25, 16): neighbours 36, 36, 16, 16 (clamped)
    assert motion[5, 0].tolist() == [11.0, 11.0, -9.0, -9.0]
    assert torch.equal(local_motion(values, [np.arange(7)], radius=1)[3, 0], torch.tensor([-5.0, 7.0]))
    # scaled and written into a slice of a larger tensor (the model's context), in place
    context = torch.full((7, 1, 5), -1.0)
    local_motion(values, rows, radius=2, scale=100.0, out=context[..., 1:])
    assert torch.equal(context[..., 1:], 100.0 * motion) and torch.all(context[..., 0] == -1.0)
