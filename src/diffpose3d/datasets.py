"""The train / validation / test sequences a config asks for, under the dataset's protocol."""

from __future__ import annotations

from diffpose3d.config import Config
from diffpose3d.data.base import PoseSequence
from diffpose3d.data.splits import holdout_split
from diffpose3d.errors import ConfigError

_PROTOCOL_SUBJECTS = {
    "h36m": (["S1", "S5", "S6", "S7", "S8"], ["S9", "S11"]),
    "humaneva": (["S1", "S2", "S3"], ["S1", "S2", "S3"]),
    "3dhp": ([], []),
}


def load_sequences(config: Config, *, subjects: list[str] | None, split: str | None) -> list[PoseSequence]:
    """The dataset's sequences, with `evidence.gmm_file`'s mixtures attached when `evidence.source`
    is gmm_file (before any split or stride, so the file's frames line up)."""
    seqs = _read_dataset(config, subjects=subjects, split=split)
    e = config.evidence
    if e.source != "gmm_file":
        return seqs
    if not e.gmm_file:
        raise ConfigError("evidence.source is gmm_file but evidence.gmm_file is not set (an authors'-layout *_gmm.npz)")
    from diffpose3d.data.gmm_files import attach_gmm

    return attach_gmm(seqs, e.gmm_file)


def _read_dataset(config: Config, *, subjects: list[str] | None, split: str | None) -> list[PoseSequence]:
    d = config.data
    if not d.data_3d:
        raise ConfigError("data.data_3d is not set (the dataset's 3D file; see configs/)")
    actions = d.actions or None
    if d.dataset == "humaneva":
        from diffpose3d.data.humaneva import load_humaneva

        return load_humaneva(
            d.data_3d, d.data_2d or None, split=split, subjects=subjects or None,
            actions=actions, cameras_file=d.cameras_file or None,
        )
    if d.dataset == "h36m":
        from diffpose3d.data.h36m import load_h36m

        return load_h36m(d.data_3d, d.data_2d or None, subjects=subjects or None, actions=actions)
    if d.dataset == "3dhp":
        from diffpose3d.data.mpi3dhp import load_3dhp

        return load_3dhp(d.data_3d)
    raise ConfigError(f"data.dataset '{d.dataset}' is not one of humaneva, h36m, 3dhp")


def _stride(seqs: list[PoseSequence], stride: int) -> list[PoseSequence]:
    return seqs if stride <= 1 else [s.slice(0, len(s), stride) for s in seqs]


def load_training_splits(config: Config) -> dict[str, list[PoseSequence]]:
    """{'train', 'val', 'test'} sequences. Validation is never the test split.

    With `data.holdout` the three are contiguous blocks carved out of every training sequence
    (separated by gaps), which is how we validate and test on the shared HumanEva Train data.
    Otherwise train/val are carved from the protocol's training subjects and test is the protocol's
    test split. `data.train_on_all` moves the test blocks into training (for a final shipped model).
    """
    d = config.data
    default_train, default_test = _PROTOCOL_SUBJECTS.get(d.dataset, ([], []))
    train_subjects = d.train_subjects or default_train
    if d.holdout:
        seqs = load_sequences(config, subjects=train_subjects, split=d.train_split or None)
        parts = holdout_split(seqs, fractions=tuple(d.holdout_fractions), gap_frames=d.holdout_gap_frames)
        train, val, test = parts["train"], parts["val"], parts["test"]
    else:
        seqs = load_sequences(config, subjects=train_subjects, split=d.train_split or None)
        parts = holdout_split(seqs, fractions=(0.9, 0.1, 0.0), gap_frames=d.holdout_gap_frames)
        train, val = parts["train"], parts["val"]
        test_split = "Validate" if d.dataset == "humaneva" else None
        test = load_sequences(config, subjects=d.test_subjects or default_test, split=test_split)
    if d.train_on_all:
        train = train + test
    return {
        "train": _stride(train, d.stride),
        "val": _stride(val, d.test_stride),
        "test": _stride(test, d.test_stride),
    }
