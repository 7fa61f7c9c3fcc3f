"""The positional-bias analysis: grid statistics and object recall against NumPy references, attention shares and
FastV's kept positions against the stock model's own attention weights, on the random tiny model and fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from adaptive_svdprune.analysis import (
    ATTENTION_GROUPS,
    SCORE_SCHEMES,
    AnalysisSettings,
    KeepCounter,
    PatchGrid,
    analysis_methods,
    analyze,
    check_budget,
    check_methods,
    default_fastv_layer,
    group_shares,
    image_token_scores,
    load_objects,
)
from adaptive_svdprune.analysis.attention import decoder_attentions
from adaptive_svdprune.data import load_task
from adaptive_svdprune.models import llava as llava_module
from adaptive_svdprune.models.llava import load_llava
from adaptive_svdprune.models.names import MODEL_NAMES, resolve_model_path
from adaptive_svdprune.pruning.baselines import grid_positions
from tests._attention import stock_last_row_attention

GQA = Path(__file__).parent / "fixtures" / "gqa"
ALL_METHODS = ("svd", "random", "uniform", "l2norm", "cls_attention", "fastv")
BUDGET = 16
# n100001 holds the first three questions, n100002 the fourth. Object A covers a 2x2 block whose top-left patch
# (row 3, col 3) is one of the 16 uniform grid positions; object B the top-left corner, which uniform skips.
OBJECTS = {"n100001": [{"patches": [75, 76, 99, 100]}, {"patches": [0, 1, 24, 25]}],
           "n100002": {"grid": 24, "patch": 14, "objects": [{"patches": [75, 76, 99, 100]}]}}


@pytest.fixture(scope="module")
def tiny(one_thread: None) -> tuple[Any, Any]:
    return load_llava(resolve_model_path("tiny"), attn_implementation="eager")


@pytest.fixture(scope="module")
def objects_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("objects") / "objects.json"
    path.write_text(json.dumps(OBJECTS))
    return path


@pytest.fixture(scope="module")
def run(tiny: tuple[Any, Any], objects_file: Path) -> tuple[dict[str, Any], int]:
    """All methods over 4 questions (2 images); also counts vision-tower runs."""
    model, processor = tiny
    calls = []
    original = llava_module.extract_vision_features
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(llava_module, "extract_vision_features", lambda *a, **k: calls.append(1) or original(*a, **k))
        grid = PatchGrid.from_model_config(model.config)
        result = analyze(model, processor, load_task("gqa", GQA, limit=4), AnalysisSettings(ALL_METHODS, BUDGET),
                         objects=load_objects(objects_file, grid))
    return result, len(calls)


# ---- grid statistics -------------------------------------------------------------------------------------


def test_grid_comes_from_the_config(tiny: tuple[Any, Any]) -> None:
    assert PatchGrid.from_model_config(tiny[0].config) == PatchGrid(24, 24)
    small = SimpleNamespace(vision_config=SimpleNamespace(image_size=56, patch_size=14))
    assert PatchGrid.from_model_config(small).tokens == 16
    with pytest.raises(ValueError, match="image_size"):
        PatchGrid.from_model_config(SimpleNamespace(vision_config=SimpleNamespace(patch_size=14)))


def test_keep_counter_against_numpy() -> None:
    rng = np.random.default_rng(0)
    grid = PatchGrid(6, 5)
    counter = KeepCounter(grid)
    draws = [rng.choice(grid.tokens, size=7, replace=False) for _ in range(9)]
    objects = {1, 2, 7, 29}
    for kept in draws:
        counter.update(kept.tolist(), objects)
    s = counter.summary()
    flat = np.concatenate(draws)
    rows, cols = flat // grid.cols, flat % grid.cols
    assert np.asarray(s["heatmap"]).shape == (6, 5) and np.asarray(s["heatmap"]).sum() == flat.size == 63
    assert s["mean_row"] == pytest.approx(rows.mean()) and s["mean_col"] == pytest.approx(cols.mean())
    assert s["row_profile"] == pytest.approx(np.bincount(rows, minlength=6) / 63)
    assert s["col_profile"] == pytest.approx(np.bincount(cols, minlength=5) / 63)
    assert s["object_recall"] == pytest.approx(sum(len(objects & set(k.tolist())) for k in draws) / (4 * 9))
    with pytest.raises(ValueError, match="kept indices"):
        counter.update([30])


def test_keep_counter_without_objects() -> None:
    counter = KeepCounter(PatchGrid(2, 2))
    counter.update([0])
    assert counter.summary()["object_recall"] is None and counter.summary()["samples_with_objects"] == 0


def test_load_objects_both_forms(objects_file: Path) -> None:
    objects = load_objects(objects_file, PatchGrid(24, 24))
    assert objects["n100001"] == [frozenset({75, 76, 99, 100}), frozenset({0, 1, 24, 25})]
    assert objects["n100002"] == [frozenset({75, 76, 99, 100})]


@pytest.mark.parametrize(("content", "match"), [
    ("not json", "not valid JSON"),
    ("[1, 2]", "must map image ids"),
    ('{"a": {"grid": 16, "objects": []}}', "16 patch grid"),
    ('{"a": [{"patches": [576]}]}', r"in \[0, 576\)"),
    ('{"a": [{"bbox": [0, 0, 1, 1]}]}', "needs 'patches'"),
    ('{"a": 3}', "list of objects"),
], ids=["not-json", "list", "other-grid", "off-grid", "no-patches", "not-a-list"])
def test_load_objects_bad(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "objects.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_objects(path, PatchGrid(24, 24))
    with pytest.raises(FileNotFoundError, match=r"gone\.json"):
        load_objects(tmp_path / "gone.json", PatchGrid(24, 24))


# ---- attention maths -------------------------------------------------------------------------------------


def test_group_shares_and_scores_by_hand() -> None:
    # L = 6: one instruction token, image tokens 1..3, two response tokens
    attn = torch.tensor([[1.0, 0, 0, 0, 0, 0],
                         [0.5, 0.5, 0, 0, 0, 0],
                         [0.2, 0.4, 0.4, 0, 0, 0],
                         [0.1, 0.2, 0.3, 0.4, 0, 0],
                         [0.1, 0.1, 0.1, 0.1, 0.6, 0],
                         [0.2, 0.1, 0.1, 0.3, 0.2, 0.1]])
    assert group_shares(attn[-1], (1, 3)).tolist() == pytest.approx([0.2, 0.5, 0.3])
    scores = image_token_scores(torch.stack([attn, attn]), (1, 3))
    assert scores["last_token"].tolist() == pytest.approx([0.1, 0.1, 0.3])
    assert scores["all_queries"].tolist() == pytest.approx([1.3 / 6, 0.9 / 6, 0.8 / 6])
    valid = torch.tensor([False, True, True, True, True, True])
    assert image_token_scores(attn, (1, 3), valid)["all_queries"].tolist() == pytest.approx([1.3 / 5, 0.9 / 5, 0.8 / 5])


def test_no_attention_weights_is_a_clear_error() -> None:
    fake = SimpleNamespace(
        model=SimpleNamespace(language_model=lambda **kw: SimpleNamespace(attentions=())),
        config=SimpleNamespace(text_config=SimpleNamespace(_attn_implementation="sdpa")),
    )
    with pytest.raises(ValueError, match="attn_implementation='eager'"):
        decoder_attentions(fake, torch.zeros(1, 2, 4), torch.ones(1, 2), torch.arange(2)[None])


# ---- argument checks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("methods", "match"), [(["svd", "nope"], "unknown method 'nope'"), ([], "non-empty"),
                                                (["none"], "unknown method 'none'")], ids=["unknown", "empty", "none"])
def test_check_methods(methods: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_methods(methods)


def test_methods_cover_the_paper() -> None:
    assert set(ALL_METHODS) <= set(analysis_methods())
    assert check_methods(["fastv", "svd", "fastv"]) == ("fastv", "svd")


@pytest.mark.parametrize("budget", [0, 577, True, 3.0], ids=["zero", "above", "bool", "float"])
def test_check_budget(budget: object) -> None:
    with pytest.raises(ValueError, match="budget must be in"):
        check_budget(budget, 576)


@pytest.mark.parametrize(("layers", "expected"), [(32, 2), (3, 2), (2, 1), (1, 1)])
def test_default_fastv_layer(layers: int, expected: int) -> None:
    assert default_fastv_layer(layers) == expected


# ---- analyze on the tiny model ---------------------------------------------------------------------------


def test_every_field_for_every_method(run: tuple[dict[str, Any], int]) -> None:
    result, _ = run
    assert (result["samples"], result["images"], result["images_with_objects"]) == (4, 2, 2)
    assert result["grid"] == {"rows": 24, "cols": 24, "tokens": 576, "centre": [11.5, 11.5]}
    assert result["fastv_layer"] == 2 and result["notes"] == []
    assert list(result["methods"]) == list(ALL_METHODS)
    for name, m in result["methods"].items():
        heat = np.asarray(m["heatmap"])
        assert heat.shape == (24, 24), name
        assert heat.sum() == m["kept_tokens_total"] == 4 * BUDGET, name
        assert len(m["row_profile"]) == 24 and len(m["col_profile"]) == 24
        assert sum(m["row_profile"]) == pytest.approx(1.0) and sum(m["col_profile"]) == pytest.approx(1.0)
        assert 0 <= m["mean_row"] <= 23 and 0 <= m["mean_col"] <= 23
        assert 0 <= m["object_recall"] <= 1 and m["object_patches"] == 3 * 8 + 4
        assert m["config"]["method"] == name and m["config"]["budget"] == BUDGET
    json.dumps(result, allow_nan=False)  # strict JSON


def test_uniform_object_recall_is_known(run: tuple[dict[str, Any], int]) -> None:
    uniform = run[0]["methods"]["uniform"]
    assert 75 in grid_positions(576, BUDGET).tolist() and not {0, 1, 24, 25, 76, 99, 100} & set(
        grid_positions(576, BUDGET).tolist())
    # 3 questions on n100001 keep 1 of 8 object patches, 1 question on n100002 keeps 1 of 4
    assert (uniform["object_patches_kept"], uniform["object_patches"]) == (4, 28)
    assert uniform["object_recall"] == pytest.approx(4 / 28)
    assert uniform["mean_row"] == pytest.approx(12.0) and uniform["mean_col"] == pytest.approx(12.0)


def test_vision_tower_runs_once_per_image(run: tuple[dict[str, Any], int]) -> None:
    assert run[1] == 2


def test_attention_fields(run: tuple[dict[str, Any], int]) -> None:
    attention = run[0]["attention"]
    assert attention["layers"] == 3 and attention["groups"] == list(ATTENTION_GROUPS)
    per_layer = np.stack([attention["shares"][g] for g in ATTENTION_GROUPS], axis=1)
    assert per_layer.shape == (3, 3) and per_layer.sum(1) == pytest.approx(np.ones(3), abs=1e-5)
    assert attention["group_tokens_mean"]["vision"] == 576
    scores = attention["position_scores"]
    assert scores["layer"] == 1 and scores["schemes"] == list(SCORE_SCHEMES)
    for scheme in SCORE_SCHEMES:
        assert len(scores[scheme]["scores"]) == 576 and 0 <= scores[scheme]["mean_row"] <= 23


def test_fastv_and_shares_match_the_stock_model(tiny: tuple[Any, Any]) -> None:
    """Independent reference: the stock model's own forward with ``output_attentions`` (no wrapper involved)."""
    model, processor = tiny
    data = load_task("gqa", GQA, limit=1)
    result = analyze(model, processor, data, AnalysisSettings(("fastv",), budget=BUDGET, fastv_layer=2))
    last, start, stop, expected = stock_last_row_attention(model, processor, data[0])
    got = np.stack([result["attention"]["shares"][g] for g in ATTENTION_GROUPS], axis=1)
    assert got == pytest.approx(expected, abs=1e-5)
    top = torch.sort(last[1][start:stop], descending=True, stable=True).indices[:BUDGET]
    heat = np.asarray(result["methods"]["fastv"]["heatmap"]).flatten()
    assert sorted(np.flatnonzero(heat).tolist()) == sorted(top.tolist())
    assert result["attention"]["position_scores"]["last_token"]["scores"] == pytest.approx(
        last[1][start:stop].tolist(), abs=1e-6)


def test_without_objects_and_attention(tiny: tuple[Any, Any]) -> None:
    model, processor = tiny
    result = analyze(model, processor, load_task("gqa", GQA, limit=1),
                     AnalysisSettings(("uniform",), budget=4, attention=False))
    assert result["methods"]["uniform"]["object_recall"] is None and result["attention"] is None
    assert result["images_with_objects"] is None
    assert any("object recall is not computed" in n for n in result["notes"])


def test_budget_above_the_grid(tiny: tuple[Any, Any]) -> None:
    model, processor = tiny
    with pytest.raises(ValueError, match=r"budget must be in \[1, 576\].*577"):
        analyze(model, processor, load_task("gqa", GQA, limit=1), AnalysisSettings(("svd",), budget=577))


@pytest.mark.skipif("shapes" not in MODEL_NAMES, reason="the trained 'shapes' reference model is not registered "
                    "yet (adaptive_svdprune/shapes is in progress)")
def test_shapes_reference_model(tmp_path: Path) -> None:
    from adaptive_svdprune.shapes.writer import write_split

    try:
        path = resolve_model_path("shapes")
    except FileNotFoundError as err:
        pytest.skip(f"the shapes checkpoint is not built yet: {err}")
    split = write_split(tmp_path, "gqa", "test", n=4, seed=123)
    model, processor = load_llava(path, attn_implementation="eager")
    grid = PatchGrid.from_model_config(model.config)
    result = analyze(model, processor, load_task("gqa", split.root), AnalysisSettings(ALL_METHODS, budget=32),
                     objects=load_objects(split.objects_file, grid))
    for m in result["methods"].values():
        assert m["kept_tokens_total"] == 4 * 32 and m["object_recall"] is not None
    assert result["attention"]["layers"] == model.config.text_config.num_hidden_layers
