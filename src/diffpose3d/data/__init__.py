"""Dataset readers -> ``list[PoseSequence]`` (``base.PoseSequence``), the benchmarks' protocols,
hold-out splits, frames for training and evaluation, windows, mirroring and GMM files."""

from diffpose3d.data.base import PoseSequence
from diffpose3d.data.loading import load_dataset, load_sequences
from diffpose3d.data.protocols import protocol_filters

__all__ = ["PoseSequence", "load_dataset", "load_sequences", "protocol_filters"]
