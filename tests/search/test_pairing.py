"""Concurrent trials: every route pairs each trial's metrics with the parameters it really ran.

NNI 3.0 can start a trial with another queued parameter set than the one it records for it; its REST API,
``export_data()`` and ``nnictl experiment export`` (JSON and CSV) then show swapped parameters. Our trials
report the parameters they ran and their ``parameter_id`` inside the final metric (``with_parameters``).
Here four trials ran a shuffled assignment; the database, the REST server (``pareto --port``) and both export
formats (``pareto/profile --results``) must all give the truth, through the readers and through the CLI.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from adaptive_svdprune.cli import main
from adaptive_svdprune.search.nni_results import read_experiment
from adaptive_svdprune.search.trial import with_parameters
from adaptive_svdprune.tradeoffs.results import ResultSet, load_results
from tests.search._data import NNI_SCHEMA

PARAMS: list[dict[str, Any]] = [
    {"variance_threshold": 0.7, "budget": 16},
    {"variance_threshold": 0.8, "budget": 32},
    {"variance_threshold": 0.9, "budget": "adaptive"},
    {"variance_threshold": 0.95, "budget": 64},
]
TRIALS = ["tA", "tB", "tC", "tD"]
#: trial i was recorded with PARAMS[i] but ran PARAMS[RAN[i]]
RAN = [1, 0, 3, 2]


def _kept(params: dict[str, Any]) -> float:
    return 100.0 if params["budget"] == "adaptive" else float(params["budget"])


def _metric(i: int, with_params: bool = True) -> dict[str, Any]:
    ran = PARAMS[RAN[i]]
    base = {"default": 0.1 * i, "accuracy": 0.2 + 0.1 * i, "tflops": _kept(ran) / 100, "mean_kept_tokens": _kept(ran)}
    return with_parameters(base, ran, RAN[i]) if with_params else {**base, "parameter_id": RAN[i]}


def _truth() -> dict[str, dict[str, Any]]:
    return {trial: PARAMS[RAN[i]] for i, trial in enumerate(TRIALS)}


def _pairs(results: ResultSet) -> dict[str, dict[str, Any]]:
    return {t.trial_id: t.parameters for t in results.trials}


def _json_export(path: Path, with_params: bool = True) -> Path:
    # what `nnictl experiment export --type json` writes: NNI's recorded (wrong) parameters
    records = [{"parameter": PARAMS[i], "value": json.dumps(_metric(i, with_params)), "trialJobId": trial}
               for i, trial in enumerate(TRIALS)]
    path.write_text(json.dumps(records))
    return path


def _csv_export(path: Path) -> Path:
    # nnictl_utils.export_trials_data: {**parameter, **value, trialJobId} per row, DictWriter over all keys
    rows = [{**PARAMS[i], **_metric(i), "trialJobId": trial} for i, trial in enumerate(TRIALS)]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, sorted(set().union(*(r.keys() for r in rows))))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _database(root: Path, with_params: bool = True) -> Path:
    db = root / "expC" / "db" / "nni.sqlite"
    db.parent.mkdir(parents=True)
    con = sqlite3.connect(db)
    con.executescript(NNI_SCHEMA)
    for i, trial in enumerate(TRIALS):
        record = {"parameter_id": i, "parameter_source": "algorithm", "parameters": PARAMS[i], "parameter_index": 0}
        con.execute("insert into TrialJobEvent values (?,?,?,?,?,?,?,?)",
                    (i, trial, "WAITING", json.dumps(record), "", i, None, "local"))
        con.execute("insert into MetricData values (?,?,?,?,?,?)",
                    (i, trial, str(RAN[i]), "FINAL", 0, json.dumps(json.dumps(_metric(i, with_params)))))
        con.execute("insert into TrialJobEvent values (?,?,?,?,?,?,?,?)",
                    (i, trial, "SUCCEEDED", None, "", i, None, "local"))
    con.commit()
    con.close()
    return root


def _fake_rest(monkeypatch: pytest.MonkeyPatch, with_params: bool = True) -> None:
    from nni.experiment import Experiment
    from nni.experiment.data import TrialJob
    from nni.experiment.data import TrialResult as NniTrialResult

    jobs = [TrialJob(trialJobId=trial, status="SUCCEEDED", startTime=0, sequenceId=i, hyperParameters=[json.dumps(
        {"parameter_id": i, "parameter_source": "algorithm", "parameters": PARAMS[i], "parameter_index": 0})],
        finalMetricData=[{"timestamp": 0, "trialJobId": trial, "parameterId": RAN[i], "type": "FINAL", "sequence": 0,
                          "data": json.dumps(json.dumps(_metric(i, with_params)))}])
        for i, trial in enumerate(TRIALS)]
    exported = [NniTrialResult(PARAMS[i], json.dumps(_metric(i, with_params)), trial) for i, trial in enumerate(TRIALS)]
    fake = SimpleNamespace(id="expC", list_trial_jobs=lambda: jobs, export_data=lambda: exported)
    monkeypatch.setattr(Experiment, "connect", classmethod(lambda cls, port: fake))


def test_every_reader_gives_the_parameters_that_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_rest(monkeypatch)
    routes = {
        "database": read_experiment("expC", root=_database(tmp_path / "nni")),
        "rest": read_experiment("expC", port=9999),
        "json export": load_results(_json_export(tmp_path / "export.json")),
        "csv export": load_results(_csv_export(tmp_path / "export.csv")),
    }
    for route, results in routes.items():
        assert _pairs(results) == _truth(), route
        assert not results.failed, route
        for trial in results.trials:  # the metric agrees with the parameters: kept tokens follow the budget
            assert trial.mean_kept_tokens == _kept(trial.parameters), route
            assert "variance_threshold" not in trial.metrics and trial.metrics["parameter_id"] in range(4), route


def test_parameter_id_alone_is_enough_where_nni_keeps_the_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Older trials reported only the id: the database and REST routes still pair them right."""
    _fake_rest(monkeypatch, with_params=False)
    for results in (read_experiment("expC", root=_database(tmp_path / "nni", with_params=False)),
                    read_experiment("expC", port=9999)):
        assert _pairs(results) == _truth()


@pytest.mark.parametrize("route", ["json", "csv", "database", "rest"])
def test_pareto_and_profile_commands_agree(
    route: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_rest(monkeypatch)
    source = {
        "json": lambda: ["--results", str(_json_export(tmp_path / "export.json"))],
        "csv": lambda: ["--results", str(_csv_export(tmp_path / "export.csv"))],
        "database": lambda: ["--experiment", "expC", "--nni-dir", str(_database(tmp_path / "nni"))],
        "rest": lambda: ["--experiment", "expC", "--port", "9999"],
    }[route]()
    assert main(["pareto", *source, "--out", str(tmp_path / "pareto"), "--no-wandb", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert {t["trial_id"]: t["parameters"] for t in document["trials"]} == _truth()
    assert main(["profile", *source, "--task", "gqa", "--name", "p", "--max-tflops", "0.2", "--out",
                 str(tmp_path / "p.yaml"), "--json"]) == 0
    chosen = json.loads(capsys.readouterr().out)
    # tA ran budget 32 (0.32 TFLOPs); within 0.2 only tB (ran budget 16) fits
    assert chosen["trial_id"] == "tB" and chosen["budget"] == 16 and chosen["variance_threshold"] == 0.7
