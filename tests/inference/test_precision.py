"""`inference.precision`: g's blocks in bfloat16 keep the default bundle's poses (the stated
tolerance), and the setting resolves and validates as documented."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpose3d import DiffPose
from diffpose3d.config import load_config
from diffpose3d.errors import ConfigError
from diffpose3d.inference.precision import native_bf16, use_bf16
from diffpose3d.model import DiffPoseModel

# The tolerance README and `predict --help` state: the mean pose within 0.5 mm of float32 on average
# (measured 0.28 mm on 600 frames of a walk), no joint of the mean pose off by more than 5 mm.
MEAN_MM, MAX_MM = 0.5, 5.0


def _walk(frames: int = 64) -> np.ndarray:
    """COCO-17 keypoints (pixels, 640 x 480) of a figure swinging its legs, with detector jitter."""
    rng = np.random.default_rng(0)
    base = np.array([[320, 100], [330, 90], [310, 90], [340, 95], [300, 95], [360, 150], [280, 150],
                     [375, 210], [265, 210], [380, 265], [260, 265], [345, 270], [295, 270],
                     [350, 350], [290, 350], [352, 430], [288, 430]], np.float32)
    t = np.arange(frames)[:, None]
    kp = np.repeat(base[None], frames, 0)
    kp[:, [13, 15], 0] += 15 * np.sin(t / 10)
    kp[:, [14, 16], 0] -= 15 * np.sin(t / 10)
    return kp + rng.normal(0, 2, size=kp.shape).astype(np.float32)


def test_bf16_blocks_keep_the_default_bundles_poses():
    torch.set_num_threads(1)
    kp = _walk()
    results = {p: DiffPose.load(precision=p).from_keypoints(kp, image_size=(640, 480), layout="coco17")
               for p in ("fp32", "bf16")}
    diff = np.linalg.norm(results["fp32"].pose_3d - results["bf16"].pose_3d, axis=-1) * 1000.0
    assert diff.mean() < MEAN_MM and diff.max() < MAX_MM
    assert diff.max() > 0  # bf16 really ran
    spread = np.abs(results["fp32"].uncertainty - results["bf16"].uncertainty) * 1000.0
    assert np.nanmean(spread) < MEAN_MM


def test_the_model_reports_and_switches_its_precision():
    model = DiffPoseModel(load_config(None, ["model.denoiser.width=16", "model.denoiser.blocks=1"]))
    model.use_precision("bf16")
    assert model.precision == "bf16"
    model.use_precision("fp32")
    assert model.precision == "fp32"
    model.use_precision("auto")
    assert model.precision == ("bf16" if native_bf16(torch.device("cpu")) else "fp32")
    with pytest.raises(ConfigError, match="unknown inference precision 'fp16'"):
        model.use_precision("fp16")
    assert use_bf16("bf16", torch.device("cpu")) and not use_bf16("fp32", torch.device("cpu"))


def test_precision_is_a_checked_setting():
    assert load_config(None).inference.precision == "auto"
    with pytest.raises(ConfigError, match="inference.precision"):
        load_config(None, ["inference.precision=half"])


def test_g_under_a_callers_autocast_still_trains():
    """train.precision bf16 wraps g in autocast: forward (bf16 blocks off) must stay inside it."""
    from diffpose3d.training.loop import Autocast

    model = DiffPoseModel(load_config(None, ["model.denoiser.width=16", "model.denoiser.blocks=1"]))
    j, c = model.skeleton.num_joints, model.conditioning_dim
    out = Autocast(model.denoiser)(torch.randn(3, j, 5), torch.tensor([1, 2, 3]), torch.randn(3, j, c))
    out.sum().backward()
    assert out.dtype == torch.float32 and model.denoiser.blocks[0].mlp[0].weight.grad is not None
