"""Baseline selectors with a fixed budget, behind the same interface as SVD-Prune.

* ``none``: keep every token (the unpruned reference).
* ``random``: a seeded random subset. The draw is seeded by ``config.seed`` and the image's own features, so an
  image gets the same tokens whatever batch it is in.
* ``uniform``: tokens spread evenly over the 2-D patch grid (square, or ``rows x cols`` given as ``grid_shape`` in
  the context; 1-D spread when the token count is not square and no shape is given).
* ``l2norm``: the tokens of largest feature norm.
* ``cls_attention``: VisionZip-style dominant tokens, the ones the CLS token attends to most in the feature
  layer; the attention comes from the vision tower (``prune_llava`` supplies it as ``cls_attention``).

Example:
    >>> import torch
    >>> from adaptive_svdprune.pruning.config import BaselineConfig
    >>> F = torch.randn(1, 16, 4); F[0, 3] *= 100
    >>> 3 in baseline_select(F, BaselineConfig("l2norm", budget=2)).indices[0].tolist()
    True
"""

from __future__ import annotations

import math
import struct

import torch

from adaptive_svdprune.pruning.config import BaselineConfig, register_selector
from adaptive_svdprune.pruning.selection import TokenSelection
from adaptive_svdprune.pruning.svd import uniform_positions
from adaptive_svdprune.pruning.validation import as_batch

__all__ = ["baseline_select", "grid_positions"]


def grid_positions(num_tokens: int, count: int, shape: tuple[int, int] | None = None) -> torch.Tensor:
    """``count`` positions spread evenly over a square ``sqrt(T) x sqrt(T)`` patch grid, ascending.

    ``shape`` gives a rectangular ``rows x cols`` grid in row-major order instead (Qwen2-VL's merged tokens);
    without a 2-D grid the spread is 1-D.

    Example:
        >>> grid_positions(16, 4).tolist()
        [5, 7, 13, 15]
        >>> grid_positions(32, 8, shape=(4, 8)).tolist()  # 2 rows x 4 columns of a 4 x 8 grid
        [9, 11, 13, 15, 25, 27, 29, 31]
    """
    count = min(count, num_tokens)
    if shape is not None and shape[0] != shape[1]:
        return _rectangular_grid_positions(num_tokens, count, int(shape[0]), int(shape[1]))
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        return uniform_positions(num_tokens, count)
    per_side = min(side, math.ceil(math.sqrt(count)))
    axis = uniform_positions(side, per_side)
    candidates = (axis.unsqueeze(1) * side + axis.unsqueeze(0)).flatten()  # row-major, ascending
    if candidates.numel() < count:  # only when per_side == side: every token is a candidate
        return uniform_positions(num_tokens, count)
    return candidates[uniform_positions(candidates.numel(), count)]


def _rectangular_grid_positions(num_tokens: int, count: int, rows: int, cols: int) -> torch.Tensor:
    if rows * cols != num_tokens:
        raise ValueError(f"grid shape {rows}x{cols} does not hold {num_tokens} tokens")
    n_rows = min(rows, max(1, math.ceil(math.sqrt(count * rows / cols))))
    n_cols = min(cols, math.ceil(count / n_rows))
    n_rows = min(rows, math.ceil(count / n_cols))
    if n_rows * n_cols < count:
        return uniform_positions(num_tokens, count)
    grid = uniform_positions(rows, n_rows).unsqueeze(1) * cols + uniform_positions(cols, n_cols).unsqueeze(0)
    candidates = grid.flatten()  # row-major, ascending
    return candidates[uniform_positions(candidates.numel(), count)]


def _content_seed(seed: int, features: torch.Tensor) -> int:
    digest = struct.unpack("<q", struct.pack("<d", float(features.double().abs().sum())))[0]
    return hash((seed, digest)) & 0x7FFF_FFFF_FFFF


def _scores(F: torch.Tensor, config: BaselineConfig, context: dict[str, torch.Tensor]) -> torch.Tensor:
    N, T = F.shape[0], F.shape[1]
    if config.method == "l2norm":
        return F.float().norm(dim=-1)
    if config.method == "cls_attention":
        attn = context["cls_attention"]
        if tuple(attn.shape) != (N, T):
            raise ValueError(f"cls_attention must have shape {(N, T)}, got {tuple(attn.shape)}")
        return attn.float().to(F.device)
    if config.method == "random":
        rows = []
        for b in range(N):
            gen = torch.Generator().manual_seed(_content_seed(config.seed, F[b]))
            rows.append(torch.rand(T, generator=gen))
        return torch.stack(rows).to(F.device)
    return torch.zeros(N, T, device=F.device)  # none / uniform: position-based


def baseline_select(
    F: torch.Tensor, config: BaselineConfig, mask: torch.Tensor | None = None, **context: torch.Tensor
) -> TokenSelection:
    """Select tokens with a baseline method; same shapes and guarantees as :func:`svd_select`."""
    if not isinstance(config, BaselineConfig):
        raise TypeError(f"config must be a BaselineConfig, got {type(config).__name__}")
    if config.method == "fastv":
        raise ValueError("fastv prunes inside the language model; use it through prune_llava")
    batch, mask_b, _ = as_batch(F, mask, max_lead_dims=1)
    N, T = batch.shape[0], batch.shape[1]
    scores = _scores(batch, config, context)
    indices = []
    for b in range(N):
        valid = mask_b[b].nonzero().flatten() if mask_b is not None else torch.arange(T, device=F.device)
        n_valid = valid.numel()
        count = n_valid if config.budget is None else min(config.budget, n_valid)
        if config.method in ("none", "uniform"):
            # ``grid_shape`` (rows, cols) in the context: a rectangular token grid (Qwen2-VL's merged tokens)
            grid = context["grid_shape"].flatten().tolist() if "grid_shape" in context else None
            shape = (int(grid[0]), int(grid[1])) if grid is not None else None
            pos = grid_positions(n_valid, count, shape) if mask_b is None else uniform_positions(n_valid, count)
            kept = valid[pos.to(valid.device)]
        else:
            order = torch.sort(scores[b, valid], descending=True, stable=True).indices[:count]
            kept = valid[order]
        indices.append(torch.sort(kept).values)
    if mask_b is not None:
        scores = scores.masked_fill(~mask_b, float("-inf"))
    return TokenSelection(indices, scores, torch.zeros(N, dtype=torch.int64), method=config.method)


for _method in ("none", "random", "uniform", "l2norm", "cls_attention"):
    register_selector(_method)(baseline_select)
