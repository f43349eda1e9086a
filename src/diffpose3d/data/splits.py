"""Evaluation protocols of the public benchmarks, and a leak-free hold-out of our own.

The public test splits are for final reporting only. ``holdout_split`` carves validation and test
blocks out of training sequences, so tuning never touches a public test split.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .base import PoseSequence


@dataclass(frozen=True)
class Protocol:
    """Reader filters (keyword arguments of the dataset's loader) for one part of a benchmark."""

    dataset: str
    part: str
    filters: dict[str, Any] = field(default_factory=dict)


H36M_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS = ("S9", "S11")
HUMANEVA_ACTIONS = ("Walk", "Jog", "Box")
HUMANEVA_SUBJECTS = ("S1", "S2", "S3")
MPI3DHP_TRAIN = tuple(f"S{i}" for i in range(1, 9))
MPI3DHP_TEST = tuple(f"TS{i}" for i in range(1, 7))

PROTOCOLS: dict[tuple[str, str], Protocol] = {
    (p.dataset, p.part): p
    for p in (
        Protocol("h36m", "train", {"subjects": H36M_TRAIN_SUBJECTS}),
        Protocol("h36m", "test", {"subjects": H36M_TEST_SUBJECTS}),
        Protocol("humaneva", "train", {"split": "Train", "subjects": HUMANEVA_SUBJECTS, "actions": HUMANEVA_ACTIONS}),
        Protocol("humaneva", "test", {"split": "Validate", "subjects": HUMANEVA_SUBJECTS, "actions": HUMANEVA_ACTIONS}),
        Protocol("3dhp", "train", {"sequences": MPI3DHP_TRAIN}),
        Protocol("3dhp", "test", {"sequences": MPI3DHP_TEST}),
    )
}


def protocol_filters(dataset: str, part: str) -> dict[str, Any]:
    """Loader keyword arguments for ``part`` ("train" or "test") of ``dataset``'s standard protocol."""
    try:
        return dict(PROTOCOLS[(dataset, part)].filters)
    except KeyError:
        known = ", ".join(f"{d}/{p}" for d, p in PROTOCOLS)
        raise ValueError(f"no protocol {dataset}/{part}; known: {known}") from None


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
