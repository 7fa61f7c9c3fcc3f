"""Search spaces are checked value by value before NNI starts (a bad epsilon used to fail every trial)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adaptive_svdprune.search.space import check_search_space, search_space

ROOT = Path(__file__).resolve().parents[2]


def _space(name: str, kind: str, values: Any) -> dict[str, Any]:
    return {name: {"_type": kind, "_value": values}}


@pytest.mark.parametrize(
    ("space", "match"),
    [
        (_space("variance_threshold", "choice", [0.9, 1.5]), r"variance_threshold must be .* got 1.5"),
        (_space("variance_threshold", "choice", [0]), "variance_threshold .* got 0"),
        (_space("variance_threshold", "choice", ["high"]), "variance_threshold .* got 'high'"),
        (_space("variance_threshold", "quniform", [0.7, 1.2, 0.05]), "variance_threshold .* got 1.2"),
        (_space("variance_threshold", "uniform", [-0.1, 0.9]), "variance_threshold .* got -0.1"),
        (_space("variance_threshold", "uniform", [0.9, 0.7]), r"low <= high .* \[0.9, 0.7\]"),
        (_space("variance_threshold", "quniform", [0.7, 0.9]), r"needs 3 numbers \[low, high, q\]"),
        (_space("budget", "choice", [16, 0]), "budget must be a positive int or 'adaptive', got 0"),
        (_space("budget", "choice", [-8]), "budget .* got -8"),
        (_space("budget", "choice", [12.5]), "budget .* got 12.5"),
        (_space("budget", "choice", ["all"]), "budget .* got 'all'"),
        (_space("budget", "randint", [0, 64]), "budget .* got 0"),
        (_space("budget", "uniform", [8, 64]), "fractional budgets"),
        (_space("min_tokens", "choice", [0, 32]), "min_tokens must be a positive int, got 0"),
        (_space("max_tokens", "choice", [True]), "max_tokens .* got True"),
        (_space("budget", "normal", [16, 2]), "_type 'normal'"),
        (_space("budget", "choice", []), "_value must be a non-empty list"),
        (_space("budget", "choice", 16), "_value must be a non-empty list, got 16"),
        (_space("lr", "choice", [0.1]), r"unknown search space keys \['lr'\]"),
        ({"budget": [16, 32]}, "must be {'_type'"),
    ],
    ids=[
        "eps-above-1", "eps-zero", "eps-string", "eps-quniform-high", "eps-uniform-low", "eps-reversed",
        "eps-quniform-no-q", "budget-zero", "budget-negative", "budget-fraction", "budget-string",
        "budget-randint-zero", "budget-uniform", "min-tokens-zero", "max-tokens-bool", "unknown-type", "empty",
        "not-a-list", "unknown-key", "not-a-spec",
    ],
)
def test_bad_values_are_named(space: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_search_space(space)


@pytest.mark.parametrize(
    "space",
    [
        search_space(),
        search_space(budgets=(8,), min_tokens=(1, 32), max_tokens=(64, 128)),
        _space("variance_threshold", "uniform", [0.5, 1.0]),
        _space("budget", "randint", [1, 577]),
        _space("budget", "quniform", [16, 192, 16]),
        _space("budget", "choice", [16, 64.0, "adaptive"]),
    ],
    ids=["default", "clips", "eps-uniform-to-1", "budget-randint", "budget-quniform", "budget-float-int"],
)
def test_good_spaces_pass(space: dict[str, Any]) -> None:
    check_search_space(space, "TPE")


@pytest.mark.parametrize("path", sorted((ROOT / "search").glob("*.json")), ids=lambda p: p.stem)
def test_shipped_spaces_pass(path: Path) -> None:
    check_search_space(json.loads(path.read_text()))


def test_search_command_rejects_a_bad_space_before_nni_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from adaptive_svdprune.cli import main

    (tmp_path / "space.json").write_text(json.dumps(_space("variance_threshold", "choice", [0.9, 1.5])))
    experiment = {"searchSpaceFile": "space.json", "trialCommand": "python -m adaptive_svdprune.search.trial",
                  "trialCodeDirectory": str(tmp_path), "trialConcurrency": 1, "maxTrialNumber": 2,
                  "tuner": {"name": "GridSearch"}, "trainingService": {"platform": "local"}}
    (tmp_path / "exp.yml").write_text(yaml.safe_dump(experiment))
    code = main(["search", "--config", str(tmp_path / "exp.yml"), "--nni-dir", str(tmp_path / "nni"),
                 "--out", str(tmp_path / "out"), "--no-wandb"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == ("adaptive-svdprune search: error: search space: variance_threshold must be a number in (0, 1], "
                   "got 1.5")
    assert not (tmp_path / "nni").exists()
