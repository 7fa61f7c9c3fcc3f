"""W&B logging of a search: disabled in unit tests, plus one real offline run written under tmp_path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
        results, pareto_front(trials), project="adaptive-svdprune-test", name="pareto-gqa", dir=tmp_path, task="gqa",
        model="tiny", group="exp1",
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


class _FakeRun:
    """What ``wandb.init`` returns, recording what is logged (no files, no network)."""

    def __init__(self, calls: dict[str, Any], kwargs: dict[str, Any]) -> None:
        self.calls, self.summary, self.dir = calls, {}, str(Path(kwargs.get("dir") or ".") / "wandb" / "run" / "files")
        calls.setdefault("init", []).append(kwargs)

    def log(self, data: dict[str, Any]) -> None:
        self.calls.setdefault("log", []).append(data)

    def log_artifact(self, artifact: Any) -> None:
        self.calls.setdefault("artifacts", []).append(artifact)

    def finish(self) -> None:
        self.calls["finished"] = self.calls.get("finished", 0) + 1


@pytest.fixture
def wandb_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    import wandb

    calls: dict[str, Any] = {}
    monkeypatch.setattr(wandb, "init", lambda **kwargs: _FakeRun(calls, kwargs))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return calls


@pytest.mark.parametrize(("env", "given", "expected"),
                         [(None, None, "offline"), ("online", None, "online"), ("offline", None, "offline"),
                          ("online", "offline", "offline"), ("disabled", "online", "disabled")],
                         ids=["unset-offline", "env-online", "env-offline", "flag-wins", "env-disabled-wins"])
def test_mode_follows_wandb_mode(env: str | None, given: str | None, expected: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from adaptive_svdprune.tradeoffs.wandb_log import resolve_mode

    if env is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", env)
    assert resolve_mode(given) == expected  # type: ignore[arg-type]


def test_search_run_is_grouped_tagged_and_uses_eval_metric_names(
    wandb_calls: dict[str, Any], trials: list[TrialResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    log_pareto_to_wandb(trials, pareto_front(trials), project="p", task="gqa", model="tiny", job_type="search",
                        config={"experiment": "exp9"})
    (init,) = wandb_calls["init"]
    assert init["mode"] == "online" and init["group"] == "exp9" and init["job_type"] == "search"
    assert init["tags"] == ["gqa", "tiny", "svd"]
    assert {"model": "tiny", "task": "gqa", "method": "svd", "experiment": "exp9"}.items() <= init["config"].items()
    steps = [entry for entry in wandb_calls["log"] if "accuracy" in entry]
    assert len(steps) == len(trials)
    assert {"accuracy", "tflops", "mean_kept_tokens"} <= set(steps[0]) and wandb_calls["finished"] == 1


def test_profile_is_an_artifact(wandb_calls: dict[str, Any], tmp_path: Path) -> None:
    from adaptive_svdprune.tradeoffs.wandb_log import log_profile_to_wandb

    profile = tmp_path / "edge.yaml"
    profile.write_text("name: edge\n")
    entry = {"trial_id": "t1", "variance_threshold": 0.9, "budget": 16, "accuracy": 0.5, "tflops": 1.0,
             "mean_kept_tokens": 16.0}
    log_profile_to_wandb(profile, "edge", "gqa", entry, project="p", model="tiny", dir=tmp_path)
    (init,) = wandb_calls["init"]
    assert init["group"] == "edge" and init["job_type"] == "profile" and init["tags"] == ["gqa", "tiny", "svd"]
    assert init["config"]["model"] == "tiny" and init["config"]["task"] == "gqa" and init["mode"] == "offline"
    (artifact,) = wandb_calls["artifacts"]
    assert artifact.type == "profile" and artifact.name == "profile-edge"
    assert [entry.path for entry in artifact.manifest.entries.values()] == ["edge.yaml"]
    assert wandb_calls["log"] == [{"accuracy": 0.5, "tflops": 1.0, "mean_kept_tokens": 16.0}]


@pytest.mark.parametrize("command", ["pareto", "profile", "search"])
def test_commands_log_with_group_tags_and_job_type(
    command: str, wandb_calls: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    trials: list[TrialResult],
) -> None:
    from adaptive_svdprune.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "online")
    results = tmp_path / "results.json"
    results.write_text(json.dumps([t.to_dict() for t in trials]))
    if command == "search":
        from types import SimpleNamespace

        from adaptive_svdprune.commands.search import write_search_outputs

        outcome = SimpleNamespace(results=ResultSet(trials=trials), experiment_id="exp7", status="DONE",
                                  timed_out=False, wall_s=1.0, directory=tmp_path / "nni" / "exp7")
        write_search_outputs(outcome, tmp_path / "out", "gqa", model="tiny")  # type: ignore[arg-type]
        group, job = "exp7", "search"
    elif command == "pareto":
        assert main(["pareto", "--results", str(results), "--task", "gqa", "--model", "tiny"]) == 0
        group, job = "results", "pareto"
    else:
        assert main(["profile", "--results", str(results), "--task", "gqa", "--name", "edge", "--model", "tiny",
                     "--max-tflops", "2"]) == 0
        group, job = "edge", "profile"
        assert wandb_calls["artifacts"][0].type == "profile"
    (init,) = wandb_calls["init"]
    assert (init["group"], init["job_type"], init["mode"]) == (group, job, "online")
    assert init["tags"] == ["gqa", "tiny", "svd"]
    assert init["config"]["model"] == "tiny" and init["config"]["task"] == "gqa"
