"""TrialResult and the readers of NNI exports and our own JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from adaptive_svdprune.tradeoffs.results import (
    ResultSet,
    TrialResult,
    decode_metric,
    from_nni_export,
    load_results,
    normalize_budget,
    save_results,
    trial_from_metric,
)

METRIC = {"default": 0.5, "accuracy": 0.6, "tflops": 1.5, "mean_kept_tokens": 80.0, "fidelity": 0.9}
PARAMS = {"variance_threshold": 0.8, "budget": "adaptive", "min_tokens": 4}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("adaptive", None), (None, None), ("None", None), (64, 64), (64.0, 64), ("32", 32)],
    ids=["adaptive", "none", "none-string", "int", "integral-float", "numeric-string"],
)
def test_normalize_budget(value: Any, expected: int | None) -> None:
    assert normalize_budget(value) == expected


@pytest.mark.parametrize("value", [0, -3, 2.5, "many", True], ids=["zero", "negative", "fraction", "word", "bool"])
def test_normalize_budget_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match=f"got {value!r}"):
        normalize_budget(value)


@pytest.mark.parametrize(
    "value",
    [METRIC, json.dumps(METRIC), json.dumps(json.dumps(METRIC))],
    ids=["dict", "json-string", "double-encoded"],
)
def test_trial_from_metric_any_encoding(value: Any) -> None:
    trial = trial_from_metric("x", PARAMS, value)
    assert (trial.accuracy, trial.tflops, trial.mean_kept_tokens, trial.objective) == (0.6, 1.5, 80.0, 0.5)
    assert trial.metrics == {"fidelity": 0.9}
    assert trial.budget is None and trial.variance_threshold == 0.8


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (0.5, "no accuracy"),
        ({"accuracy": 0.5, "mean_kept_tokens": 3}, "no tflops"),
        ({**METRIC, "tflops": "fast"}, "tflops is not a number: 'fast'"),
        ({**METRIC, "accuracy": math.nan}, "NaN"),
    ],
    ids=["scalar", "missing-tflops", "string-tflops", "nan"],
)
def test_trial_from_metric_unusable(value: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        trial_from_metric("x", PARAMS, value)


def test_decode_metric_leaves_plain_strings() -> None:
    assert decode_metric("not json") == "not json"
    assert decode_metric(0.3) == 0.3


def test_from_real_nni_export_objects() -> None:
    from nni.experiment.data import TrialResult as NniTrialResult  # what Experiment.export_data() returns

    data = [
        NniTrialResult({"variance_threshold": 0.9, "budget": 64}, json.dumps(METRIC), "KgTxn"),
        NniTrialResult({"variance_threshold": 0.5, "budget": "adaptive"}, "0.25", "scalar"),
    ]
    results = from_nni_export(data)
    assert [t.trial_id for t in results.trials] == ["KgTxn"]
    assert results.trials[0].budget == 64
    assert results.failed == {"scalar": "final metric has no accuracy"}


def test_from_nni_export_objects_with_dict_values_and_missing_ids() -> None:
    records = [SimpleNamespace(parameter=PARAMS, value=METRIC, trialJobId=None)]
    assert from_nni_export(records).trials[0].trial_id == "#0"


def test_round_trip_through_json(tmp_path: Path, trials: list[TrialResult]) -> None:
    nan_objective = TrialResult("nan", {"variance_threshold": 0.5, "budget": 8}, 0.5, 1.0, 8.0)
    path = save_results([*trials, nan_objective], tmp_path / "sub" / "results.json")
    loaded = load_results(path)
    assert loaded.trials[:-1] == trials
    assert math.isnan(loaded.trials[-1].objective)
    assert loaded.failed == {}


def test_load_nnictl_export(tmp_path: Path) -> None:
    # `nnictl experiment export --type json`: the REST payload, value a JSON string
    rows = [
        {"parameter": PARAMS, "value": json.dumps(METRIC), "trialJobId": "a"},
        {"parameter": PARAMS, "value": json.dumps({"default": 1}), "trialJobId": "b"},
    ]
    (tmp_path / "export.json").write_text(json.dumps(rows))
    results = load_results(tmp_path / "export.json")
    assert [t.trial_id for t in results.trials] == ["a"] and list(results.failed) == ["b"]


def test_load_pareto_document_and_bad_rows(tmp_path: Path, trials: list[TrialResult]) -> None:
    doc = ResultSet(trials=trials[:2], failed={"z": "FAILED"}).to_dict()
    doc["trials"].append({"trial_id": "broken", "accuracy": 0.5})
    doc["trials"].append({**trials[2].to_dict(), "trial_id": "cancelled", "status": "USER_CANCELED"})
    (tmp_path / "pareto.json").write_text(json.dumps(doc))
    results = load_results(tmp_path / "pareto.json")
    assert results.trials == trials[:2]
    assert results.failed["z"] == "FAILED" and results.failed["cancelled"] == "USER_CANCELED"
    assert "missing ['tflops', 'mean_kept_tokens']" in results.failed["broken"]
    assert results.n_failed == 3


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        (None, FileNotFoundError, "results file not found: .*nope.json"),
        ("{oops", ValueError, "is not valid JSON"),
        ('{"front": []}', ValueError, "'trials' list"),
        ("3", ValueError, "expected a JSON list of trials, got int"),
    ],
    ids=["missing", "malformed", "no-trials-key", "scalar"],
)
def test_load_errors(tmp_path: Path, content: str | None, error: type[Exception], match: str) -> None:
    path = tmp_path / "nope.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(error, match=match):
        load_results(path)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"parameters": {"budget": "lots"}},
            ValueError,
            "budget must be a positive int, 'adaptive' or None, got 'lots'",
        ),
        ({"parameters": {"variance_threshold": "high"}}, ValueError, "t: variance_threshold must be a number"),
        ({"accuracy": math.nan}, ValueError, "t: accuracy is NaN"),
        ({"tflops": "1.0"}, TypeError, "t: tflops must be a number, got '1.0'"),
        ({"parameters": None}, TypeError, "t: parameters must be a dict, got None"),
    ],
    ids=["bad-budget", "bad-epsilon", "nan-accuracy", "string-flops", "no-parameters"],
)
def test_trial_result_validation(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    values: dict[str, Any] = {"trial_id": "t", "parameters": {}, "accuracy": 0.5, "tflops": 1.0, "mean_kept_tokens": 8}
    with pytest.raises(error, match=match):
        TrialResult(**{**values, **kwargs})
