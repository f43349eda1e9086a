"""Scoring against the benchmarks' protocols: result tables, checkpoint scoring, predictions files."""
