"""Per-task search over SVD-Prune settings: objective, NNI results, Pareto front, W&B logging, profiles."""
