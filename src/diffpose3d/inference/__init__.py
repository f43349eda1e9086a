"""Inference: the high-level API (`api.DiffPose`), reading inputs into 2D evidence, batched lifting,
aggregation, the typed result and its output files."""
