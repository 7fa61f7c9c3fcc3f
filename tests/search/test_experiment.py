"""NNI experiments: configs (built, loaded, shipped), the parameter correction, and one real experiment."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from adaptive_svdprune.models.tiny import tiny_llava_path
from adaptive_svdprune.search.experiment import (
    build_experiment_config,
    free_port,
    load_experiment_config,
    run_experiment,
    trial_command_of,
)
from adaptive_svdprune.search.nni_results import correct_parameters
from adaptive_svdprune.search.space import check_search_space, search_space
from adaptive_svdprune.search.trial import build_parser, settings_from_args
from adaptive_svdprune.tradeoffs.results import ResultSet

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SHIPPED = sorted((ROOT / "search").glob("*.yml"))


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("localhost", port))


def test_build_experiment_config(tmp_path: Path) -> None:
    config = build_experiment_config("python -m x", search_space(), trials=3, concurrency=2, tuner="TPE", seed=1,
                                     working_directory=tmp_path / "nni", code_directory=tmp_path)
    canonical = config.canonical_copy()
    assert canonical.experiment_working_directory == str(tmp_path / "nni")
    assert (canonical.max_trial_number, canonical.trial_concurrency) == (3, 2)
    assert canonical.tuner.class_args == {"optimize_mode": "maximize", "seed": 1}
    assert canonical.training_service.platform == "local"
    with pytest.raises(ValueError, match="tuner GP accepts numeric choices only"):
        build_experiment_config("python -m x", search_space(), trials=1, tuner="GP")
    with pytest.raises(ValueError, match="trials must be >= 1, got 0"):
        build_experiment_config("python -m x", search_space(), trials=0)


def test_load_experiment_config_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_experiment_config(ROOT / "search" / "demo.yml", trials=7, concurrency=1, working_directory="nni",
                                    trial_args="--limit 2", max_trial_duration="5m")
    canonical = config.canonical_copy()
    # overrides are relative to the current directory, the file's own paths to the file
    assert canonical.experiment_working_directory == str(tmp_path / "nni")
    assert canonical.trial_code_directory == str(ROOT)
    assert (canonical.max_trial_number, canonical.trial_concurrency) == (7, 1)
    assert canonical.trial_command.endswith("--lam 0.5 --limit 2")
    with pytest.raises(FileNotFoundError, match="experiment config not found"):
        load_experiment_config(tmp_path / "missing.yml")


def test_run_experiment_rejects_before_starting(tmp_path: Path) -> None:
    config = build_experiment_config("python -m x", search_space(adaptive=False), trials=1, tuner="GP",
                                     working_directory=tmp_path / "nni")
    config.search_space = search_space()  # "adaptive" is back: GP cannot sample it
    with pytest.raises(ValueError, match="numeric choices only"):
        run_experiment(config)
    assert not (tmp_path / "nni").exists()


def _canonical(path: Path, tmp_path: Path) -> Any:
    """NNI's own loader and validation of a shipped YAML (remote machines get an existing dummy SSH key)."""
    from nni.experiment import ExperimentConfig

    config = ExperimentConfig.load(str(path))
    for machine in getattr(config.training_service, "machine_list", None) or []:
        key = tmp_path / "id_ed25519"
        key.write_text("dummy")
        machine.ssh_key_file = str(key)
    return config.canonical_copy()


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_configs(path: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    canonical = _canonical(path, tmp_path)
    service = canonical.training_service
    command = trial_command_of(canonical)
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "adaptive_svdprune.search.trial"], f"{path.name} runs {command!r}"
    settings = settings_from_args(build_parser().parse_args(words[3:]))
    check_search_space(canonical.search_space, canonical.tuner.name)
    assert canonical.tuner.class_args["optimize_mode"] == "maximize"
    assert service.platform in ("local", "remote", "kubeflow")
    if service.platform == "remote":  # NNI 3.0's maintained remote service, not the older reuse path
        assert service.reuse_mode is False and raw["trainingService"]["reuseMode"] is False
    if service.platform == "kubeflow":  # reuse mode runs the top-level command; the worker's must agree
        assert service.reuse_mode is True and shlex.split(service.worker.command) == words
    if path.stem == "demo":
        assert settings.model == "tiny" and (ROOT / settings.data).is_dir()
    else:
        assert settings.model == "llava-hf/llava-1.5-7b-hf" and settings.dtype == "float16"
        gpus = service.worker.gpu_number if service.platform == "kubeflow" else canonical.trial_gpu_number
        assert gpus == 1
    if service.platform == "local":
        assert canonical.trial_code_directory == str(ROOT)
        assert canonical.experiment_working_directory == str(ROOT / "runs" / "nni")


@pytest.mark.parametrize(
    ("platform", "reuse", "runs"),
    [("kubeflow", True, "top"), ("kubeflow", False, "worker"), ("remote", False, "top")],
    ids=["kubeflow-reuse", "kubeflow-legacy", "remote"],
)
def test_command_a_trial_runs_follows_reuse_mode(platform: str, reuse: bool, runs: str) -> None:
    from types import SimpleNamespace

    service = SimpleNamespace(platform=platform, reuse_mode=reuse, worker=SimpleNamespace(command="worker"))
    assert trial_command_of(SimpleNamespace(training_service=service, trial_command="top")) == runs


def test_templates_before_the_fix_are_rejected(tmp_path: Path) -> None:
    """The old kubeflow template (no top-level trialCommand) runs an empty command under reuse mode."""
    raw = yaml.safe_load((ROOT / "search" / "kubeflow.yml").read_text())
    del raw["trialCommand"]
    raw["searchSpaceFile"] = str(ROOT / "search" / raw["searchSpaceFile"])
    (tmp_path / "old.yml").write_text(yaml.safe_dump(raw))
    assert trial_command_of(_canonical(tmp_path / "old.yml", tmp_path)) == ""
    with pytest.raises(ValueError, match="empty command on the kubeflow training service"):
        load_experiment_config(tmp_path / "old.yml")


def _job(trial: str, submitted: int, ran: int | None, params: dict[int, dict[str, Any]]) -> dict[str, Any]:
    record = {"parameter_id": submitted, "parameter_source": "algorithm", "parameters": params[submitted],
              "parameter_index": 0}
    finals = [] if ran is None else [{"parameterId": str(ran), "data": json.dumps(json.dumps({"default": 0.1}))}]
    return {"trialJobId": trial, "hyperParameters": [json.dumps(record)], "finalMetricData": finals}


def test_correct_parameters_trusts_the_reported_parameter_id() -> None:
    """NNI 3.0 local trials with concurrency > 1 can run another trial's parameters; the metric knows which."""
    params = {0: {"variance_threshold": 0.8, "budget": 16}, 1: {"variance_threshold": 0.9, "budget": 64},
              2: {"variance_threshold": 0.7, "budget": "adaptive"}}
    jobs = [_job("A", 0, 1, params), _job("B", 1, 0, params), _job("C", 2, None, params)]
    results = ResultSet()
    for trial, submitted, kept in (("A", 0, 64), ("B", 1, 16)):
        metric = {"default": 0.1, "accuracy": 0.5, "tflops": kept / 100, "mean_kept_tokens": kept}
        results.add(trial, params[submitted], metric)  # as the manager recorded them: swapped
    fixed = {t.trial_id: t for t in correct_parameters(results, jobs).trials}
    assert fixed["A"].parameters == params[1] and fixed["A"].budget == fixed["A"].mean_kept_tokens == 64
    assert fixed["B"].parameters == params[0] and fixed["B"].budget == fixed["B"].mean_kept_tokens == 16


def test_real_experiment_with_a_failing_trial(tmp_path: Path) -> None:
    """Two real trials on the tiny model, run at once: one crashes (min_tokens > max_tokens), the other reports."""
    cache_root = tiny_llava_path().parent  # reuse the built checkpoint although HOME moves below
    space = {"variance_threshold": {"_type": "choice", "_value": [0.9]}, "budget": {"_type": "choice", "_value": [16]},
             "min_tokens": {"_type": "choice", "_value": [1, 64]}, "max_tokens": {"_type": "choice", "_value": [32]}}
    (tmp_path / "space.json").write_text(json.dumps(space))
    command = shlex.join([sys.executable, "-m", "adaptive_svdprune.search.trial", "--task", "gqa", "--data",
                          str(FIXTURES / "gqa"), "--limit", "2", "--batch-size", "2", "--max-new-tokens", "2",
                          "--feature-cache", str(tmp_path / "cache")])
    experiment = {"experimentName": "test-search", "searchSpaceFile": "space.json", "trialCommand": command,
                  "trialCodeDirectory": str(ROOT), "trialConcurrency": 2, "maxTrialNumber": 2,
                  "maxTrialDuration": "5m", "tuner": {"name": "GridSearch"},
                  "trainingService": {"platform": "local", "useActiveGpu": False}}
    (tmp_path / "exp.yml").write_text(yaml.safe_dump(experiment))
    # a private HOME: NNI records experiments in ~/nni-experiments/.experiment
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    env.update(HOME=str(tmp_path / "home"), ADAPTIVE_SVDPRUNE_CACHE=str(cache_root), WANDB_MODE="disabled",
               OMP_NUM_THREADS="1")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "adaptive_svdprune.cli", "search", "--config", str(tmp_path / "exp.yml"), "--nni-dir",
         str(tmp_path / "nni"), "--out", str(out), "--timeout", "240", "--no-wandb", "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = json.loads(proc.stdout)
    assert document["status"] == "DONE" and not document["timed_out"]
    assert document["n_trials"] == 1 and list(document["failed_trials"].values()) == ["FAILED"]
    (trial,) = document["trials"]
    assert trial["parameters"] == {"variance_threshold": 0.9, "budget": 16, "min_tokens": 1, "max_tokens": 32}
    assert isinstance(trial["metrics"]["parameter_id"], int)  # the trial names the parameters it ran
    assert trial["mean_kept_tokens"] == 16.0 and 0 < trial["tflops"] < trial["metrics"]["tflops_unpruned_per_sample"]
    assert [t["trial_id"] for t in document["front"]] == [trial["trial_id"]]
    assert (out / "pareto.png").stat().st_size > 0
    assert json.loads((out / "results.json").read_text())[0]["trial_id"] == trial["trial_id"]
    assert "FAILED" in proc.stderr and "NNI manager stopped" in proc.stderr
    # the manager is gone and the experiment lives in the given working directory
    manifest = json.loads((tmp_path / "home" / "nni-experiments" / ".experiment").read_text())
    entry = manifest[document["experiment"]]
    assert entry["status"] == "STOPPED" and entry["logDir"] == str(tmp_path / "nni")
    assert not psutil.pid_exists(entry["pid"]) or psutil.Process(entry["pid"]).status() == psutil.STATUS_ZOMBIE
    assert (tmp_path / "nni" / document["experiment"] / "db" / "nni.sqlite").is_file()
