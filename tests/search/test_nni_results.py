"""Reading NNI experiments: the on-disk trial database (schema of NNI 3.0) and the REST route."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from adaptive_svdprune.search import nni_results
from adaptive_svdprune.search.nni_results import experiment_dir, read_experiment, read_nni_database
from tests.search._data import write_nni_db


def test_reads_database_like_nni(nni_root: Path) -> None:
    results = read_experiment("exp123", root=nni_root)
    assert [t.trial_id for t in results.trials] == ["KgTxn", "otFkA"]
    second = results.trials[1]
    assert second.parameters == {"variance_threshold": 0.9, "budget": 64}
    assert (second.accuracy, second.tflops, second.mean_kept_tokens, second.objective) == (0.9, 0.64, 64.0, 0.8)
    assert second.metrics == {"latency_ms": 12.5}
    assert results.failed == {
        "R2Dtr": "FAILED",
        "cAnCl": "USER_CANCELED",
        "nOfIn": "SUCCEEDED without a final metric",
        "bAdMe": "final metric has no tflops",
        "eArLy": "EARLY_STOPPED",
    }
    assert results.pending == ["rUnNi"]
    assert "exp123" in results.source


def test_several_parameter_sets_in_one_trial(tmp_path: Path) -> None:
    db = write_nni_db(tmp_path / "nni.sqlite", [])
    con = sqlite3.connect(db)
    for pid, eps in ((0, 0.5), (1, 0.9)):
        hp = {"parameter_id": pid, "parameters": {"variance_threshold": eps, "budget": 8}, "parameter_index": pid}
        con.execute(
            "insert into TrialJobEvent (trialJobId, event, data) values ('T', ?, ?)",
            ("RUNNING" if pid == 0 else "ADD_HYPERPARAMETER", json.dumps(hp)),
        )
        metric = {"default": eps, "accuracy": eps, "tflops": 1.0, "mean_kept_tokens": 8}
        con.execute(
            "insert into MetricData (trialJobId, parameterId, type, data) values ('T', ?, 'FINAL', ?)",
            (str(pid), json.dumps(json.dumps(metric))),
        )
    con.execute("insert into TrialJobEvent (trialJobId, event) values ('T', 'SUCCEEDED')")
    con.commit()
    con.close()
    results = read_nni_database(db)
    assert [(t.trial_id, t.variance_threshold) for t in results.trials] == [("T:0", 0.5), ("T:1", 0.9)]


def test_parameters_follow_the_reported_parameter_id(tmp_path: Path) -> None:
    # concurrent trials: the events pair A with parameter 0 and B with 1, but A really ran 1 and B ran 0
    db = write_nni_db(tmp_path / "nni.sqlite", [])
    con = sqlite3.connect(db)
    for trial, pid, ran, eps in (("A", 0, 1, 0.7), ("B", 1, 0, 0.9)):
        hp = {"parameter_id": pid, "parameters": {"variance_threshold": eps, "budget": 16}, "parameter_index": 0}
        con.execute("insert into TrialJobEvent (trialJobId, event, data) values (?, 'RUNNING', ?)",
                    (trial, json.dumps(hp)))
        metric = {"default": 0.5, "accuracy": 0.5, "tflops": 1.0, "mean_kept_tokens": 16}
        con.execute("insert into MetricData (trialJobId, parameterId, type, data) values (?, ?, 'FINAL', ?)",
                    (trial, str(ran), json.dumps(json.dumps(metric))))
        con.execute("insert into TrialJobEvent (trialJobId, event) values (?, 'SUCCEEDED')", (trial,))
    con.commit()
    con.close()
    results = read_nni_database(db)
    assert [(t.trial_id, t.variance_threshold) for t in results.trials] == [("A", 0.9), ("B", 0.7)]


def test_missing_and_invalid_database(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no NNI database for experiment 'gone'"):
        read_experiment("gone", root=tmp_path)
    (tmp_path / "junk.sqlite").write_text("not a database")
    with pytest.raises(ValueError, match="is not an NNI trial database"):
        read_nni_database(tmp_path / "junk.sqlite")


def test_experiment_dir_from_nnictl_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nni_root: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setattr(nni_results, "NNI_HOME", home)
    assert experiment_dir("exp123") == home / "exp123"  # no manifest: the default
    (home / ".experiment").write_text(json.dumps({"exp123": {"id": "exp123", "logDir": str(nni_root)}}))
    assert experiment_dir("exp123") == nni_root / "exp123"
    assert len(read_experiment("exp123").trials) == 2
    (home / ".experiment").write_text("{broken")
    assert experiment_dir("exp123") == home / "exp123"


def test_rest_route(monkeypatch: pytest.MonkeyPatch) -> None:
    from nni.experiment import Experiment
    from nni.experiment.data import TrialResult as NniTrialResult

    metric = json.dumps({"default": 0.1, "accuracy": 0.5, "tflops": 1.0, "mean_kept_tokens": 9})
    fake = SimpleNamespace(
        id="live1",
        list_trial_jobs=lambda: [
            SimpleNamespace(trialJobId="a", status="SUCCEEDED", finalMetricData=[1]),
            SimpleNamespace(trialJobId="b", status="FAILED", finalMetricData=[]),
            SimpleNamespace(trialJobId="c", status="RUNNING", finalMetricData=[]),
        ],
        export_data=lambda: [NniTrialResult({"variance_threshold": 0.7, "budget": 4}, metric, "a")],
    )
    ports: list[int] = []
    monkeypatch.setattr(Experiment, "connect", classmethod(lambda cls, port: ports.append(port) or fake))
    results = read_experiment("live1", port=8765)
    assert ports == [8765]
    assert [t.trial_id for t in results.trials] == ["a"]
    assert results.failed == {"b": "FAILED"} and results.pending == ["c"]
    with pytest.raises(ValueError, match="port 8765 serves experiment 'live1', not 'other'"):
        read_experiment("other", port=8765)


def test_rest_failure_falls_back_to_database(monkeypatch: pytest.MonkeyPatch, nni_root: Path) -> None:
    from nni.experiment import Experiment

    def refuse(cls: type, port: int) -> None:
        raise ConnectionError(f"connection refused on {port}")

    monkeypatch.setattr(Experiment, "connect", classmethod(refuse))
    results = read_experiment("exp123", port=1, root=nni_root)
    assert len(results.trials) == 2 and "REST on port 1 failed (ConnectionError" in results.source
    with pytest.raises(FileNotFoundError, match=r"REST on port 1 failed .* no NNI database for experiment 'x'"):
        read_experiment("x", port=1, root=nni_root)
