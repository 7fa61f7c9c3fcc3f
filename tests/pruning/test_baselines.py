from __future__ import annotations

import pytest
import torch

from adaptive_svdprune.pruning import BaselineConfig, baseline_select, grid_positions, make_selector


def test_grid_positions_cover_the_grid_evenly() -> None:
    pos = grid_positions(576, 16)  # 24 x 24 grid, 4 x 4 sub-grid
    rows, cols = (pos // 24).unique(), (pos % 24).unique()
    assert rows.tolist() == cols.tolist() == [3, 9, 15, 21]
    assert grid_positions(576, 576).tolist() == list(range(576))
    assert grid_positions(10, 3).tolist() == [1, 5, 8]  # not square: 1-D spread


def test_random_is_seeded_and_batch_independent() -> None:
    F = torch.randn(3, 64, 8)
    cfg = BaselineConfig("random", budget=10, seed=1)
    a, b = baseline_select(F, cfg), baseline_select(F, cfg)
    assert [x.tolist() for x in a.indices] == [x.tolist() for x in b.indices]
    alone = baseline_select(F[2:], cfg)
    assert alone.indices[0].tolist() == a.indices[2].tolist()
    other_seed = baseline_select(F, BaselineConfig("random", budget=10, seed=2))
    assert other_seed.indices[0].tolist() != a.indices[0].tolist()


def test_l2norm_and_cls_attention_pick_the_top_tokens() -> None:
    F = torch.ones(1, 16, 4)
    F[0, [3, 9]] = 10.0
    assert baseline_select(F, BaselineConfig("l2norm", budget=2)).indices[0].tolist() == [3, 9]
    attn = torch.zeros(1, 16)
    attn[0, [0, 15]] = 1.0
    sel = make_selector("cls_attention", budget=2)(F, cls_attention=attn)
    assert sel.indices[0].tolist() == [0, 15]
    with pytest.raises(ValueError, match="cls_attention must have shape"):
        make_selector("cls_attention", budget=2)(F, cls_attention=torch.zeros(1, 15))


@pytest.mark.parametrize("method", ["random", "uniform", "l2norm"])
def test_budget_mask_and_order(method: str) -> None:
    F = torch.randn(2, 25, 4)
    mask = torch.ones(2, 25, dtype=torch.bool)
    mask[1, 20:] = False
    sel = baseline_select(F, BaselineConfig(method, budget=6), mask=mask)  # type: ignore[arg-type]
    assert sel.counts == [6, 6]
    assert int(sel.indices[1].max()) < 20
    for idx in sel.indices:
        assert torch.equal(idx, torch.sort(idx).values)
    assert baseline_select(F, BaselineConfig(method, budget=99)).counts == [25, 25]  # type: ignore[arg-type]


def test_none_keeps_everything_and_fastv_is_not_pre_projector() -> None:
    assert baseline_select(torch.randn(1, 9, 2), BaselineConfig("none")).counts == [9]
    with pytest.raises(ValueError, match="inside the language model"):
        baseline_select(torch.randn(1, 9, 2), BaselineConfig("fastv", budget=3))
    with pytest.raises(ValueError, match="NaN"):
        baseline_select(torch.full((1, 4, 2), float("nan")), BaselineConfig("l2norm", budget=2))
