"""Diagnostics of pruning methods (``adaptive-svdprune analyze``): positional bias, object recall, attention shares.

* :mod:`~adaptive_svdprune.analysis.positions`: the patch grid, keep heat maps, mean kept row/column, object
  recall, the objects file;
* :mod:`~adaptive_svdprune.analysis.geometry`: where each language-model position of an image lies in the image,
  for every family (LLaVA-1.5 patches, LLaVA-NeXT/OneVision base view and crops, Qwen2(.5)-VL merged grids);
* :mod:`~adaptive_svdprune.analysis.attention`: the unpruned model's attention by token group and by image
  position under two averaging schemes (the paper's Figures 1 and 2);
* :mod:`~adaptive_svdprune.analysis.run`: :func:`analyze`, one pass over a data set (vision features once per
  image, shared by every method);
* :mod:`~adaptive_svdprune.analysis.plots`: the pictures.
"""

from __future__ import annotations

from adaptive_svdprune.analysis.attention import (
    ATTENTION_GROUPS,
    SCORE_SCHEMES,
    AttentionStats,
    group_shares,
    image_token_scores,
)
from adaptive_svdprune.analysis.geometry import ImageLayout, image_layout
from adaptive_svdprune.analysis.plots import FIGURE_FILES, write_figures
from adaptive_svdprune.analysis.positions import KeepCounter, PatchGrid, load_objects
from adaptive_svdprune.analysis.run import (
    RELATIVE_GRID,
    AnalysisSettings,
    analysis_methods,
    analyze,
    check_budget,
    check_methods,
    default_fastv_layer,
    heatmap_grid,
)

__all__ = [
    "ATTENTION_GROUPS",
    "FIGURE_FILES",
    "RELATIVE_GRID",
    "SCORE_SCHEMES",
    "AnalysisSettings",
    "AttentionStats",
    "ImageLayout",
    "KeepCounter",
    "PatchGrid",
    "analysis_methods",
    "analyze",
    "check_budget",
    "check_methods",
    "default_fastv_layer",
    "group_shares",
    "heatmap_grid",
    "image_layout",
    "image_token_scores",
    "load_objects",
    "write_figures",
]
