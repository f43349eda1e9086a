"""The public benchmarks' protocols, in one table: train / test subjects, splits and actions.

The public test splits are for final reporting only; `data.splits.holdout_split` carves validation
and test blocks out of training sequences, so tuning never touches a public test split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Protocol:
    """Reader filters (keyword arguments of the dataset's loader) for one part of a benchmark."""

    dataset: str
    part: str
    filters: dict[str, Any] = field(default_factory=dict)


H36M_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS = ("S9", "S11")
H36M_ACTIONS = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
    "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether",
)
HUMANEVA_ACTIONS = ("Walk", "Jog", "Box")
HUMANEVA_SUBJECTS = ("S1", "S2", "S3")
MPI3DHP_TRAIN = tuple(f"S{i}" for i in range(1, 9))
MPI3DHP_TEST = tuple(f"TS{i}" for i in range(1, 7))

BENCHMARKS: tuple[str, ...] = ("h36m", "humaneva", "3dhp")
PROTOCOL_TABLE: dict[tuple[str, str], Protocol] = {
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
        return dict(PROTOCOL_TABLE[(dataset, part)].filters)
    except KeyError:
        known = ", ".join(f"{d}/{p}" for d, p in PROTOCOL_TABLE)
        raise ValueError(f"no protocol {dataset}/{part}; known: {known}") from None


def protocol_subjects(dataset: str, part: str) -> list[str]:
    """The subjects of `part` ("train" or "test") of `dataset`'s protocol ([] when it names none)."""
    try:
        return list(PROTOCOL_TABLE[(dataset, part)].filters.get("subjects", ()))
    except KeyError:
        return []


def preferred_actions(dataset: str) -> tuple[str, ...]:
    """The order a protocol's tables list their actions in."""
    return H36M_ACTIONS if dataset == "h36m" else HUMANEVA_ACTIONS
