"""Train / validation / test sequences: leak-free hold-out blocks, and the splits a config asks for."""

from __future__ import annotations

from collections.abc import Iterable

from diffpose3d.config import Config, DataConfig
from diffpose3d.data.base import PoseSequence
from diffpose3d.data.loading import load_sequences
from diffpose3d.data.protocols import protocol_subjects


def holdout_split(
    sequences: Iterable[PoseSequence],
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    gap_frames: int = 10,
) -> dict[str, list[PoseSequence]]:
    """Cut every sequence into contiguous train | gap | val | gap | test blocks.

    Deterministic (depends only on each sequence's length), so all cameras of a take are cut at the
    same frames and no frame of a take lands in two parts. ``gap_frames`` (in the sequence's own,
    possibly strided, frames) keeps temporally neighbouring frames apart. A sequence too short to give
    every block at least one frame goes to train whole.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative numbers, got {fractions}")
    if gap_frames < 0:
        raise ValueError(f"gap_frames must be >= 0, got {gap_frames}")
    total = float(sum(fractions))
    wanted = [f > 0 for f in fractions]
    last = max(i for i, w in enumerate(wanted) if w)
    parts: dict[str, list[PoseSequence]] = {"train": [], "val": [], "test": []}
    for seq in sequences:
        usable = len(seq) - gap_frames * (sum(wanted) - 1)
        sizes = [int(usable * f / total) for f in fractions]
        sizes[last] = usable - sum(sizes[:last])
        if usable <= 0 or any(w and s < 1 for w, s in zip(wanted, sizes)):
            parts["train"].append(seq)
            continue
        start = 0
        for name, size, w in zip(("train", "val", "test"), sizes, wanted):
            if not w:
                continue
            parts[name].append(seq.slice(start, start + size))
            start += size + gap_frames
    return parts


def heldout_blocks(sequences: Iterable[PoseSequence], data: DataConfig, block: str) -> list[PoseSequence]:
    """The `block` ('train', 'val' or 'test') of every sequence, cut as a run with `data.holdout`
    cuts its training subjects' takes (`data.holdout_fractions`, `data.holdout_gap_frames`): a
    bundle trained on all its subjects is validated on their 'val' blocks and calibrated on their
    'test' blocks, which neither training nor validation saw."""
    if block not in ("train", "val", "test"):
        raise ValueError(f"block must be train, val or test, got {block!r}")
    return holdout_split(sequences, fractions=tuple(data.holdout_fractions), gap_frames=data.holdout_gap_frames)[block]


def _stride(seqs: list[PoseSequence], stride: int) -> list[PoseSequence]:
    return seqs if stride <= 1 else [s.slice(0, len(s), stride) for s in seqs]


def training_splits(config: Config) -> dict[str, list[PoseSequence]]:
    """{'train', 'val', 'test'} sequences. Validation is never the test split.

    With `data.holdout` the three are contiguous blocks carved out of every training sequence
    (separated by gaps), which is how we validate and test on the shared HumanEva Train data.
    Otherwise train/val are carved from the protocol's training subjects and test is the protocol's
    test split. `data.train_on_all` moves the test blocks into training (for a final shipped model).
    """
    d = config.data
    train_subjects = d.train_subjects or protocol_subjects(d.dataset, "train")
    seqs = load_sequences(config, subjects=train_subjects, split=d.train_split or None)
    if d.holdout:
        parts = holdout_split(seqs, fractions=tuple(d.holdout_fractions), gap_frames=d.holdout_gap_frames)
        train, val, test = parts["train"], parts["val"], parts["test"]
    else:
        parts = holdout_split(seqs, fractions=(0.9, 0.1, 0.0), gap_frames=d.holdout_gap_frames)
        train, val = parts["train"], parts["val"]
        test_split = "Validate" if d.dataset == "humaneva" else None
        test = load_sequences(config, subjects=d.test_subjects or protocol_subjects(d.dataset, "test"), split=test_split)
    if d.train_on_all:
        train = train + test
    return {
        "train": _stride(train, d.stride),
        "val": _stride(val, d.test_stride),
        "test": _stride(test, d.test_stride),
    }
