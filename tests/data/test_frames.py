"""Frames of dataset sequences and their 2D evidence."""

import numpy as np
import torch

from diffpose3d.cameras import normalize_screen_coordinates
from diffpose3d.skeleton import get_skeleton


def test_gmm_file_evidence_merges_a_split_peak_and_keeps_a_far_mode():
    # An authors'-layout fit where EM split joint 0's peak into three components 2 px apart (std
    # 2 px) and kept a second, separate mode 60 px away: the model reads one component per mode.
    from diffpose3d.config import EvidenceConfig
    from diffpose3d.data.base import PoseSequence
    from diffpose3d.data.frames import evidence_for_sequence

    sk = get_skeleton("humaneva15")
    j = sk.num_joints
    kp = np.full((1, j, 2), 300.0, np.float32) + np.arange(j, dtype=np.float32)[None, :, None] * 10
    arr = np.zeros((1, j, 5, 5), np.float32)
    arr[..., 0] = [1.0, 0.0, 0.0, 0.0, 0.0]
    arr[..., 1:3] = kp[:, :, None]
    arr[..., 3:5] = 4.0
    arr[0, 0, :4, 0] = [0.25, 0.25, 0.2, 0.3]
    arr[0, 0, :4, 1] = [100.0, 102.0, 104.0, 160.0]
    arr[0, 0, :4, 2] = 50.0
    seq = PoseSequence("humaneva", "S1", "Walk", "Walk 1", 0, "humaneva15", kp, (640, 480), gmm_2d=arr)
    keypoints, gmm = evidence_for_sequence(seq, sk, EvidenceConfig(source="gmm_file"))
    w = gmm.weights[0, 0]
    assert int((w > 0).sum()) == 2
    torch.testing.assert_close(w[:2], torch.tensor([0.7, 0.3]))
    peak = normalize_screen_coordinates(np.array([[[(0.25 * 100 + 0.25 * 102 + 0.2 * 104) / 0.7, 50.0]]]), 640, 480)
    torch.testing.assert_close(keypoints[0, 0], torch.as_tensor(peak[0, 0], dtype=torch.float32))
    far = normalize_screen_coordinates(np.array([[[160.0, 50.0]]]), 640, 480)
    torch.testing.assert_close(gmm.means[0, 0, 1], torch.as_tensor(far[0, 0], dtype=torch.float32))
