"""Flatten pose sequences into frame tensors for training and evaluation, with their 2D evidence.

A `FrameSet` holds, per frame: the ground-truth state (u, v, x, y, z), the 2D keypoints the context
encoder sees (the detector's top mode), and the per-joint 2D mixture over (u, v) that is the (u, v)
part of H_K. It also remembers which sequence and frame each row came from, so predictions can be
put back into per-sequence arrays for the evaluation protocols.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diffpose3d.cameras import normalize_screen_coordinates
from diffpose3d.config import EvidenceConfig
from diffpose3d.data.base import PoseSequence
from diffpose3d.skeleton import Skeleton
from diffpose3d.uncertainty.gmm import GaussianMixture


@dataclass
class FrameSet:
    keypoints_uv: torch.Tensor  # (F, J, 2) what the context encoder sees
    uv_gmm: GaussianMixture  # (F, J, M2) over (u, v): the 2D evidence of H_K
    target_uv: torch.Tensor | None  # (F, J, 2) ground-truth 2D, normalised
    target_xyz: torch.Tensor | None  # (F, J, 3) root-relative camera frame, metres
    sequence_index: np.ndarray  # (F,) index into `sequences`
    frame_index: np.ndarray  # (F,) frame within its sequence
    sequences: list[PoseSequence]
    skeleton: Skeleton | None = None
    evidence: EvidenceConfig | None = None
    seed_offset: int = 0
    # Per-frame context of a video model, `(xyz (F, J, 3), f_ST (F, J, C))`, computed over whole
    # sequences (`inference.attach_context`): a frame's row alone cannot give it.
    context: tuple[torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return int(self.keypoints_uv.shape[0])

    def subset(self, index: torch.Tensor | np.ndarray) -> "FrameSet":
        idx = torch.as_tensor(index, dtype=torch.long)
        return FrameSet(
            keypoints_uv=self.keypoints_uv[idx],
            uv_gmm=gmm_index(self.uv_gmm, idx),
            target_uv=None if self.target_uv is None else self.target_uv[idx],
            target_xyz=None if self.target_xyz is None else self.target_xyz[idx],
            sequence_index=self.sequence_index[idx.numpy()],
            frame_index=self.frame_index[idx.numpy()],
            sequences=self.sequences,
            context=None if self.context is None else (self.context[0][idx], self.context[1][idx]),
        )

    def sequence_rows(self) -> list[np.ndarray]:
        """Per sequence that has frames here, its rows in frame order."""
        order = np.lexsort((self.frame_index, self.sequence_index))
        cuts = np.nonzero(np.diff(self.sequence_index[order]))[0] + 1
        return [rows for rows in np.split(order, cuts) if len(rows)]

    def redraw_evidence(self, draw: int) -> None:
        """Draw new synthetic detector evidence (draw 0 is the one built first), in place.

        Training redraws it every epoch, so the networks never see the same detector noise on a
        frame twice; other evidence sources are fixed and left alone.
        """
        if self.evidence is None or self.evidence.source != "synthetic" or self.skeleton is None:
            return
        fresh = build_frames(self.sequences, self.skeleton, self.evidence, seed_offset=self.seed_offset + 1_000_003 * draw)
        self.keypoints_uv, self.uv_gmm = fresh.keypoints_uv, fresh.uv_gmm
        self.context = None  # computed from the old evidence

    def split_by_sequence(self, values: np.ndarray) -> dict[tuple, np.ndarray]:
        """Per-frame rows `values (F, ...)` back into per-sequence arrays keyed by `sequence.key`."""
        out: dict[tuple, np.ndarray] = {}
        for s, seq in enumerate(self.sequences):
            rows = np.nonzero(self.sequence_index == s)[0]
            order = np.argsort(self.frame_index[rows])
            out[seq.key] = values[rows[order]]
        return out


def gmm_index(gmm: GaussianMixture, idx: torch.Tensor) -> GaussianMixture:
    return GaussianMixture(gmm.weights[idx], gmm.means[idx], gmm.covariances[idx])


def build_frames(
    sequences: list[PoseSequence],
    skeleton: Skeleton,
    evidence: EvidenceConfig,
    *,
    seed_offset: int = 0,
) -> FrameSet:
    """Stack the frames of `sequences` and give each the 2D evidence `evidence` asks for."""
    from diffpose3d.evidence import evidence_for_sequence

    kps, gmms, tuv, txyz, seq_idx, frame_idx = [], [], [], [], [], []
    has_3d = all(seq.pose_3d is not None for seq in sequences)
    for s, seq in enumerate(sequences):
        if len(seq) == 0:
            continue
        w, h = seq.image_size
        keypoints_uv, gmm = evidence_for_sequence(seq, skeleton, evidence, seed=evidence.seed + seed_offset + s)
        kps.append(keypoints_uv)
        gmms.append(gmm)
        tuv.append(torch.as_tensor(normalize_screen_coordinates(seq.keypoints_2d, w, h), dtype=torch.float32))
        if has_3d:
            txyz.append(torch.as_tensor(seq.pose_3d_root_relative(), dtype=torch.float32))
        seq_idx.append(np.full(len(seq), s))
        frame_idx.append(np.arange(len(seq)))
    if not kps:
        raise ValueError("no frames to build: every sequence is empty")
    return FrameSet(
        keypoints_uv=torch.cat(kps),
        uv_gmm=GaussianMixture(
            torch.cat([g.weights for g in gmms]),
            torch.cat([g.means for g in gmms]),
            torch.cat([g.covariances for g in gmms]),
        ),
        target_uv=torch.cat(tuv),
        target_xyz=torch.cat(txyz) if has_3d else None,
        sequence_index=np.concatenate(seq_idx),
        frame_index=np.concatenate(frame_idx),
        sequences=sequences,
        skeleton=skeleton,
        evidence=evidence,
        seed_offset=seed_offset,
    )
