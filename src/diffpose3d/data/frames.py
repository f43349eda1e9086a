"""Flatten pose sequences into frame tensors for training and evaluation, with their 2D evidence.

A `FrameSet` holds, per frame: the ground-truth state (u, v, x, y, z), the 2D keypoints the context
encoder sees (the detector's top mode), and the per-joint 2D mixture over (u, v) that is the (u, v)
part of H_K. It also remembers which sequence and frame each row came from, so predictions can be
put back into per-sequence arrays for the evaluation protocols.

The 2D evidence of a dataset sequence comes from `evidence.source` (`evidence_for_sequence`):

- `keypoints`: one tight component at the file's 2D keypoints (ground truth for the field's "GT 2D"
  setting, or a detector's keypoints such as CPN's);
- `synthetic`: detector-like multi-modal evidence made from the ground-truth 2D
  (`evidence.synthetic`), so training and tests exercise left/right confusion and occlusion;
- `gmm_file`: the per-joint mixtures of an authors'-layout `*_gmm.npz` (attached to the sequence),
  with components that split one mode merged back into one (as `heatmaps_to_gmm` does);
- `confidence`: keypoints + confidence from a detector or a keypoints file (a stand-in mixture whose
  spread follows the confidence, `evidence.mixture2d.keypoints_to_gmm`).
The encoder's keypoints are the mean of each joint's heaviest component (what a detector's argmax
would report).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from diffpose3d.cameras import normalize_screen_coordinates, uv_per_pixel
from diffpose3d.config import EvidenceConfig, SyntheticDetectorConfig
from diffpose3d.data.base import PoseSequence
from diffpose3d.data.gmm_files import decode_gmm
from diffpose3d.errors import ConfigError
from diffpose3d.evidence.mixture2d import (
    fill_missing,
    map_gmm,
    mixture_to_uv,
    point_mixture,
    top_mode,
)
from diffpose3d.evidence.person_frame import focal_guess
from diffpose3d.mixtures.gmm import GaussianMixture, merge_close_components
from diffpose3d.skeleton import Skeleton, get_skeleton, mapping_indices

SOURCES = ("keypoints", "synthetic", "gmm_file", "confidence")


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
    # sequences (`inference.lifting.attach_context`): a frame's row alone cannot give it.
    context: tuple[torch.Tensor, torch.Tensor] | None = None
    focal: torch.Tensor | None = None  # (F,) the camera's focal length f / (w / 2), or the guess

    def __len__(self) -> int:
        return int(self.keypoints_uv.shape[0])

    def subset(self, index: torch.Tensor | np.ndarray) -> FrameSet:
        idx = torch.as_tensor(index, dtype=torch.long)
        return FrameSet(
            keypoints_uv=self.keypoints_uv[idx],
            uv_gmm=self.uv_gmm[idx],
            target_uv=None if self.target_uv is None else self.target_uv[idx],
            target_xyz=None if self.target_xyz is None else self.target_xyz[idx],
            sequence_index=self.sequence_index[idx.numpy()],
            frame_index=self.frame_index[idx.numpy()],
            sequences=self.sequences,
            context=None if self.context is None else (self.context[0][idx], self.context[1][idx]),
            focal=None if self.focal is None else self.focal[idx],
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


def build_frames(
    sequences: list[PoseSequence],
    skeleton: Skeleton,
    evidence: EvidenceConfig,
    *,
    seed_offset: int = 0,
) -> FrameSet:
    """Stack the frames of `sequences` and give each the 2D evidence `evidence` asks for."""
    kps, gmms, tuv, txyz, seq_idx, frame_idx, focals = [], [], [], [], [], [], []
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
        focal = float(seq.camera.focal[0]) / (w / 2.0) if seq.camera is not None else focal_guess((w, h))
        focals.append(torch.full((len(seq),), focal))
    if not kps:
        raise ValueError("no frames to build: every sequence is empty")
    return FrameSet(
        keypoints_uv=torch.cat(kps),
        uv_gmm=GaussianMixture.cat(gmms),
        target_uv=torch.cat(tuv),
        target_xyz=torch.cat(txyz) if has_3d else None,
        sequence_index=np.concatenate(seq_idx),
        frame_index=np.concatenate(frame_idx),
        sequences=sequences,
        skeleton=skeleton,
        evidence=evidence,
        seed_offset=seed_offset,
        focal=torch.cat(focals),
    )



def build_frames_cut(
    sequences: list[PoseSequence],
    skeleton: Skeleton,
    evidence: EvidenceConfig,
    cut: slice,
    *,
    seed_offset: int = 0,
    whole: Callable[[FrameSet], FrameSet] | None = None,
) -> FrameSet:
    """The frames `cut` (e.g. `slice(offset, None, stride)`) of every sequence, as a frame set over
    the sequences cut so. With `whole`, each sequence is first built in full (its evidence drawn as
    `build_frames` draws it for the whole list) and passed through `whole`, then cut: a video model's
    context (`inference.lifting.attach_context`) needs each frame's consecutive neighbours, which a
    stride would thin out."""
    scored = [s.slice(cut.start, cut.stop, cut.step) for s in sequences]
    if whole is None:
        return build_frames(scored, skeleton, evidence, seed_offset=seed_offset)
    parts = []
    for s, seq in enumerate(sequences):
        rows = np.arange(len(seq))[cut]
        if len(rows):
            full = whole(build_frames([seq], skeleton, evidence, seed_offset=seed_offset + s))
            parts.append(replace(full.subset(rows), sequence_index=np.full(len(rows), s), frame_index=np.arange(len(rows))))
    if not parts:
        raise ValueError("no frames to build: every sequence is empty")
    contexts = [p.context for p in parts]
    return FrameSet(
        keypoints_uv=torch.cat([p.keypoints_uv for p in parts]),
        uv_gmm=GaussianMixture.cat([p.uv_gmm for p in parts]),
        target_uv=torch.cat([p.target_uv for p in parts]),
        target_xyz=None if parts[0].target_xyz is None else torch.cat([p.target_xyz for p in parts]),
        sequence_index=np.concatenate([p.sequence_index for p in parts]),
        frame_index=np.concatenate([p.frame_index for p in parts]),
        sequences=scored,
        skeleton=skeleton,
        evidence=evidence,
        seed_offset=seed_offset,
        context=None if contexts[0] is None else (torch.cat([c[0] for c in contexts]), torch.cat([c[1] for c in contexts])),
        focal=torch.cat([p.focal for p in parts]),
    )


def synthetic_for_layout(cfg: SyntheticDetectorConfig, model: Skeleton, data: Skeleton) -> SyntheticDetectorConfig:
    """The synthetic detector's settings for data of another layout: its per-joint relative noise
    (given for the model's joints) carried over by joint name, the mean for joints the model lacks."""
    rel = list(cfg.relative_noise)
    if not rel or len(rel) == data.num_joints or len(rel) != model.num_joints:
        return cfg
    mean = float(np.mean(rel))
    names = model.joint_names
    return replace(cfg, relative_noise=[rel[names.index(n)] if n in names else mean for n in data.joint_names])


def evidence_for_sequence(
    seq: PoseSequence, skeleton: Skeleton, cfg: EvidenceConfig, *, seed: int = 0
) -> tuple[torch.Tensor, GaussianMixture]:
    """(keypoints_uv (T, J, 2), uv mixture (T, J, M, 2)) for one sequence, in the model's layout."""
    w, h = seq.image_size
    if cfg.source == "keypoints":
        kp = torch.as_tensor(normalize_screen_coordinates(seq.keypoints_2d, w, h), dtype=torch.float32)
        gmm = point_mixture(kp, cfg.keypoint_std_px * uv_per_pixel(w))
        if seq.skeleton == skeleton.name:
            return kp, gmm
        # another layout (e.g. 16 Stacked-Hourglass joints for a 17-joint model): the joints it lacks
        # get no evidence, and the lifter sees them where `predict` puts them
        gmm = map_gmm(gmm, seq.skeleton, skeleton.name, h / w)
        missing = torch.tensor([not sources for sources in mapping_indices(seq.skeleton, skeleton.name)])
        return fill_missing(top_mode(gmm), missing.expand(len(seq), -1), skeleton.parents), gmm
    if cfg.source == "synthetic":
        from diffpose3d.evidence.synthetic import synthetic_gmm

        # drawn in the data's own layout (its left/right pairs), then carried to the model's like keypoints
        data_skeleton = get_skeleton(seq.skeleton)
        gmm_px = synthetic_gmm(seq.keypoints_2d, (data_skeleton.left, data_skeleton.right),
                               synthetic_for_layout(cfg.synthetic, skeleton, data_skeleton), seed=seed)
        gmm = mixture_to_uv(gmm_px, w, h)
        if seq.skeleton != skeleton.name:
            gmm = map_gmm(gmm, seq.skeleton, skeleton.name, h / w)
            missing = torch.tensor([not sources for sources in mapping_indices(seq.skeleton, skeleton.name)])
            return fill_missing(top_mode(gmm), missing.expand(len(seq), -1), skeleton.parents), gmm
    elif cfg.source == "gmm_file":
        if seq.gmm_2d is None:
            raise ConfigError(f"evidence.source is gmm_file but {seq.key} has no attached GMM (give the GMM file)")
        gmm = mixture_to_uv(decode_gmm(seq.gmm_2d), w, h)
        gmm = map_gmm(merge_close_components(gmm), seq.skeleton, skeleton.name, h / w)
    elif cfg.source == "confidence":
        from diffpose3d.evidence.mixture2d import keypoints_to_gmm

        conf = seq.confidence if seq.confidence is not None else np.ones(seq.keypoints_2d.shape[:2], np.float32)
        gmm = keypoints_to_gmm(seq.keypoints_2d, conf, (w, h))
        gmm = map_gmm(gmm, seq.skeleton, skeleton.name, h / w)
    else:
        raise ConfigError(f"unknown evidence source '{cfg.source}' ({' | '.join(SOURCES)})")
    return top_mode(gmm), gmm
