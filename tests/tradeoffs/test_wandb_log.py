"""W&B logging of a search: disabled in unit tests, plus one real offline run written under tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptive_svdprune.tradeoffs.pareto import pareto_front
from adaptive_svdprune.tradeoffs.results import ResultSet, TrialResult
from adaptive_svdprune.tradeoffs.wandb_log import TABLE_COLUMNS, log_pareto_to_wandb, summary_values, trial_rows


def test_rows_and_summary(trials: list[TrialResult]) -> None:
    front = pareto_front(trials)
    rows = trial_rows(trials, front)
    assert len(rows) == len(trials) and all(len(r) == len(TABLE_COLUMNS) for r in rows)
    assert [r[0] for r in rows if r[-1]] == ["t0", "t2", "t4"]
    assert rows[0][2] == "adaptive" and rows[1][2] == "32"
    assert summary_values(trials, front, failed=3) == {
        "n_trials": 6,
        "failed_trials": 3,
        "front_size": 3,
        "best_accuracy": 0.7,
        "min_tflops": 0.5,
    }


def test_env_disabled_wins_over_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trials: list[TrialResult]
) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert log_pareto_to_wandb(trials, pareto_front(trials), project="p", mode="offline", dir=tmp_path) is None
    assert not (tmp_path / "wandb").exists()


def test_bad_mode(trials: list[TrialResult]) -> None:
    with pytest.raises(ValueError, match="mode must be 'online', 'offline' or 'disabled', got 'cloud'"):
        log_pareto_to_wandb(trials, [], project="p", mode="cloud")  # type: ignore[arg-type]


def test_offline_run_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trials: list[TrialResult]) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    results = ResultSet(trials=trials, failed={"x": "FAILED"}, source="unit test")
    run_dir = log_pareto_to_wandb(
        results, pareto_front(trials), project="adaptive-svdprune-test", name="pareto-gqa", dir=tmp_path, task="gqa"
    )
    assert run_dir is not None
    run_path = Path(run_dir)
    assert run_path.parent == tmp_path / "wandb" and run_path.name.startswith("offline-run-")
    assert list(run_path.glob("*.wandb"))
    tables = list((run_path / "files" / "media" / "table").glob("trials_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert table["columns"] == list(TABLE_COLUMNS) and len(table["data"]) == len(trials)
    assert list((run_path / "files" / "media" / "images").glob("pareto_plot_*.png"))
    import wandb

    assert wandb.run is None  # the run was finished
