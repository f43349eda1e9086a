"""The MixSTE-style video lifter: shapes, root, short clips, gradients, use of other frames."""

import pytest
import torch

from diffpose3d.models.context_video import VideoContextEncoder
from diffpose3d.models.graph import TrunkSize
from diffpose3d.skeleton import get_skeleton

PARENTS = list(get_skeleton("humaneva15").parents)


def small(frames: int = 9, in_dim: int = 2) -> VideoContextEncoder:
    torch.manual_seed(0)
    return VideoContextEncoder(PARENTS, in_dim=in_dim, frames=frames, size=TrunkSize(width=32, blocks=2, heads=4))


@pytest.mark.parametrize("in_dim", [2, 3])
def test_shapes_and_exact_root(in_dim: int) -> None:
    enc = small(in_dim=in_dim)
    xyz, feats = enc(torch.randn(3, 9, 15, in_dim))
    assert xyz.shape == (3, 9, 15, 3) and feats.shape == (3, 9, 15, 32)
    assert torch.equal(xyz[:, :, 0], torch.zeros(3, 9, 3))
    assert torch.isfinite(xyz).all() and torch.isfinite(feats).all()


def test_clips_shorter_than_the_window_and_too_long_ones() -> None:
    enc = small(frames=9).eval()
    for T in (1, 2, 5):
        xyz, feats = enc(torch.randn(2, T, 15, 2))
        assert xyz.shape == (2, T, 15, 3) and feats.shape == (2, T, 15, 32)
    # A centred slice of the temporal embedding.
    assert torch.equal(enc.temporal_embedding(3), enc.time_pos[:, 3:6])
    with pytest.raises(AssertionError):
        enc(torch.randn(1, 10, 15, 2))


def test_gradients_reach_every_parameter() -> None:
    enc = small()
    xyz, feats = enc(torch.randn(2, 9, 15, 2))
    (xyz.square().sum() + feats.sum()).backward()
    missing = [n for n, p in enc.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, missing


def test_output_at_one_frame_depends_on_the_other_frames() -> None:
    enc = small().eval()
    uv = torch.randn(1, 9, 15, 2)
    other = uv.clone()
    other[0, 7] += 0.5  # change frame 7 only
    with torch.no_grad():
        a, fa = enc(uv)
        b, fb = enc(other)
    assert (a[0, 2] - b[0, 2]).abs().max() > 1e-5  # frame 2 sees frame 7 through temporal attention
    assert (fa[0, 2] - fb[0, 2]).abs().max() > 1e-5
    # Batch rows stay independent.
    two = torch.cat([uv, other])
    with torch.no_grad():
        c, _ = enc(two)
    assert torch.allclose(c[0], a[0], atol=1e-5) and torch.allclose(c[1], b[0], atol=1e-5)


def test_parameter_count_scales_with_width_squared_and_depth() -> None:
    def count(width: int, depth: int) -> int:
        enc = VideoContextEncoder(PARENTS, frames=27, size=TrunkSize(width=width, blocks=depth))
        return sum(p.numel() for p in enc.parameters())

    assert count(128, 4) / count(128, 2) == pytest.approx(2.0, rel=0.03)
    assert count(128, 4) / count(64, 4) == pytest.approx(4.0, rel=0.05)
