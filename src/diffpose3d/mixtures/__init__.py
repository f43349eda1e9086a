"""Batched Gaussian mixtures as plain tensors, and the batched EM that fits them (pose-agnostic)."""

from diffpose3d.mixtures.em import fit_gmm
from diffpose3d.mixtures.gmm import GaussianMixture, merge_close_components, pick_components, product_mixture, top_components

__all__ = ["GaussianMixture", "fit_gmm", "merge_close_components", "pick_components", "product_mixture", "top_components"]
