"""A search whose NNI dispatcher died (the manager still says RUNNING) stops instead of waiting for its timeout."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from adaptive_svdprune.search import experiment


def _fake_rest(monkeypatch: pytest.MonkeyPatch, status: str, jobs: list[dict[str, Any]]) -> None:
    from nni.experiment import rest

    def get(port: int, path: str) -> Any:
        return {"status": status, "errors": []} if path == "/check-status" else jobs

    monkeypatch.setattr(rest, "get", get)


def _job(trial_id: str, status: str = "SUCCEEDED") -> dict[str, Any]:
    return {"trialJobId": trial_id, "status": status, "hyperParameters": [], "finalMetricData": []}


def test_stalled_dispatcher_is_reported_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(experiment, "_STALL_S", 0.2)
    _fake_rest(monkeypatch, "RUNNING", [_job("a"), _job("b")])  # 2 of 12 ended, nothing new ever comes
    start = time.monotonic()
    status, timed_out, errors = experiment._wait(SimpleNamespace(port=1), 12, start + 30, 0.02, None)
    assert status == "STALLED" and not timed_out and time.monotonic() - start < 10
    assert "submitted no new trial" in errors[-1] and "2 of 12 trials ended" in errors[-1]


@pytest.mark.parametrize(("status", "jobs"), [("RUNNING", [_job("a"), _job("b", "RUNNING")]),
                                              ("NO_MORE_TRIAL", [_job("a")])],
                         ids=["a-trial-still-runs", "tuner-said-no-more"])
def test_running_trials_or_an_exhausted_grid_are_not_a_stall(monkeypatch: pytest.MonkeyPatch, status: str,
                                                              jobs: list[dict[str, Any]]) -> None:
    monkeypatch.setattr(experiment, "_STALL_S", 0.05)
    monkeypatch.setattr(experiment, "_SETTLE_S", 60.0)
    _fake_rest(monkeypatch, status, jobs)
    status_seen, timed_out, _ = experiment._wait(SimpleNamespace(port=1), 12, time.monotonic() + 0.5, 0.02, None)
    assert timed_out and status_seen == status  # waited for the deadline: no false alarm
