"""NNI threshold search: search spaces, the trial entry point, the experiment runner and NNI result readers.

This is the only package that imports NNI. Trade-off maths and reporting (objective, Pareto front, plots,
W&B) live in :mod:`adaptive_svdprune.tradeoffs`, deployment profiles in :mod:`adaptive_svdprune.profiles`
and the vision-feature cache in :mod:`adaptive_svdprune.models.feature_cache`; the names they had here are
still importable from ``adaptive_svdprune.search.profiles`` and ``adaptive_svdprune.search.feature_cache``.
"""
