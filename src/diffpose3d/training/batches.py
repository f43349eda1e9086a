"""Training batches: what both stages' losses draw from.

- `FrameBatches`: a precomputed `FrameSet` (its synthetic evidence redrawn every epoch); the small
  data sets (HumanEva-I) and the video encoder's windows.
- `TableBatches`: a `data.pose_table.PoseTable` seen on the fly. Each sample is one mocap frame
  through one of its real cameras or (`data.virtual.share`) a random virtual camera, with 2D evidence
  drawn per sample: the exact 2D (a tight component), a real detector's keypoints (`data.data_2d`,
  real cameras only), or the synthetic detector; joints outside the image get no evidence (the broad
  mixture, as `predict` gives a joint it cannot see), so truncation by the image border is trained.
  Everything is drawn from the loop's generator: the batch of a step is a pure function of the
  seed and the step, and a resumed run continues exactly.

Every batch is a `Batch` of the global batch's samples; losses slice their rank's rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffpose3d.cameras import inside_image
from diffpose3d.config import EvidenceConfig, VirtualCameraConfig
from diffpose3d.data.bodies import scale_bones
from diffpose3d.data.frames import FrameSet
from diffpose3d.data.mirror import flip_gmm, flip_keypoints, flip_pose
from diffpose3d.data.pose_table import PoseTable
from diffpose3d.data.virtual_cameras import random_views
from diffpose3d.evidence.mixture2d import broad_mixture, fill_missing, point_mixture, top_mode
from diffpose3d.evidence.person_frame import FOCAL_GUESS
from diffpose3d.evidence.synthetic import synthetic_gmm
from diffpose3d.mixtures.gmm import GaussianMixture, top_components
from diffpose3d.skeleton import Skeleton

# The synthetic detector works in pixels: the table's views are scaled to a 1000-pixel-wide image.
PIXELS_PER_UV = 500.0
FOCAL_NOISE = 0.2  # log-normal spread of the focal length the model is told (a guess, not a calibration)
FOCAL_GUESS_SHARE = 0.3  # of the samples told the fixed guess for their image shape instead


@dataclass
class Batch:
    """`keypoints_uv (B, J, 2)` what a detector reports (the evidence's top mode), `uv_gmm (B, J, M, 2)`
    its mixtures, `target_uv (B, J, 2)` the true 2D, `target_xyz (B, J, 3)` root-relative camera-frame
    3D, `focal (B,)` the focal length the model is told; image uv throughout."""

    keypoints_uv: torch.Tensor
    uv_gmm: GaussianMixture
    target_uv: torch.Tensor
    target_xyz: torch.Tensor
    focal: torch.Tensor

    def rows(self, rows: torch.Tensor, device: torch.device) -> Batch:
        """This rank's rows, on `device`."""
        return Batch(self.keypoints_uv[rows].to(device), self.uv_gmm[rows].to(device), self.target_uv[rows].to(device),
                     self.target_xyz[rows].to(device), self.focal[rows].to(device))

    def flipped(self, perm: torch.Tensor) -> Batch:
        return Batch(flip_keypoints(self.keypoints_uv, perm), flip_gmm(self.uv_gmm, perm),
                     flip_keypoints(self.target_uv, perm), flip_pose(self.target_xyz, perm), self.focal)


class FrameBatches:
    """Batches of a precomputed `FrameSet`."""

    def __init__(self, frames: FrameSet) -> None:
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def new_epoch(self, draw: int) -> None:
        self.frames.redraw_evidence(draw)

    def batch(self, index: torch.Tensor, flip: bool, perm: torch.Tensor, gen: torch.Generator) -> Batch:
        f = self.frames
        b = Batch(f.keypoints_uv[index], f.uv_gmm[index], f.target_uv[index], f.target_xyz[index], f.focal[index])
        return b.flipped(perm) if flip else b


class TableBatches:
    """Batches of a `PoseTable`, seen through real or virtual cameras (module docstring)."""

    def __init__(self, table: PoseTable, skeleton: Skeleton, evidence: EvidenceConfig, virtual: VirtualCameraConfig) -> None:
        self.table, self.skeleton, self.evidence, self.virtual = table, skeleton, evidence, virtual

    def __len__(self) -> int:
        return len(self.table)

    def new_epoch(self, draw: int) -> None:
        """Nothing to redraw: every batch draws its own views and evidence."""

    def batch(self, index: torch.Tensor, flip: bool, perm: torch.Tensor, gen: torch.Generator) -> Batch:
        t, b = self.table, len(index)
        cams = torch.randint(t.num_cameras, (b,), generator=gen)
        xyz, uv = t.real_views(index, cams)
        seq = t.sequence[index]
        focal = t.focal[seq, cams]
        size = t.image_size[seq, cams].to(uv.dtype)
        aspect = size[:, 1] / size[:, 0]
        virtual = torch.rand(b, generator=gen) < self.virtual.share
        if bool(virtual.any()):
            world = scale_bones(t.world[index[virtual]], self.skeleton.parents, self.skeleton.flip_permutation(),
                                self.virtual.bone_scale, gen)
            views = random_views(world, t.up, self.virtual, gen)
            xyz[virtual], uv[virtual], focal[virtual], aspect[virtual] = views.xyz, views.uv, views.focal, views.aspect
        detections = None if t.detections is None else t.detections[index, cams]
        gmm, missing = self._evidence(uv, aspect, virtual, detections, gen)
        keypoints = fill_missing(top_mode(gmm), missing, self.skeleton.parents)
        told = focal * torch.exp(FOCAL_NOISE * torch.randn(b, generator=gen))
        guess = torch.rand(b, generator=gen) < FOCAL_GUESS_SHARE
        told = torch.where(guess, 2.0 * FOCAL_GUESS * torch.clamp(aspect, min=1.0), told)
        batch = Batch(keypoints, gmm, uv, xyz, told)
        return batch.flipped(perm) if flip else batch

    def _evidence(self, uv: torch.Tensor, aspect: torch.Tensor, virtual: torch.Tensor,
                  detections: torch.Tensor | None, gen: torch.Generator) -> tuple[GaussianMixture, torch.Tensor]:
        """Per sample its kind of evidence (exact, detection, synthetic) as `(B, J, 2, 2)` mixtures,
        and the joints without evidence `(B, J)` (outside the image, or the detector lacks them)."""
        e, (b, j) = self.evidence, uv.shape[:2]
        px = uv * PIXELS_PER_UV
        synthetic = synthetic_gmm(px, (self.skeleton.left, self.skeleton.right), e.synthetic, generator=gen)
        gmm = GaussianMixture(synthetic.weights, synthetic.means / PIXELS_PER_UV, synthetic.covariances / PIXELS_PER_UV**2)
        kind = torch.rand(b, generator=gen)
        exact = kind < e.exact_share
        gmm = gmm.where(exact[:, None].expand(b, j), _two(point_mixture(uv, e.keypoint_std_px / PIXELS_PER_UV)))
        missing = ~inside_image(uv, aspect)
        if detections is not None:
            found = torch.isfinite(detections).all(-1)
            use = (~virtual) & (kind >= e.exact_share) & (kind < e.exact_share + e.detection_share) & found.any(-1)
            # as an evaluation reads a detections file: a tight component at each keypoint, so the model
            # learns that tight evidence can still be a detector's
            det = point_mixture(torch.nan_to_num(detections), e.keypoint_std_px / PIXELS_PER_UV)
            gmm = gmm.where(use[:, None].expand(b, j), _two(det))
            missing = missing | (use[:, None] & ~found)
        broad = broad_mixture((b, j), aspect, 2)
        return gmm.where(missing, broad), missing


def _two(gmm: GaussianMixture) -> GaussianMixture:
    return top_components(gmm, 2)
