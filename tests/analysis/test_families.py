"""``analyze`` on the tiny LLaVA-NeXT, OneVision and Qwen2.5-VL checkpoints: kept positions placed in the image,
per-view statistics, skipped methods with their reason, per-image budget checks, and attention shares and FastV's
kept tokens against the stock model's own attention weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from adaptive_svdprune.analysis import ATTENTION_GROUPS, AnalysisSettings, analyze
from adaptive_svdprune.data import load_task
from adaptive_svdprune.models.families import load_model
from adaptive_svdprune.models.names import resolve_model_path
from tests._attention import stock_last_row_attention

pytestmark = pytest.mark.usefixtures("one_thread")

GQA = Path(__file__).parents[1] / "fixtures" / "gqa"
METHODS = ("svd", "random", "uniform", "l2norm", "cls_attention", "fastv")


_MODELS: dict[str, tuple[Any, Any]] = {}


def _load(name: str) -> tuple[Any, Any]:
    if name not in _MODELS:
        _MODELS[name] = load_model(resolve_model_path(name), attn_implementation="eager")
    return _MODELS[name]


@pytest.fixture(scope="module")
def next_run() -> dict[str, Any]:
    model, processor = _load("tiny-next")
    return analyze(model, processor, load_task("gqa", GQA, limit=4), AnalysisSettings(METHODS, budget=40))


def test_anyres_fields_and_views(next_run: dict[str, Any]) -> None:
    r = next_run
    assert (r["family"], r["coordinates"], r["views"], r["anyres_split"]) == (
        "LlavaNextForConditionalGeneration", "relative", ["base", "crops"], "global")
    assert r["grid"]["rows"] == r["grid"]["cols"] == 24  # the base view's patch grid
    assert r["skipped"] == {} and list(r["methods"]) == list(METHODS)  # CLIP tower: cls_attention applies
    assert r["object_recall_chance"] is None and r["samples"] == 4 and r["images"] == 2
    for name, m in r["methods"].items():
        heat = np.asarray(m["heatmap"])
        assert heat.shape == (24, 24) and heat.sum() == m["kept_tokens_total"] > 0, name
        views = m["views"]
        assert views["base"]["kept_tokens_total"] + views["crops"]["kept_tokens_total"] == m["kept_tokens_total"]
        assert m["kept_positions_total"] == 4 * 40, name  # the budget counts positions, newlines included
        assert m["kept_tokens_total"] <= 4 * 40 and m["object_recall"] is None
        assert 0 <= m["mean_row_relative"] <= 1 and 0 <= m["mean_col_relative"] <= 1
        rates = [v for row in m["keep_rate"] for v in row if v is not None]
        assert rates and all(0 <= v <= 1 for v in rates)
    assert any("object recall needs one fixed patch grid" in n for n in r["notes"])
    json.dumps(r, allow_nan=False)


def test_anyres_attention_shares_match_the_stock_model(next_run: dict[str, Any]) -> None:
    model, processor = _load("tiny-next")
    data = load_task("gqa", GQA, limit=1)
    result = analyze(model, processor, data, AnalysisSettings(("fastv",), budget=40, fastv_layer=2))
    _, start, stop, expected = stock_last_row_attention(model, processor, data[0])
    got = np.stack([result["attention"]["shares"][g] for g in ATTENTION_GROUPS], axis=1)
    assert got == pytest.approx(expected, abs=1e-5)
    assert result["attention"]["group_tokens_mean"]["vision"] == stop - start  # newlines included
    assert next_run["attention"]["layers"] == model.config.text_config.num_hidden_layers


def test_per_view_split_changes_the_selection() -> None:
    model, processor = _load("tiny-next")
    data = load_task("gqa", GQA, limit=1)
    runs = {s: analyze(model, processor, data, AnalysisSettings(("svd",), budget=40, attention=False, anyres_split=s))
            for s in ("global", "per_view")}
    assert runs["per_view"]["anyres_split"] == "per_view"
    crops = {s: r["methods"]["svd"]["views"]["crops"]["kept_tokens_total"] for s, r in runs.items()}
    assert crops["per_view"] > 0  # the crops get their share of the budget
    assert runs["global"]["methods"]["svd"]["heatmap"] != runs["per_view"]["methods"]["svd"]["heatmap"]


def test_onevision_skips_cls_attention_with_the_reason() -> None:
    model, processor = _load("tiny-onevision")
    r = analyze(model, processor, load_task("gqa", GQA, limit=1),
                AnalysisSettings(("svd", "cls_attention"), budget=30, attention=False))
    assert list(r["methods"]) == ["svd"] and "CLS token" in r["skipped"]["cls_attention"]
    assert r["grid"]["rows"] == 12  # its 168 px / 14 px base view
    assert any(n.startswith("cls_attention skipped:") for n in r["notes"])
    with pytest.raises(ValueError, match=r"no requested method applies.*cls_attention.*CLS token"):
        analyze(model, processor, load_task("gqa", GQA, limit=1),
                AnalysisSettings(("cls_attention",), budget=30, attention=False))


def test_qwen_positions_attention_and_fastv_against_the_stock_model() -> None:
    """Each fixture image is a 3 x 3 merged grid: its 9 tokens fall in distinct cells of the 24 x 24 grid."""
    model, processor = _load("tiny-qwen2.5-vl")
    data = load_task("gqa", GQA, limit=1)
    r = analyze(model, processor, data, AnalysisSettings(("uniform", "cls_attention", "fastv"), budget=4,
                                                        fastv_layer=2))
    assert (r["coordinates"], r["views"], r["anyres_split"]) == ("relative", ["image"], None)
    assert "cls_attention" in r["skipped"] and r["image_positions"] == {"min": 9, "max": 9, "mean": 9.0}
    assert r["methods"]["fastv"]["kept_tokens_total"] == 4
    last, start, stop, expected = stock_last_row_attention(model, processor, data[0])
    got = np.stack([r["attention"]["shares"][g] for g in ATTENTION_GROUPS], axis=1)
    assert got == pytest.approx(expected, abs=1e-5)
    top = torch.sort(last[1][start:stop], descending=True, stable=True).indices[:4].tolist()
    cells = {(int((t // 3 + 0.5) / 3 * 24), int((t % 3 + 0.5) / 3 * 24)) for t in top}
    heat = np.asarray(r["methods"]["fastv"]["heatmap"])
    assert {(int(a), int(b)) for a, b in zip(*np.nonzero(heat), strict=True)} == cells
    scores = np.asarray(r["attention"]["position_scores"]["last_token"]["scores"]).reshape(24, 24)
    for t in range(9):
        cell = (int((t // 3 + 0.5) / 3 * 24), int((t % 3 + 0.5) / 3 * 24))
        assert scores[cell] == pytest.approx(float(last[1][start + t]), abs=1e-6)


def test_budget_above_an_image_names_it() -> None:
    model, processor = _load("tiny-qwen2.5-vl")
    with pytest.raises(ValueError, match=r"budget must be in \[1, 9\] \(the 9 positions image n100001.jpg"):
        analyze(model, processor, load_task("gqa", GQA, limit=1), AnalysisSettings(("svd",), budget=10))
    with pytest.raises(ValueError, match="anyres_split must be one of"):
        AnalysisSettings(("svd",), budget=4, anyres_split="tiles")  # type: ignore[arg-type]
