"""The optional ONNX Runtime backend of g: same numbers as PyTorch, re-exported when weights change."""

import pytest
import torch

from diffpose3d.bundle import load_bundle
from diffpose3d.config import InferenceConfig
from diffpose3d.errors import ConfigError
from diffpose3d.evidence.mixture2d import point_mixture

pytest.importorskip("onnx", reason="optional backend: pip install 'diffpose3d[onnx]'")
pytest.importorskip("onnxruntime", reason="optional backend: pip install 'diffpose3d[onnx]'")


def _sample(model, kp, gmm):
    inference = InferenceConfig(hypotheses=3, steps=2, antithetic=False)
    states, _ = model.sample(kp, gmm, inference, generator=torch.Generator().manual_seed(0))
    return states


def test_onnxruntime_backend_matches_torch_and_follows_weight_updates(tiny_bundle):
    model, _ = load_bundle(tiny_bundle)
    kp = torch.rand(40, model.skeleton.num_joints, 2, generator=torch.Generator().manual_seed(1)) - 0.5
    gmm = point_mixture(kp, 0.01)
    eager = _sample(model, kp, gmm)
    model.use_backend("onnxruntime")
    assert torch.allclose(_sample(model, kp, gmm), eager, atol=1e-5)
    with torch.no_grad():
        model.denoiser.head.bias.add_(0.05)  # g's output moves: a stale ONNX copy would not
    moved = _sample(model, kp, gmm)
    assert (moved - eager).abs().max() > 1e-3
    model.use_backend("torch")
    assert torch.allclose(_sample(model, kp, gmm), moved, atol=1e-5)


def test_unknown_backend_is_a_config_error(tiny_bundle):
    model, _ = load_bundle(tiny_bundle)
    with pytest.raises(ConfigError, match="unknown inference backend"):
        model.use_backend("tensorrt")


def test_predict_cli_backend_option_gives_the_same_poses(tiny_bundle, tmp_path):
    import numpy as np

    from diffpose3d.cli import main
    from diffpose3d.inference.outputs import load_result_npz

    kp = np.random.default_rng(0).uniform(50, 400, size=(6, 17, 3)).astype(np.float32)
    kp[..., 2] = 0.9
    src = tmp_path / "people.npz"
    np.savez(src, keypoints=kp, image_size=np.array([640, 480]), layout=np.array("coco17"))
    poses = []
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / backend
        args = ["predict", str(src), "--out", str(out), "--checkpoint", str(tiny_bundle), "--quiet", "--backend", backend,
                "--precision", "fp32"]  # ONNX Runtime runs float32
        assert main(args) == 0
        poses.append(load_result_npz(out / "people.npz").pose_3d)
    np.testing.assert_allclose(poses[0], poses[1], atol=1e-5)
