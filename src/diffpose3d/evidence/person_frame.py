"""The 2D evidence in the person's own frame: what a camera-robust model sees (`model.encoder.inputs:
person`).

The field normalises 2D by the image width, so a person's size and place in the frame are read as
pose. Here the keypoints and their mixtures are centred on the person and scaled by its size (the
RMS distance of its present joints from their centre), and what depth needs is given explicitly, per
frame: the centre's image position, the log of the size and the log of the focal length (a guess
where the camera is unknown). A joint counts as present when its evidence is tighter than
`PRESENT_STD` (uv units); a broad joint (confidence 0, out of frame) neither places nor sizes the
person. Per joint the encoder also gets the log of its 2D spread (`GaussianMixture.spread`) relative
to the size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffpose3d.mixtures.gmm import GaussianMixture

PRESENT_STD = 0.25  # uv units: a joint with a broader 2D evidence does not place or size the person
GLOBAL_CHANNELS = 3  # centre u, centre v, log size; then log focal
CHANNELS = 2 + 1 + GLOBAL_CHANNELS + 1  # per joint: position, log spread, then the frame's globals
CENTRE_U = 3  # the channel of the centre's u (it changes sign under a mirror)
# Where the camera is unknown: a focal length of this many times the image's longer side.
FOCAL_GUESS = 1.0


def focal_guess(image_size: tuple[int, int]) -> float:
    """The focal length `f / (w / 2)` assumed for an image of `image_size` (w, h) from an unknown camera."""
    w, h = image_size
    return 2.0 * FOCAL_GUESS * max(w, h) / w


@dataclass
class PersonFrame:
    """Per frame the person's centre `(B, 1, 2)` and size `(B, 1, 1)` in image uv."""

    centre: torch.Tensor
    size: torch.Tensor

    def points(self, uv: torch.Tensor) -> torch.Tensor:
        """Image uv `(B, ..., 2)` -> person frame."""
        shape = (uv.shape[0],) + (1,) * (uv.dim() - 2)
        return (uv - self.centre.reshape(shape + (2,))) / self.size.reshape(shape + (1,))

    def mixture(self, gmm: GaussianMixture) -> GaussianMixture:
        """Per-joint mixtures `(B, J, M, 2)` in image uv -> person frame."""
        s = self.size.reshape(-1, 1, 1, 1)
        return GaussianMixture(gmm.weights, self.points(gmm.means), gmm.covariances / s[..., None] ** 2)


def person_frame(keypoints_uv: torch.Tensor, evidence_spread: torch.Tensor) -> PersonFrame:
    """Centre and size of each frame's person from its present joints (all joints when fewer than
    two are present); `evidence_spread (B, J)` is `GaussianMixture.spread` of the 2D evidence."""
    present = evidence_spread < PRESENT_STD
    present = torch.where(present.sum(1, keepdim=True) >= 2, present, torch.ones_like(present))
    w = present.to(keypoints_uv.dtype).unsqueeze(-1)
    n = w.sum(1, keepdim=True)
    centre = (keypoints_uv * w).sum(1, keepdim=True) / n
    size = (((keypoints_uv - centre) * w).square().sum(-1, keepdim=True).sum(1, keepdim=True) / n).sqrt()
    return PersonFrame(centre, size.clamp_min(1e-3))


def encoder_input(keypoints: torch.Tensor, evidence_spread: torch.Tensor, frame: PersonFrame,
                  focal: torch.Tensor) -> torch.Tensor:
    """The encoder's `(B, J, CHANNELS)`: person-frame keypoints `(B, J, 2)`, the log relative spread,
    and the frame's centre, log size and log focal `(B,)`."""
    rel_spread = (evidence_spread / frame.size[:, :, 0]).clamp(1e-4, 1e2).log().unsqueeze(-1)
    glob = torch.cat([frame.centre[:, 0], frame.size[:, 0].log(), focal.to(keypoints).reshape(-1, 1).log()], -1)
    return torch.cat([keypoints, rel_spread, glob[:, None].expand(-1, keypoints.shape[1], -1)], -1)
