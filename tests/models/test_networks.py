import pytest
import torch

from diffpose3d.models.context_frame import FrameContextEncoder
from diffpose3d.models.denoiser import Denoiser, count_parameters
from diffpose3d.models.graph import TrunkSize

H36M_PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]
SMALL = [-1, 0, 1, 0, 3]


def test_default_sizes() -> None:
    n_denoiser = count_parameters(Denoiser(H36M_PARENTS))
    n_encoder = count_parameters(FrameContextEncoder(H36M_PARENTS))
    assert 0.6e6 < n_denoiser < 1.3e6, n_denoiser
    assert 0.3e6 < n_encoder < 1.0e6, n_encoder


@pytest.mark.parametrize("context_per_block", [True, False])
def test_denoiser_shapes_and_gradients(context_per_block: bool) -> None:
    torch.manual_seed(0)
    model = Denoiser(SMALL, context_dim=6, num_steps=10, size=TrunkSize(width=16, blocks=2, heads=2),
                     context_per_block=context_per_block)
    h = torch.randn(3, 5, 5, requires_grad=True)
    ctx = torch.randn(3, 5, 6, requires_grad=True)
    out = model(h, torch.tensor([0, 4, 10]), ctx)
    assert out.shape == (3, 5, 5)
    out.square().sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    assert ctx.grad is not None and ctx.grad.abs().sum() > 0
    for name, p in model.named_parameters():
        assert p.grad is not None, name


def test_denoiser_depends_on_step_and_context() -> None:
    torch.manual_seed(0)
    model = Denoiser(SMALL, context_dim=6, num_steps=10, size=TrunkSize(width=16, blocks=1, heads=2)).eval()
    h, ctx = torch.randn(2, 5, 5), torch.randn(2, 5, 6)
    base = model(h, torch.tensor([3, 3]), ctx)
    assert not torch.allclose(base, model(h, torch.tensor([7, 7]), ctx))
    assert not torch.allclose(base, model(h, torch.tensor([3, 3]), ctx + 1))
    # Poses in a batch do not interact.
    assert torch.allclose(base[:1], model(h[:1], torch.tensor([3]), ctx[:1]), atol=1e-6)


def test_unconditional_denoiser_and_float64() -> None:
    model = Denoiser(SMALL, context_dim=0, size=TrunkSize(width=8, blocks=1, heads=2)).double()
    out = model(torch.randn(2, 5, 5, dtype=torch.float64), torch.tensor([1, 2]), None)
    assert out.dtype == torch.float64


def test_denoiser_rejects_wrong_skeleton() -> None:
    model = Denoiser(SMALL, context_dim=6, size=TrunkSize(width=8, blocks=1, heads=2))
    with pytest.raises(AssertionError):
        model(torch.randn(2, 4, 5), torch.tensor([1, 2]), torch.randn(2, 4, 6))


def test_encoder_shapes_root_and_gradients() -> None:
    torch.manual_seed(0)
    enc = FrameContextEncoder(H36M_PARENTS, size=TrunkSize(width=16, blocks=2, heads=4))
    uv = torch.randn(4, 17, 2, requires_grad=True)
    xyz, feats = enc(uv)
    assert xyz.shape == (4, 17, 3) and feats.shape == (4, 17, 16)
    assert torch.equal(xyz[:, 0], torch.zeros(4, 3))
    (xyz.square().sum() + feats.sum()).backward()
    assert uv.grad is not None and uv.grad.abs().sum() > 0
    for name, p in enc.named_parameters():
        assert p.grad is not None, name


def test_encoder_features_feed_the_denoiser() -> None:
    enc = FrameContextEncoder(SMALL, size=TrunkSize(width=12, blocks=1, heads=2)).eval()
    model = Denoiser(SMALL, context_dim=12, size=TrunkSize(width=8, blocks=1, heads=2)).eval()
    uv = torch.randn(3, 5, 2)
    xyz, feats = enc(uv)
    h = torch.cat([uv, xyz], -1)
    with torch.inference_mode():
        assert model(h, torch.zeros(3, dtype=torch.long), feats).shape == (3, 5, 5)
