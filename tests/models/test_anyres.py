"""Anyres position selection (budget in language-model positions, newlines included) on synthetic layouts."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from adaptive_svdprune.models.anyres import AnyresImage, apportion_order, select_anyres
from adaptive_svdprune.pruning.config import BaselineConfig, SVDPruneConfig


def _image(seed: int = 0, base: int = 16, rows: int = 6, cols: int = 8, crops_per_row: int = 2) -> AnyresImage:
    """A base view of ``base`` tokens, then a ``rows x cols`` crop grid (``crops_per_row`` crops side by side)."""
    gen = torch.Generator().manual_seed(seed)
    layout, views, t = [], [], 0
    for _ in range(base):
        layout.append(t)
        views.append(0)
        t += 1
    for _ in range(rows):
        for c in range(cols):
            layout.append(t)
            views.append(1 + c * crops_per_row // cols)
            t += 1
        layout.append(-1)
    features = torch.randn(t, 12, generator=gen) * torch.linspace(3, 0.1, 12)
    return AnyresImage.from_layout(features, layout, torch.tensor(views))


def _check_layout(image: AnyresImage, kept: torch.Tensor) -> None:
    assert bool((kept.diff() > 0).all())
    is_newline = torch.isin(kept, image.newline_positions)
    kept_tokens = torch.isin(image.token_positions, kept)
    rows_with_tokens = set(image.rows[kept_tokens].tolist()) - {-1}
    kept_rows = set(torch.searchsorted(image.newline_positions, kept[is_newline]).tolist())
    assert kept_rows == rows_with_tokens


CONFIGS = {
    "svd": lambda k: SVDPruneConfig(variance_threshold=0.8, budget=k),
    "random": lambda k: BaselineConfig("random", budget=k),
    "uniform": lambda k: BaselineConfig("uniform", budget=k),
    "l2norm": lambda k: BaselineConfig("l2norm", budget=k),
}


@pytest.mark.parametrize("split", ["global", "per_view"])
@pytest.mark.parametrize("make", list(CONFIGS.values()), ids=list(CONFIGS))
def test_fixed_budget_gives_exactly_k_positions_with_a_valid_layout(make: Any, split: Any) -> None:
    image = _image()
    assert image.length == 16 + 6 * 9
    for k in (1, 2, 3, 7, 17, 40, 69):
        kept = select_anyres(image, make(k), split)
        assert kept.numel() == k, (k, kept.numel())
        _check_layout(image, kept)
    for k in (70, 500):  # everything
        assert torch.equal(select_anyres(image, make(k), split), torch.arange(70))
    single = _image(base=0, rows=1, cols=9, crops_per_row=1)  # one view closed by one newline (OneVision multi-image)
    assert select_anyres(single, make(1), split).numel() == 2  # the least an image can keep: a token and its newline
    assert select_anyres(single, make(5), split).numel() == 5


def test_global_svd_walks_the_leverage_ranking() -> None:
    image = _image(seed=3, base=0)  # no base view: every token needs its row's newline
    config = SVDPruneConfig(variance_threshold=0.8, budget=10)
    kept = select_anyres(image, config)
    from adaptive_svdprune.pruning.svd import leverage_scores

    scores, _ = leverage_scores(image.features, variance_threshold=0.8)
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    kept_tokens = torch.isin(image.token_positions, kept).nonzero().flatten().tolist()
    # the kept tokens are what the greedy walk takes: each either top-ranked or skipped only when it did not fit
    taken, used, open_rows = [], 0, set()
    for t in order:
        cost = 1 if int(image.rows[t]) in open_rows else 2
        if used + cost <= 10:
            taken.append(t)
            used += cost
            open_rows.add(int(image.rows[t]))
    assert sorted(taken) == kept_tokens and used == 10


def test_rows_whose_tokens_are_all_dropped_lose_their_newline() -> None:
    image = _image(base=0, rows=3, cols=4)
    features = torch.zeros_like(image.features)
    features[5] = torch.tensor([10.0] + [0.0] * 11)  # one dominant token, in row 1
    image = AnyresImage(features, image.token_positions, image.newline_positions, image.rows, image.views)
    kept = select_anyres(image, BaselineConfig("l2norm", budget=2))
    assert kept.tolist() == [int(image.token_positions[5]), int(image.newline_positions[1])]


def test_adaptive_keeps_newlines_of_selected_rows_and_max_tokens_bounds_positions() -> None:
    image = _image(seed=1)
    for split in ("global", "per_view"):
        kept = select_anyres(image, SVDPruneConfig(variance_threshold=0.6), split)
        _check_layout(image, kept)
        assert 1 <= kept.numel() < image.length
        bounded = select_anyres(image, SVDPruneConfig(variance_threshold=0.99, max_tokens=12), split)
        assert bounded.numel() == 12
        _check_layout(image, bounded)
    loose = select_anyres(image, SVDPruneConfig(variance_threshold=0.6))
    tight = select_anyres(image, SVDPruneConfig(variance_threshold=0.95))
    assert loose.numel() < tight.numel()


def test_per_view_budget_follows_view_sizes() -> None:
    image = _image(base=24, rows=6, cols=8, crops_per_row=2)  # views: 24, 24, 24 tokens
    kept = select_anyres(image, SVDPruneConfig(variance_threshold=0.8, budget=40), "per_view")
    per_view = torch.bincount(image.views[torch.isin(image.token_positions, kept)], minlength=3)
    assert int(per_view.sum()) + int(torch.isin(kept, image.newline_positions).sum()) == 40
    assert int(per_view.max() - per_view.min()) <= 2, per_view


@pytest.mark.parametrize(("sizes", "n", "expected"), [([4, 2], 3, [2, 1]), ([576, 1152], 30, [10, 20]),
                                                      ([10, 0, 5], 6, [4, 0, 2]), ([1, 100], 3, [0, 3])])
def test_apportion_order_is_proportional_and_complete(sizes: list[int], n: int, expected: list[int]) -> None:
    order = apportion_order(sizes)
    assert sorted(order) == sorted(v for v, s in enumerate(sizes) for _ in range(s))
    assert [order[:n].count(v) for v in range(len(sizes))] == expected


def test_bad_split() -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        select_anyres(_image(), SVDPruneConfig(budget=4), "crops")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="layout must list the tokens"):
        AnyresImage.from_layout(torch.randn(3, 2), [0, 2, 1])
