"""Feature cache: bad entries (NaN, wrong shape or dtype, corrupt file) are dropped with a warning naming the
file and recomputed; unsound features are never stored."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from adaptive_svdprune.models.feature_cache import FeatureCache, entry_problem

GOOD = {"features": torch.randn(6, 4), "cls_attention": torch.rand(6)}


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "img.png"
    path.write_bytes(b"stand-in image bytes")  # the cache keys on path, size and mtime only
    return path


@pytest.fixture
def cache(tmp_path: Path) -> FeatureCache:
    return FeatureCache(tmp_path / "cache", "model", feature_shape=(6, 4), dtype=torch.float32)


def test_a_good_entry_round_trips(cache: FeatureCache, image: Path) -> None:
    cache.put(image, GOOD)
    entry = cache.get(image)
    assert entry is not None and torch.equal(entry["features"], GOOD["features"]) and cache.hits == 1


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        pytest.param({"features": torch.full((6, 4), float("nan"))}, "non-finite", id="nan"),
        pytest.param({"features": torch.full((6, 4), float("inf"))}, "non-finite", id="inf"),
        pytest.param({"features": torch.randn(5, 4)}, r"shape \(5, 4\), expected \(6, 4\)", id="shape"),
        pytest.param({"features": torch.randn(6, 4, dtype=torch.float64)}, "dtype torch.float64", id="dtype"),
        pytest.param({"features": torch.ones(6, 4, dtype=torch.int64)}, "floating", id="integer"),
        pytest.param({"features": torch.randn(6, 4), "cls_attention": torch.rand(5)}, "cls_attention", id="attn"),
        pytest.param({"feats": torch.randn(6, 4)}, "'features' tensor", id="missing-key"),
        pytest.param("corrupt", "cannot be loaded", id="corrupt-file"),
    ],
)
def test_a_bad_entry_is_dropped_naming_the_file(cache: FeatureCache, image: Path, entry: object,
                                                 reason: str) -> None:
    cache.put(image, GOOD)
    file = cache._file(image)
    if entry == "corrupt":
        file.write_bytes(b"\x00 not a torch file")
    else:
        torch.save(entry, file)
    with pytest.warns(UserWarning, match=rf"dropped bad entry {file}.*{reason}"):
        assert cache.get(image) is None
    assert not file.exists() and cache.dropped == 1 and cache.hits == 0
    cache.put(image, GOOD)  # recomputed by the caller: stored again and served
    assert cache.get(image) is not None


def test_unsound_features_are_not_stored(cache: FeatureCache, image: Path) -> None:
    with pytest.warns(UserWarning, match="not storing"):
        cache.put(image, {"features": torch.full((6, 4), float("nan"))})
    assert not cache._file(image).exists()


def test_entry_problem_without_expectations_accepts_any_2d_float() -> None:
    assert entry_problem({"features": torch.randn(3, 2, dtype=torch.float16)}) is None


def test_evaluation_recomputes_a_poisoned_cache_entry(tmp_path: Path) -> None:
    from adaptive_svdprune.evaluation import EvalConfig, run_evaluation

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "gqa"
    data = Path(shutil.copytree(fixtures, tmp_path / "gqa"))
    common = dict(task="gqa", data=str(data), limit=2, batch_size=2, max_new_tokens=1, wandb=False, fidelity=False,
                  progress_bar=False, budget=16, feature_cache=str(tmp_path / "cache"))
    first = run_evaluation(EvalConfig(out=str(tmp_path / "a"), **common))  # type: ignore[arg-type]
    files = sorted((tmp_path / "cache").rglob("*.pt"))
    assert files
    poisoned = torch.load(files[0], weights_only=True)
    poisoned["features"] = torch.full_like(poisoned["features"], float("nan"))
    torch.save(poisoned, files[0])
    with pytest.warns(UserWarning, match=f"dropped bad entry {files[0]}.*non-finite"):
        second = run_evaluation(EvalConfig(out=str(tmp_path / "b"), **common))  # type: ignore[arg-type]
    assert second["feature_cache_dropped"] == 1 and second["accuracy"] == first["accuracy"]
    assert second["mean_kept_tokens"] == first["mean_kept_tokens"]
    assert torch.isfinite(torch.load(files[0], weights_only=True)["features"]).all()  # rewritten sound
