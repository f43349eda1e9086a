"""Training: the loop (EMA, budget, resume, data parallelism), the paper's two stages, a whole run."""
