"""The ``pareto`` and ``profile`` commands, end to end on a results file and on an NNI database."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from adaptive_svdprune.commands import pareto as pareto_cmd
from adaptive_svdprune.commands import profile as profile_cmd
from adaptive_svdprune.tradeoffs.results import TrialResult, save_results


def invoke(module: ModuleType, argv: list[str]) -> int:
    """Parse and run one command module the way ``adaptive_svdprune.cli`` does, without the other commands."""
    parser = argparse.ArgumentParser(prog=module.__name__)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(argv)))


@pytest.fixture
def results_file(tmp_path: Path, trials: list[TrialResult]) -> Path:
    return save_results(trials, tmp_path / "results.json")


def test_pareto_from_results_file(tmp_path: Path, results_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert invoke(pareto_cmd, ["--results", str(results_file), "--out", str(out), "--task", "gqa", "--no-wandb"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split() == ["trial", "epsilon", "budget", "accuracy", "tflops", "kept", "tokens"]
    assert [line.split()[0] for line in text.splitlines()[2:5]] == ["t4", "t0", "t2"]
    assert "6 trials, 0 failed; Pareto front of 3" in text
    doc = json.loads((out / "pareto.json").read_text())
    assert [t["trial_id"] for t in doc["front"]] == ["t4", "t0", "t2"]
    assert len(doc["trials"]) == 6 and doc["failed"] == 0 and doc["task"] == "gqa"
    assert (out / "pareto.png").stat().st_size > 1000
    assert not (out / "wandb").exists()


def test_pareto_from_experiment_json(tmp_path: Path, nni_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # WANDB_MODE=disabled (tests/conftest): the W&B step runs but writes nothing
    out = tmp_path / "out"
    argv = ["--experiment", "exp123", "--nni-dir", str(nni_root), "--out", str(out), "--json"]
    assert invoke(pareto_cmd, argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["failed"] == 5 and printed["pending"] == ["rUnNi"] and printed["experiment"] == "exp123"
    assert [t["trial_id"] for t in printed["front"]] == ["otFkA"]
    assert printed["files"]["wandb"] is None
    assert json.loads((out / "pareto.json").read_text())["failed_trials"]["R2Dtr"] == "FAILED"


def test_pareto_without_successful_trials_still_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"trials": [], "failed_trials": {"a": "FAILED"}}))
    assert invoke(pareto_cmd, ["--results", str(empty), "--out", str(tmp_path / "o"), "--no-wandb"]) == 1
    assert "no successful trials" in capsys.readouterr().err
    assert json.loads((tmp_path / "o" / "pareto.json").read_text())["failed"] == 1


def test_pareto_default_out_dir(tmp_path: Path, results_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke(pareto_cmd, ["--results", str(results_file), "--no-wandb"]) == 0
    assert (tmp_path / "runs" / "pareto" / "results" / "pareto.json").is_file()


def test_profile_command_writes_and_merges(
    tmp_path: Path, results_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "profiles" / "edge.yaml"
    base = ["--results", str(results_file), "--name", "edge", "--model", "llava-tiny", "--out", str(out)]
    assert invoke(profile_cmd, [*base, "--task", "gqa", "--max-tflops", "1.2"]) == 0
    assert "max_tflops<=1.2" in capsys.readouterr().out
    assert invoke(profile_cmd, [*base, "--task", "textvqa", "--min-accuracy", "0.65", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["trial_id"] == "t2" and printed["budget"] == 64 and printed["constraint"] == "min_accuracy>=0.65"
    doc = yaml.safe_load(out.read_text())
    assert doc["tasks"]["gqa"]["trial_id"] == "t0" and doc["tasks"]["gqa"]["budget"] is None
    assert doc["tasks"]["textvqa"]["variance_threshold"] == 0.6


def test_profile_from_experiment_default_path(tmp_path: Path, nni_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["--experiment", "exp123", "--nni-dir", str(nni_root), "--task", "gqa", "--max-tflops", "0.8"]
    assert invoke(profile_cmd, [*argv, "--name", "lab"]) == 0
    doc = yaml.safe_load((tmp_path / "profiles" / "lab.yaml").read_text())
    assert doc["experiments"] == ["exp123"] and doc["tasks"]["gqa"]["experiment"] == "exp123"


def test_profile_infeasible_is_a_user_error(
    results_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from adaptive_svdprune.cli import main

    argv = ["profile", "--results", str(results_file), "--task", "gqa", "--max-tflops", "0.1", "--name", "x"]
    assert main([*argv, "--out", str(tmp_path / "x.yaml")]) == 2
    assert "no trial has tflops <= 0.1; the cheapest is trial t4" in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--task", "gqa", "--max-tflops", "1", "--name", "x"],
        ["--results", "r.json", "--experiment", "e", "--task", "gqa", "--max-tflops", "1", "--name", "x"],
        ["--results", "r.json", "--task", "gqa", "--max-tflops", "1", "--min-accuracy", "0.5", "--name", "x"],
        ["--results", "r.json", "--task", "gqa", "--name", "x"],
    ],
    ids=["no-source", "two-sources", "two-constraints", "no-constraint"],
)
def test_profile_argument_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        invoke(profile_cmd, argv)
    assert info.value.code == 2


def test_missing_results_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="results file not found"):
        invoke(pareto_cmd, ["--results", str(tmp_path / "nope.json"), "--no-wandb"])
