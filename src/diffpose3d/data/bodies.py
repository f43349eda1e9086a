"""Bodies of other proportions: every bone of a 3D pose lengthened or shortened at random.

Used to show training's virtual views people built unlike the few training subjects
(`data.virtual.bone_scale`) and to calibrate the out-of-domain widening on such bodies
(`uncertainty.samples`).
"""

from __future__ import annotations

import torch


def scale_bones(world: torch.Tensor, parents: tuple[int, ...], mirror: list[int], sigma: float,
                gen: torch.Generator) -> torch.Tensor:
    """`(B, J, 3)` poses with every bone (child - parent) scaled by a log-normal factor of spread
    `sigma` per sample, the same for a joint and its mirror, so the body stays left/right symmetric.
    The root stays where it was; each child moves with its parent, so the chain's angles are kept."""
    if sigma <= 0:
        return world
    b, j = world.shape[:2]
    bone = torch.minimum(torch.arange(j), torch.tensor(mirror))[None].expand(b, j)  # one id per left/right pair
    factor = torch.exp(sigma * torch.randn(b, j, generator=gen, dtype=world.dtype)).gather(1, bone)
    out = world.clone()
    for c, p in enumerate(parents):
        if p >= 0:
            out[:, c] = out[:, p] + factor[:, c, None] * (world[:, c] - world[:, p])
    return out
