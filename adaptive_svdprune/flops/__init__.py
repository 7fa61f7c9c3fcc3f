"""FLOPs, KV-cache and selection-cost accounting of pruned LLaVA inference, on the real architecture.

The vision tower, projector and language model are instantiated from a config on the ``meta`` device (no
weights, no memory) and their forward passes are counted with ``torch.utils.flop_counter.FlopCounterMode``;
closed-form formulas (``method="analytic"``) cross-check the counts. Convention: 2 FLOPs per multiply-add
of the matrix products (mm, bmm, addmm, convolution, attention); element-wise work is not counted.

Example:
    >>> from adaptive_svdprune.flops import count_flops
    >>> full, pruned = count_flops("llava-1.5-7b", 576), count_flops("llava-1.5-7b", 16)
    >>> f"{pruned.reduction_pct(full):.1f}%"
    '84.8%'
"""

from __future__ import annotations

from adaptive_svdprune.flops._analytic import analytic_costs
from adaptive_svdprune.flops._anyres import is_anyres
from adaptive_svdprune.flops._archs import bundled_archs, image_token_count, load_arch_config
from adaptive_svdprune.flops._core import (
    DEFAULT_NEW_TOKENS,
    DEFAULT_PROMPT_TOKENS,
    DTYPE_BYTES,
    FlopsBreakdown,
    batch_flops,
    count_flops,
    is_qwen_vl,
    kv_cache_bytes,
)
from adaptive_svdprune.flops._costs import ComponentCosts
from adaptive_svdprune.flops._counted import build_meta_modules, count_forward, counted_costs
from adaptive_svdprune.flops._qwen import qwen_vl_batch_flops, qwen_vl_flops, qwen_vl_grid
from adaptive_svdprune.flops._selection import SELECTION_SOLVERS, selection_flops

__all__ = [
    "DEFAULT_NEW_TOKENS",
    "DEFAULT_PROMPT_TOKENS",
    "DTYPE_BYTES",
    "SELECTION_SOLVERS",
    "ComponentCosts",
    "FlopsBreakdown",
    "analytic_costs",
    "batch_flops",
    "build_meta_modules",
    "bundled_archs",
    "count_flops",
    "count_forward",
    "counted_costs",
    "image_token_count",
    "is_anyres",
    "is_qwen_vl",
    "kv_cache_bytes",
    "load_arch_config",
    "qwen_vl_batch_flops",
    "qwen_vl_flops",
    "qwen_vl_grid",
    "selection_flops",
]
