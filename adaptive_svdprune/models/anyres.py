"""Token selection for "anyres" images (LLaVA-NeXT, LLaVA-OneVision): a base view, high-resolution crops, newlines.

An anyres image enters the language model as ``L`` positions: the base view's tokens, then the crops' tokens
stitched into one unpadded grid, row by row, each row closed by a learned *newline* embedding (an image given as a
single view, such as one of several OneVision images, is its tokens plus one final newline). :class:`AnyresImage`
holds that layout: the pre-projector features of the ``T`` image tokens in language-model order, the position of
every token and newline in the image's run, the newline row each token belongs to and the view it comes from.

:func:`select_anyres` keeps a subset of those positions. The **budget K counts language-model positions, newlines
included**, so that FLOPs, KV cache and kept counts mean the same as for LLaVA-1.5:

* a newline is kept exactly when its row keeps at least one token: a row whose tokens are all dropped disappears
  with its newline, so the layout stays valid (every kept newline closes a non-empty row) and no budget is spent
  on empty rows;
* ``split="global"`` (default) ranks all the image's tokens together (one SVD over every view);
  ``split="per_view"`` ranks each view (base view, each crop) on its own and interleaves the rankings so that
  every prefix shares the budget across views in proportion to their token counts (Sainte-Lague apportionment,
  which never takes a token back as the budget grows);
* with a fixed budget the ranking is walked in order and a token is taken when it fits: ``1`` position in an
  already open row (or the newline-free base view), ``2`` when it opens a row. This reaches exactly ``K``
  positions unless the only tokens left would each open a row, where it stops at ``K - 1`` (and ``K = 1`` on an
  image whose every token has a newline, such as a single-view image, keeps one token and its newline: 2);
* selectors without a ranking (``uniform``: every score equal) are asked for ``n`` tokens with the largest ``n``
  whose positions fit (a binary search), and any positions left are filled with the lowest-position tokens of
  open rows first;
* adaptive SVD-Prune (``budget=None``) keeps the tokens it selects (per view: each view at epsilon) plus the
  newlines of their rows; ``max_tokens`` bounds the positions, newlines included;
* ``K >= L`` keeps everything, which reproduces the stock model exactly.

Example:
    >>> import torch
    >>> from adaptive_svdprune.pruning.config import SVDPruneConfig
    >>> views = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])  # a 2x2 base view, one 3x2 crop
    >>> img = AnyresImage.from_layout(torch.randn(10, 8), [0, 1, 2, 3, 4, 5, -1, 6, 7, -1, 8, 9, -1], views)
    >>> img.length, img.rows.tolist()
    (13, [-1, -1, -1, -1, 0, 0, 1, 1, 2, 2])
    >>> kept = select_anyres(img, SVDPruneConfig(budget=7))
    >>> len(kept)
    7
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch

from adaptive_svdprune.pruning.config import BaselineConfig, SelectorConfig, SVDPruneConfig, select_tokens
from adaptive_svdprune.pruning.selection import TokenSelection

__all__ = ["SPLITS", "AnyresImage", "Split", "apportion_order", "select_anyres"]

Split = Literal["global", "per_view"]
SPLITS: tuple[str, ...] = ("global", "per_view")


@dataclass
class AnyresImage:
    """One anyres image as the language model sees it (see the module docstring).

    Attributes:
        features: ``(T, D)`` pre-projector features of the image tokens in language-model order (newlines
            excluded); what the selectors look at.
        token_positions: ``(T,)`` position of each token in the image's run of ``length`` positions.
        newline_positions: ``(R,)`` position of each newline in the run.
        rows: ``(T,)`` index (into ``newline_positions``) of the newline closing each token's row; ``-1`` for
            tokens without one (the base view of a multi-view image).
        views: ``(T,)`` view of each token: 0 for the base view, ``1 + c`` for crop ``c`` (row-major).
        cls_attention: ``(T,)`` CLS attention per token, when computed.
    """

    features: torch.Tensor
    token_positions: torch.Tensor
    newline_positions: torch.Tensor
    rows: torch.Tensor
    views: torch.Tensor
    cls_attention: torch.Tensor | None = None

    @property
    def length(self) -> int:
        """Positions the image occupies in the language model when nothing is pruned."""
        return int(self.token_positions.numel() + self.newline_positions.numel())

    @property
    def num_tokens(self) -> int:
        return int(self.token_positions.numel())

    @classmethod
    def from_layout(
        cls,
        features: torch.Tensor,
        layout: Sequence[int],
        views: torch.Tensor | None = None,
        cls_attention: torch.Tensor | None = None,
    ) -> AnyresImage:
        """Build from a run layout: ``layout[p]`` is the token index at position ``p``, or ``-1`` for a newline.

        A token belongs to the row of the next newline after it, except base-view tokens (``views == 0``) of an
        image that has other views: the base view of LLaVA-NeXT/OneVision has no newline.
        """
        layout_t = torch.as_tensor(list(layout), dtype=torch.long)
        is_newline = layout_t < 0
        token_positions = (~is_newline).nonzero().flatten()
        newline_positions = is_newline.nonzero().flatten()
        if not torch.equal(layout_t[token_positions], torch.arange(token_positions.numel())):
            raise ValueError("layout must list the tokens 0..T-1 in order, with -1 for newlines")
        views = torch.zeros(token_positions.numel(), dtype=torch.long) if views is None else views.long().cpu()
        # row of a token = number of newlines before it; tokens after the last newline have none
        rows = torch.searchsorted(newline_positions, token_positions)
        rows = torch.where(rows < newline_positions.numel(), rows, torch.full_like(rows, -1))
        if bool((views > 0).any()):
            rows = rows.masked_fill(views == 0, -1)
        return cls(features, token_positions, newline_positions, rows, views, cls_attention)


def _cost(rows: torch.Tensor, kept: torch.Tensor) -> int:
    """Language-model positions of the kept tokens: the tokens plus the newlines of their rows."""
    kept_rows = rows[kept]
    return int(kept.numel() + torch.unique(kept_rows[kept_rows >= 0]).numel())


def _positions(image: AnyresImage, kept: torch.Tensor) -> torch.Tensor:
    """Kept run positions (ascending): the kept tokens and the newlines of their rows."""
    kept = kept.to(torch.long).cpu()
    rows = image.rows[kept]
    open_rows = torch.unique(rows[rows >= 0])
    return torch.sort(torch.cat([image.token_positions[kept], image.newline_positions[open_rows]])).values


def apportion_order(sizes: Sequence[int]) -> list[int]:
    """The view of each successive unit when ``sum(sizes)`` units are dealt out in proportion to ``sizes``.

    Sainte-Lague (highest ``size / (2 * given + 1)`` next, ties to the lower view): every prefix is a proportional
    share, and growing the total never takes a unit away from a view.

    Example:
        >>> apportion_order([4, 2])
        [0, 1, 0, 0, 1, 0]
    """
    heap: list[tuple[float, int]] = [(-float(s), v) for v, s in enumerate(sizes) if s > 0]
    heapq.heapify(heap)
    given = [0] * len(sizes)
    order: list[int] = []
    while heap:
        _, v = heapq.heappop(heap)
        order.append(v)
        given[v] += 1
        if given[v] < sizes[v]:
            heapq.heappush(heap, (-sizes[v] / (2 * given[v] + 1), v))
    return order


def _greedy_fit(order: torch.Tensor, rows: torch.Tensor, budget: int) -> torch.Tensor:
    """Walk ``order`` and take each token whose positions (1, or 2 when it opens a row) still fit ``budget``."""
    taken: list[int] = []
    open_rows: set[int] = set()
    used = 0
    for t in order.tolist():
        row = int(rows[t])
        cost = 1 if row < 0 or row in open_rows else 2
        if used + cost <= budget:
            taken.append(t)
            used += cost
            if row >= 0:
                open_rows.add(row)
            if used == budget:
                break
    return torch.tensor(sorted(taken), dtype=torch.long)


def _top_up(image: AnyresImage, kept: torch.Tensor, budget: int) -> torch.Tensor:
    """Fill the positions left: lowest-position tokens of open rows (or the base view) first, then new rows."""
    taken = torch.zeros(image.num_tokens, dtype=torch.bool)
    taken[kept] = True
    used = _cost(image.rows, kept)
    while used < budget:
        open_rows = torch.unique(image.rows[taken])
        cheap = ~taken & ((image.rows < 0) | torch.isin(image.rows, open_rows[open_rows >= 0]))
        pick = cheap.nonzero().flatten()[:1]
        if pick.numel() == 0 and budget - used >= 2:
            pick = (~taken).nonzero().flatten()[:1]
        if pick.numel() == 0:
            break
        taken[pick] = True
        used = _cost(image.rows, taken.nonzero().flatten())
    return taken.nonzero().flatten()


def _largest_fitting(select_n: Callable[[int], torch.Tensor], rows: torch.Tensor, upper: int, budget: int
                     ) -> torch.Tensor:
    """Binary search for the largest ``n <= upper`` whose selection fits ``budget`` positions."""
    lo, hi = 1, upper
    best = torch.empty(0, dtype=torch.long)
    while lo <= hi:
        mid = (lo + hi) // 2
        kept = select_n(mid)
        if _cost(rows, kept) <= budget:
            best, lo = kept, mid + 1
        else:
            hi = mid - 1
    return best


def _view_groups(image: AnyresImage, split: Split) -> list[torch.Tensor]:
    if split == "global":
        return [torch.arange(image.num_tokens)]
    return [(image.views == v).nonzero().flatten() for v in torch.unique(image.views).tolist()]


def _run(features: torch.Tensor, config: SelectorConfig, attn: torch.Tensor | None) -> TokenSelection:
    """The selector on one group of tokens (a batch of one)."""
    context = {"cls_attention": attn[None]} if attn is not None and "cls_attention" in config.requires else {}
    return select_tokens(features[None], config, **context)


def _take(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values[index]`` with the (CPU) index moved to the values' device."""
    return values[index.to(values.device)]


def _with_budget(config: SelectorConfig, budget: int) -> SelectorConfig:
    return replace(config, budget=max(1, budget))


def select_anyres(image: AnyresImage, config: SelectorConfig, split: Split = "global") -> torch.Tensor:
    """Kept positions of one anyres image's run (ascending), newlines included (see the module docstring).

    Args:
        image: the image's layout and pre-projector features.
        config: SVD-Prune or a baseline; ``budget`` is in language-model positions, newlines included.
        split: ``"global"`` (one ranking over every view) or ``"per_view"`` (a ranking per view, budget shared
            in proportion to the views' token counts).

    Returns:
        ``(K,)`` ascending positions in ``0 .. image.length - 1``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    everything = torch.arange(image.length)
    if isinstance(config, BaselineConfig) and config.method in ("none", "fastv"):
        return everything
    budget = config.budget
    if budget is not None and budget >= image.length:
        return everything
    groups = _view_groups(image, split)
    attn = image.cls_attention
    if budget is None:  # adaptive SVD-Prune: every group at epsilon
        assert isinstance(config, SVDPruneConfig)
        kept = torch.cat([g[_run(_take(image.features, g), config, None).indices[0].cpu()] for g in groups])
        kept = torch.sort(kept).values
        if config.max_tokens is not None and _cost(image.rows, kept) > config.max_tokens:
            kept = _fit(image, config, groups, attn, config.max_tokens)
        return _positions(image, kept)
    return _positions(image, _fit(image, config, groups, attn, budget))


def _fit(image: AnyresImage, config: SelectorConfig, groups: list[torch.Tensor], attn: torch.Tensor | None,
         budget: int) -> torch.Tensor:
    """Token indices filling ``budget`` positions (newlines included) with the selector's own preferences."""
    rows = image.rows
    runs = [_run(_take(image.features, g), _with_budget(config, min(budget, g.numel())),
                 None if attn is None else _take(attn, g))
            for g in groups]
    scores = [r.scores[0].cpu() for r in runs]
    if all(bool((s == s[0]).all()) for s in scores):  # positional selector (uniform): no ranking to walk
        return _fit_positional(image, config, groups, attn, budget)
    rankings = [g[torch.sort(s, descending=True, stable=True).indices] for g, s in zip(groups, scores, strict=True)]
    if len(rankings) == 1:
        order = rankings[0]
    else:
        cursor = [0] * len(rankings)
        merged = []
        for v in apportion_order([r.numel() for r in rankings]):
            merged.append(int(rankings[v][cursor[v]]))
            cursor[v] += 1
        order = torch.tensor(merged, dtype=torch.long)
    kept = _greedy_fit(order, rows, budget)
    return kept if kept.numel() else order[:1]  # K = 1 and every token needs a newline: one token and its newline


def _fit_positional(image: AnyresImage, config: SelectorConfig, groups: list[torch.Tensor],
                    attn: torch.Tensor | None, budget: int) -> torch.Tensor:
    sizes = [int(g.numel()) for g in groups]
    deal = apportion_order(sizes)

    def select_n(n: int) -> torch.Tensor:
        quotas = [0] * len(groups)
        for v in deal[:n]:
            quotas[v] += 1
        parts = [g[_run(_take(image.features, g), _with_budget(config, q), None if attn is None else _take(attn, g))
                   .indices[0].cpu()] for g, q in zip(groups, quotas, strict=True) if q > 0]
        return torch.sort(torch.cat(parts)).values

    kept = _top_up(image, _largest_fitting(select_n, image.rows, min(budget, image.num_tokens), budget), budget)
    return kept if kept.numel() else select_n(1)
