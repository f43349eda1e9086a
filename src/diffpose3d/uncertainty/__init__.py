"""Uncertainty that stays honest off-domain: the pose density, the out-of-domain score and its fit."""
