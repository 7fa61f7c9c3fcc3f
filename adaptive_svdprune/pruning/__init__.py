"""Token selection: pure functions on tensors, no model code (depends on torch only)."""

from __future__ import annotations

from adaptive_svdprune.pruning.baselines import baseline_select, grid_positions
from adaptive_svdprune.pruning.config import (
    BaselineConfig,
    Selector,
    SelectorConfig,
    SVDPruneConfig,
    available_selectors,
    config_from_dict,
    make_selector,
    register_selector,
    select_tokens,
)
from adaptive_svdprune.pruning.selection import TokenSelection, gather_kept
from adaptive_svdprune.pruning.svd import leverage_scores, rank_for_variance, svd_select, uniform_positions

__all__ = [
    "BaselineConfig",
    "SVDPruneConfig",
    "Selector",
    "SelectorConfig",
    "TokenSelection",
    "available_selectors",
    "baseline_select",
    "config_from_dict",
    "gather_kept",
    "grid_positions",
    "leverage_scores",
    "make_selector",
    "rank_for_variance",
    "register_selector",
    "select_tokens",
    "svd_select",
    "uniform_positions",
]
