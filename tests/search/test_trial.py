"""The NNI trial: parameter parsing, run_trial with a fake and with the real evaluation, and failure exits."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from adaptive_svdprune.search.space import check_search_space, parse_trial_parameters, search_space
from adaptive_svdprune.search.trial import TrialSettings, main, run_trial, trial_metrics

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ROOT = Path(__file__).resolve().parents[2]


class FakeEvaluate:
    """Records the configs it gets; cost grows with the budget, the split has ``total`` questions."""

    def __init__(self, total: int = 5, accuracy: float = 0.6, fail: bool = False) -> None:
        self.configs: list[Any] = []
        self.total, self.accuracy, self.fail = total, accuracy, fail

    def __call__(self, cfg: Any) -> Mapping[str, Any]:
        self.configs.append(cfg)
        if self.fail:
            raise RuntimeError("CUDA out of memory (fake)")
        kept = 40.0 if cfg.budget is None else float(cfg.budget)
        n = self.total if cfg.limit is None else min(cfg.limit, self.total)
        return {"accuracy": self.accuracy, "tflops_per_sample": kept / 100, "tflops_unpruned_per_sample": 5.76,
                "mean_kept_tokens": kept, "min_kept_tokens": kept, "max_kept_tokens": kept, "samples": n,
                "skipped": 0, "protocol": "fake", "latency_s_per_sample": math.nan, "peak_memory_mb": 10.0}


@pytest.fixture
def settings(tmp_path: Path) -> TrialSettings:
    return TrialSettings("gqa", str(FIXTURES / "gqa"), out=str(tmp_path / "eval"))


# -- parameters and search spaces -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"variance_threshold": 0.7000000000000001, "budget": "adaptive"},
         {"variance_threshold": 0.7, "budget": None, "min_tokens": 1, "max_tokens": None}),
        ({"variance_threshold": 0.85, "budget": 64.0, "min_tokens": 8, "max_tokens": 128.0},
         {"variance_threshold": 0.85, "budget": 64, "min_tokens": 8, "max_tokens": 128}),
        ({}, {"variance_threshold": 0.9, "budget": None, "min_tokens": 1, "max_tokens": None}),
    ],
    ids=["adaptive-rounded", "fixed-floats", "defaults"],
)
def test_parse_trial_parameters(params: dict[str, Any], expected: dict[str, Any]) -> None:
    assert parse_trial_parameters(params) == expected


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"variance_threshold": 0.9, "lr": 0.1}, r"unknown trial parameters \['lr'\]"),
        ({"variance_threshold": "high"}, "variance_threshold must be a number, got 'high'"),
        ({"budget": 0}, "budget must be a positive int, 'adaptive' or None, got 0"),
        ({"min_tokens": 2.5}, "min_tokens must be an int, got 2.5"),
    ],
    ids=["unknown-key", "string-eps", "zero-budget", "float-min"],
)
def test_parse_trial_parameters_rejects(params: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_trial_parameters(params)


def test_search_space_matches_the_shipped_json() -> None:
    shipped = json.loads((ROOT / "search" / "gqa.json").read_text())
    assert search_space() == shipped
    check_search_space(shipped, "TPE")
    with pytest.raises(ValueError, match="tuner GP accepts numeric choices only"):
        check_search_space(shipped, "GP")
    check_search_space(search_space(adaptive=False), "Metis")
    with pytest.raises(ValueError, match="tuner 'Anneal' is not supported"):
        check_search_space(shipped, "Anneal")
    with pytest.raises(ValueError, match=r"unknown search space keys \['lr'\]"):
        check_search_space({"lr": {"_type": "choice", "_value": [1]}})


# -- run_trial with a fake evaluation ------------------------------------------------------------------------
def test_run_trial_scalarized(settings: TrialSettings) -> None:
    fake, reports = FakeEvaluate(), []
    final = run_trial({"variance_threshold": 0.7000000000000001, "budget": "adaptive"}, settings, fake, reports.append)
    (cfg,) = fake.configs
    assert (cfg.variance_threshold, cfg.budget, cfg.method, cfg.task, cfg.out) == (0.7, None, "svd", "gqa",
                                                                                   settings.out)
    assert cfg.limit is None and cfg.feature_cache is None and cfg.wandb is False and cfg.fidelity is False
    # accuracy - lam * tflops / unpruned tflops; NaN latency is not reported (NNI's JSON.parse rejects NaN)
    assert final["default"] == pytest.approx(0.6 - 0.5 * 0.4 / 5.76)
    assert final["accuracy"] == 0.6 and final["tflops"] == 0.4 and final["mean_kept_tokens"] == 40.0
    assert "latency_s_per_sample" not in final and final["samples"] == 5.0
    assert reports == [final]
    json.loads(json.dumps(final, allow_nan=False))


def test_run_trial_constrained(tmp_path: Path) -> None:
    cap = TrialSettings("gqa", "d", out=str(tmp_path), objective="constrained", max_tflops=0.5, penalty=2.0)
    assert run_trial({"budget": 32}, cap, FakeEvaluate())["default"] == 0.6
    assert run_trial({"budget": 64}, cap, FakeEvaluate())["default"] == pytest.approx(0.6 - 2.0 * (0.64 / 0.5 - 1) - 1)


@pytest.mark.parametrize(
    ("limit", "total", "expected"),
    [(None, 5, [2, 4, 6]), (5, 9, [2, 4, 5]), (3, 9, [2, 3]), (None, 4, [2, 4, 6])],
    ids=["whole-split", "limit-not-multiple", "limit-small", "split-multiple"],
)
def test_run_trial_reports_every_chunk(tmp_path: Path, limit: int | None, total: int, expected: list[int]) -> None:
    fake, reports = FakeEvaluate(total=total), []
    chunked = TrialSettings("gqa", "d", out=str(tmp_path), limit=limit, report_every=2)
    final = run_trial({"budget": 16}, chunked, fake, reports.append)
    assert [c.limit for c in fake.configs] == expected
    assert len(reports) == len(expected) and reports[-1] == final
    assert {c.out for c in fake.configs} == {str(tmp_path)}  # one folder: each chunk resumes the previous


def test_bad_parameters_fail_before_evaluating(settings: TrialSettings) -> None:
    fake = FakeEvaluate()
    with pytest.raises(ValueError, match="variance_threshold must be in"):
        run_trial({"variance_threshold": 1.5}, settings, fake)
    with pytest.raises(ValueError, match="unknown trial parameters"):
        run_trial({"epsilon": 0.9}, settings, fake)
    assert fake.configs == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"objective": "constrained"}, "needs max_tflops"), ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
     ({"report_every": 0}, "report_every must be >= 1 or None, got 0")],
    ids=["no-cap", "batch", "report-every"],
)
def test_settings_are_checked(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrialSettings("gqa", "d", **kwargs)


def test_trial_metrics_needs_the_contract_keys(settings: TrialSettings) -> None:
    with pytest.raises(ValueError, match=r"evaluation metrics lack \['tflops_unpruned_per_sample'\]"):
        trial_metrics({"accuracy": 0.5, "tflops_per_sample": 1.0, "mean_kept_tokens": 3.0}, settings)


# -- the entry point: exit codes ----------------------------------------------------------------------------
def _argv(tmp_path: Path, params: str | None) -> list[str]:
    argv = ["--task", "gqa", "--data", str(FIXTURES / "gqa"), "--out", str(tmp_path / "eval")]
    return argv + (["--params", params] if params is not None else [])


def test_main_reports_and_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NNI_PLATFORM", raising=False)
    fake = FakeEvaluate()
    assert main(_argv(tmp_path, '{"variance_threshold": 0.8, "budget": 16}'), evaluate=fake) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["mean_kept_tokens"] == 16.0 and fake.configs[0].variance_threshold == 0.8


@pytest.mark.parametrize(
    ("params", "fail", "message"),
    [(None, False, "pass the parameters with --params"), ('{"budget": -3}', False, "budget must be a positive"),
     ("[0.9]", False, "--params must be a JSON object"), ('{"budget": 16}', True, "CUDA out of memory (fake)")],
    ids=["no-params", "bad-budget", "not-an-object", "evaluation-crash"],
)
def test_main_failure_exits_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch, params: str | None, fail: bool,
                                    message: str) -> None:
    monkeypatch.delenv("NNI_PLATFORM", raising=False)
    assert main(_argv(tmp_path, params), evaluate=FakeEvaluate(fail=fail)) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and message in err and err.rstrip().endswith("trial failed")


def test_crashing_trial_process_exits_nonzero(tmp_path: Path) -> None:
    """What NNI sees: the process status (non-zero marks the trial FAILED)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    proc = subprocess.run(
        [sys.executable, "-m", "adaptive_svdprune.search.trial", *_argv(tmp_path, '{"variance_threshold": 1.5}')],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "variance_threshold must be in (0, 1], got 1.5" in proc.stderr


# -- the real evaluation on the tiny model -------------------------------------------------------------------
def test_run_trial_with_real_evaluation(tmp_path: Path) -> None:
    common = {"limit": 2, "batch_size": 2, "max_new_tokens": 2, "feature_cache": str(tmp_path / "cache")}
    fixed = run_trial({"variance_threshold": 0.9, "budget": 16},
                      TrialSettings("gqa", str(FIXTURES / "gqa"), out=str(tmp_path / "b16"), **common))
    adaptive = run_trial({"variance_threshold": 0.7, "budget": "adaptive", "max_tokens": 8},
                         TrialSettings("gqa", str(FIXTURES / "gqa"), out=str(tmp_path / "ad"), **common))
    for final in (fixed, adaptive):
        assert 0.0 <= final["accuracy"] <= 1.0 and final["samples"] == 2.0
        assert 0 < final["tflops"] < final["tflops_unpruned_per_sample"]
        assert final["default"] == pytest.approx(final["accuracy"] - 0.5 * final["tflops"] /
                                                 final["tflops_unpruned_per_sample"])
    assert fixed["mean_kept_tokens"] == 16.0
    assert 1.0 <= adaptive["min_kept_tokens"] <= adaptive["max_kept_tokens"] <= 8.0
    assert adaptive["tflops"] < fixed["tflops"]  # fewer kept tokens, fewer FLOPs
    written = json.loads((tmp_path / "b16" / "metrics.json").read_text())
    assert written["mean_kept_tokens"] == 16.0
    assert any((tmp_path / "cache").rglob("*")), "vision features were not cached for the next trials"
