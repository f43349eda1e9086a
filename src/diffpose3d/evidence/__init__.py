"""2D evidence of H_K: per-joint mixtures over (u, v) from heatmaps, keypoints, a detector's result,
an authors'-layout GMM file or the synthetic detector, and the summary g conditions on."""
