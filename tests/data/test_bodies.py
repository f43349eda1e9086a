import torch

from diffpose3d.data.bodies import scale_bones
from diffpose3d.skeleton import get_skeleton


def _bones(world: torch.Tensor, parents: tuple[int, ...]) -> torch.Tensor:
    return torch.stack([world[:, c] - world[:, p] for c, p in enumerate(parents) if p >= 0], 1)


def test_scale_bones_keeps_directions_root_and_symmetry() -> None:
    sk = get_skeleton("h36m17")
    world = torch.randn(64, sk.num_joints, 3, dtype=torch.float64)
    out = scale_bones(world, sk.parents, sk.flip_permutation(), 0.2, torch.Generator().manual_seed(0))
    before, after = _bones(world, sk.parents), _bones(out, sk.parents)
    ratio = after.norm(dim=-1) / before.norm(dim=-1)
    # every bone only changes length: the cosine with the original bone is 1
    cos = (before * after).sum(-1) / (before.norm(dim=-1) * after.norm(dim=-1))
    assert torch.allclose(cos, torch.ones_like(cos))
    assert torch.equal(out[:, 0], world[:, 0])
    assert ratio.std() > 0.05  # bodies differ
    # a joint and its mirror get the same factor
    children = [c for c, p in enumerate(sk.parents) if p >= 0]
    col = {c: k for k, c in enumerate(children)}
    for left, right in zip(sk.left, sk.right):
        assert torch.allclose(ratio[:, col[left]], ratio[:, col[right]])


def test_scale_bones_zero_spread_is_identity() -> None:
    sk = get_skeleton("h36m17")
    world = torch.randn(4, sk.num_joints, 3)
    assert scale_bones(world, sk.parents, sk.flip_permutation(), 0.0, torch.Generator()) is world
