"""Qwen2.5-VL end to end on the tiny checkpoint: GQA fixtures through the data pipeline, pruning, FLOPs, evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from adaptive_svdprune.data import VQADataModule
from adaptive_svdprune.flops import qwen_vl_batch_flops
from adaptive_svdprune.models.families import load_model, prune_model
from adaptive_svdprune.models.qwen_vl import MergedVisionFeatures, PrunedQwenVL, image_pixel_values
from adaptive_svdprune.pruning.config import BaselineConfig, SVDPruneConfig

GQA = Path(__file__).resolve().parents[1] / "fixtures" / "gqa"


@pytest.fixture(scope="module")
def loaded() -> tuple[Any, Any]:
    return load_model("tiny-qwen2.5-vl")


@pytest.fixture(scope="module")
def batch(loaded: tuple[Any, Any]) -> dict[str, Any]:
    datamodule = VQADataModule("gqa", GQA, loaded[1], batch_size=4, limit=4)
    datamodule.setup("test")
    return next(iter(datamodule.test_dataloader()))


def test_gqa_batch_through_the_pruned_model(loaded: tuple[Any, Any], batch: dict[str, Any]) -> None:
    model, processor = loaded
    assert "image_grid_thw" in batch and batch["input_ids"].shape[0] == 4
    pruned = prune_model(model, SVDPruneConfig(variance_threshold=0.9, budget=4))
    assert isinstance(pruned, PrunedQwenVL)
    features = pruned.vision_features(batch["pixel_values"], image_grid_thw=batch["image_grid_thw"])
    tokens = pruned.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             image_features=features, max_new_tokens=3, do_sample=False)
    assert tokens.shape[0] == 4 and tokens.shape[1] <= 3
    answers = processor.tokenizer.batch_decode(tokens, skip_special_tokens=True)
    assert all(isinstance(a, str) for a in answers)
    totals = features.counts
    assert pruned.last_kept_counts == [min(4, t) for t in totals]

    image_token = model.config.image_token_id
    placeholders = (batch["input_ids"] == image_token) & batch["attention_mask"].bool()
    text = (batch["attention_mask"].sum(-1) - placeholders.sum(-1)).tolist()
    grids = [[tuple(g)] for g in batch["image_grid_thw"].tolist()]
    cut = qwen_vl_batch_flops(model.config, grids, [[k] for k in pruned.last_kept_counts], text, 3)
    full = qwen_vl_batch_flops(model.config, grids, [[t] for t in totals], text, 3, selection_solver=None)
    assert all(c.tokens + c.prompt_tokens == n for c, n in zip(cut, pruned.last_cache_lengths, strict=True))
    assert all(c.total < f.total or c.tokens == f.tokens for c, f in zip(cut, full, strict=True))


def test_per_image_cache_entries_rebuild_the_features(loaded: tuple[Any, Any], batch: dict[str, Any]) -> None:
    pruned = prune_model(loaded[0], BaselineConfig("l2norm", budget=3))
    features = pruned.vision_features(batch["pixel_values"], image_grid_thw=batch["image_grid_thw"])
    entries = pruned.cache_entries(features)
    assert set(entries[0]) == {"features", "grid_thw"}
    # recompute two images alone, as a feature cache does for its misses
    pixels, grid = image_pixel_values(batch["pixel_values"], batch["image_grid_thw"], [3, 1])
    fresh = pruned.vision_features(pixels, image_grid_thw=grid).entries()
    entries[3], entries[1] = fresh
    rebuilt = pruned.features_from_cache(entries)
    assert isinstance(rebuilt, MergedVisionFeatures)
    text = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        a = pruned(**text, image_features=rebuilt).logits
        b = pruned(**text, image_features=features).logits
    assert torch.allclose(a, b, atol=1e-5)  # one image per tower call vs four: same features up to rounding


def test_run_evaluation_on_the_tiny_checkpoint(tmp_path: Path) -> None:
    from adaptive_svdprune.evaluation import EvalConfig, run_evaluation

    metrics = run_evaluation(EvalConfig(model="tiny-qwen2.5-vl", task="gqa", data=str(GQA), limit=2, batch_size=2,
                                        max_new_tokens=2, out=str(tmp_path / "run"), wandb=False, fidelity=False,
                                        progress_bar=False, method="svd", budget=4))
    assert metrics["samples"] == 2 and metrics["mean_kept_tokens"] <= 4
    assert metrics["tflops_per_sample"] < metrics["tflops_unpruned_per_sample"]


def test_two_search_trials_on_the_tiny_checkpoint(tmp_path: Path) -> None:
    from adaptive_svdprune.search.trial import TrialSettings, run_trial

    results = [
        run_trial({"variance_threshold": eps, "budget": budget},
                  TrialSettings("gqa", str(GQA), model="tiny-qwen2.5-vl", limit=2, max_new_tokens=2,
                                out=str(tmp_path / f"eval-{i}")))
        for i, (eps, budget) in enumerate(((0.9, 4), (0.7, "adaptive")))
    ]
    assert results[0]["mean_kept_tokens"] == 4 and "default" in results[1]
