"""Accuracy-vs-FLOPs trade-offs: trial results, the search objective, Pareto fronts, plots, W&B logging, and
the choice of one trial for a deployment constraint.

Nothing here imports NNI: ``analyze``, ``pareto``, ``profile`` and the demo use it on saved results, and the NNI
readers in :mod:`adaptive_svdprune.search` turn NNI's records into :class:`TrialResult` objects. Plots import
matplotlib and W&B logging imports wandb only when called.
"""

from __future__ import annotations

from adaptive_svdprune.tradeoffs.constraints import select_for_constraint
from adaptive_svdprune.tradeoffs.objective import OBJECTIVE_MODES, ObjectiveConfig, ObjectiveMode
from adaptive_svdprune.tradeoffs.pareto import dominates, pareto_front, pareto_indices
from adaptive_svdprune.tradeoffs.plots import pareto_figure, plot_pareto
from adaptive_svdprune.tradeoffs.results import (
    ResultSet,
    TrialResult,
    decode_metric,
    from_nni_export,
    load_results,
    normalize_budget,
    save_results,
)
from adaptive_svdprune.tradeoffs.wandb_log import log_pareto_to_wandb

__all__ = [
    "OBJECTIVE_MODES",
    "ObjectiveConfig",
    "ObjectiveMode",
    "ResultSet",
    "TrialResult",
    "decode_metric",
    "dominates",
    "from_nni_export",
    "load_results",
    "log_pareto_to_wandb",
    "normalize_budget",
    "pareto_figure",
    "pareto_front",
    "pareto_indices",
    "plot_pareto",
    "save_results",
    "select_for_constraint",
]
