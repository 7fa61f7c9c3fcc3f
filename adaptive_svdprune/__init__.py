"""adaptive-svdprune: training-free SVD-Prune vision-token pruning for LLaVA.

Example:
    >>> import torch
    >>> from adaptive_svdprune import SVDPruneConfig, svd_select
    >>> F = torch.randn(2, 576, 64)
    >>> sel = svd_select(F, SVDPruneConfig(variance_threshold=0.9, budget=16))
    >>> [len(i) for i in sel.indices]
    [16, 16]

Heavy parts (transformers, Lightning, NNI) are imported lazily on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "SVDPruneConfig": "adaptive_svdprune.pruning.config",
    "SelectorConfig": "adaptive_svdprune.pruning.config",
    "make_selector": "adaptive_svdprune.pruning.config",
    "available_selectors": "adaptive_svdprune.pruning.config",
    "TokenSelection": "adaptive_svdprune.pruning.selection",
    "gather_kept": "adaptive_svdprune.pruning.selection",
    "leverage_scores": "adaptive_svdprune.pruning.svd",
    "svd_select": "adaptive_svdprune.pruning.svd",
    "rank_for_variance": "adaptive_svdprune.pruning.svd",
    "prune_llava": "adaptive_svdprune.models.llava",
    "PrunedLlava": "adaptive_svdprune.models.llava",
    "load_llava": "adaptive_svdprune.models.llava",
    "prune_model": "adaptive_svdprune.models.families",
    "load_model": "adaptive_svdprune.models.families",
    "build_tiny_llava": "adaptive_svdprune.models.tiny",
    "count_flops": "adaptive_svdprune.flops",
    "batch_flops": "adaptive_svdprune.flops",
    "load_profile": "adaptive_svdprune.profiles",
    "Profile": "adaptive_svdprune.profiles",
}

__all__ = ["__version__", *sorted(_LAZY)]

if TYPE_CHECKING:  # pragma: no cover
    from adaptive_svdprune.pruning.config import SVDPruneConfig, make_selector  # noqa: F401
    from adaptive_svdprune.pruning.selection import TokenSelection, gather_kept  # noqa: F401
    from adaptive_svdprune.pruning.svd import leverage_scores, svd_select  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'adaptive_svdprune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
