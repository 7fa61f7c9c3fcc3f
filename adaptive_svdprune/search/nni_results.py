"""Read the trials of an NNI experiment, running or stopped.

The robust route is NNI's own trial database, ``<working dir>/<id>/db/nni.sqlite``, which NNI 3.0 keeps
after the experiment stops (``export_data()`` needs a live REST server). Its two tables we read:

``TrialJobEvent(timestamp, trialJobId, event, data, logPath, sequenceId, message, environmentId)``
    One row per status change (``WAITING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED``, ``USER_TO_CANCEL``,
    ``SYS_CANCELED``, ``EARLY_STOPPED``, ...). ``data`` is JSON ``{"parameter_id": 0, "parameter_source":
    "algorithm", "parameters": {...}, "parameter_index": 0}`` on the event that carries the parameters.
``MetricData(timestamp, trialJobId, parameterId, type, sequence, data)``
    ``type`` is ``FINAL`` or ``PERIODICAL``; ``parameterId`` is the parameter id as text; ``data`` is the
    reported value JSON-encoded *twice* (a JSON string holding the JSON of the dict).

A trial's status is replayed from its events the way the NNI manager does it (the last event wins,
``USER_TO_CANCEL`` means ``USER_CANCELED``). Only ``SUCCEEDED`` trials with a usable final metric become
results, as in ``export_data()``; failed or cancelled ones are counted in :attr:`ResultSet.failed`, and
unfinished ones are listed in :attr:`ResultSet.pending` of the returned set.

With ``port`` the experiment's REST server is asked instead (``Experiment.connect(port)``), for an
experiment whose files are not on this machine. ``Experiment(id).view()`` is not used: it starts a web
server only to serve what the database already holds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from adaptive_svdprune.tradeoffs.results import ResultSet, decode_metric

__all__ = [
    "FAILED_STATUSES",
    "correct_parameters",
    "experiment_dir",
    "job_view",
    "parameters_by_id",
    "read_experiment",
    "read_nni_database",
]

#: Trial statuses that end a trial without a result.
FAILED_STATUSES: tuple[str, ...] = ("FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED")
_STATUS_OF_EVENT = {"USER_TO_CANCEL": "USER_CANCELED", "ADD_CUSTOMIZED": "WAITING"}
NNI_HOME = Path("~/nni-experiments")


def experiment_dir(experiment_id: str, root: str | Path | None = None) -> Path:
    """Directory of an NNI experiment: ``root/<id>``, else the one nnictl recorded, else ``~/nni-experiments/<id>``.

    nnictl records every experiment with its working directory (``logDir``) in ``~/nni-experiments/.experiment``,
    so experiments created with a custom ``experimentWorkingDirectory`` are found too.
    """
    if root is not None:
        return Path(root).expanduser() / experiment_id
    manifest = NNI_HOME.expanduser() / ".experiment"
    try:
        entry = json.loads(manifest.read_text()).get(experiment_id) or {}
    except (OSError, ValueError, AttributeError):
        entry = {}
    log_dir = entry.get("logDir") if isinstance(entry, dict) else None
    if log_dir and (Path(log_dir).expanduser() / experiment_id).is_dir():
        return Path(log_dir).expanduser() / experiment_id
    return NNI_HOME.expanduser() / experiment_id


def _trial_jobs(con: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = {}
    rows = con.execute("SELECT trialJobId, event, data FROM TrialJobEvent ORDER BY rowid")
    for trial_id, event, data in rows:
        if not trial_id:
            continue
        job = jobs.setdefault(trial_id, {"status": "UNKNOWN", "parameters": {}})
        if event != "ADD_HYPERPARAMETER":
            job["status"] = _STATUS_OF_EVENT.get(event, event)
        if data and data.strip():
            try:
                hparams = json.loads(data)
            except json.JSONDecodeError:
                continue
            if isinstance(hparams, dict) and "parameters" in hparams:
                job["parameters"][str(hparams.get("parameter_id"))] = hparams["parameters"]
    return jobs


def read_nni_database(db_path: str | Path) -> ResultSet:
    """Trials from an NNI ``nni.sqlite`` file (see the module docstring for the schema).

    A trial that ran several parameter sets (``parameter_index`` > 0) yields one result per final metric,
    with id ``"<trial>:<parameter id>"``.
    """
    db_path = Path(db_path)
    if not db_path.is_file():
        raise FileNotFoundError(f"NNI database not found: {db_path}")
    results = ResultSet(source=str(db_path))
    # read-only: the experiment may still be running and writing
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        jobs = _trial_jobs(con)
        finals: dict[str, list[tuple[str, Any]]] = {}
        rows = con.execute("SELECT trialJobId, parameterId, data FROM MetricData WHERE type = 'FINAL' ORDER BY rowid")
        for trial_id, parameter_id, data in rows:
            finals.setdefault(trial_id, []).append((str(parameter_id), data))
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{db_path} is not an NNI trial database: {err}") from None
    finally:
        con.close()
    # NOTE: NNI 3.0's local training service can hand a starting trial the next queued parameter set rather than
    # the one its events record, so with concurrent trials the events may pair trials and parameters wrongly.
    # The parameter id a trial reports with its final metric is the one it really ran: look parameters up by it.
    by_parameter_id = {pid: p for job in jobs.values() for pid, p in job["parameters"].items()}
    for trial_id, job in jobs.items():
        status = job["status"]
        if status in FAILED_STATUSES:
            results.failed[trial_id] = status
        elif status != "SUCCEEDED":
            results.pending.append(trial_id)
        elif trial_id not in finals:
            results.failed[trial_id] = "SUCCEEDED without a final metric"
        else:
            params = job["parameters"]
            metrics = finals[trial_id]
            for parameter_id, data in metrics:
                # NOTE: one parameter set per trial is the norm; keep the plain trial id for it.
                result_id = trial_id if len(metrics) == 1 else f"{trial_id}:{parameter_id}"
                chosen = by_parameter_id.get(parameter_id, next(iter(params.values()), {}))
                results.add(result_id, chosen, decode_metric(data))
    return results


def parameters_by_id(jobs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every parameter set the tuner sent, by parameter id (whichever trial it was submitted with)."""
    by_id: dict[str, dict[str, Any]] = {}
    for job in jobs:
        for raw in job.get("hyperParameters") or []:
            record = json.loads(raw) if isinstance(raw, str) else raw
            if isinstance(record, Mapping) and isinstance(record.get("parameters"), Mapping):
                by_id[str(record.get("parameter_id"))] = dict(record["parameters"])
    return by_id


def job_view(
    job: Mapping[str, Any], by_id: Mapping[str, dict[str, Any]]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The parameters a trial really ran (from its final metric's parameter id) and that metric.

    NOTE: with trialConcurrency > 1, NNI 3.0's local training service gives each starting trial the next
    queued parameter set, not the one the manager recorded for it, so the manager's trial -> parameters
    records (``/trial-jobs``, ``export_data()``, the database's job events) can be swapped between trials.
    The metric a trial reports carries the parameter id it really received: trust that. ``None`` parameters:
    the trial reported nothing (it failed), so what it ran is not known.
    """
    finals = job.get("finalMetricData") or []
    if not finals:
        return None, None
    metric = decode_metric(finals[-1].get("data"))
    params = by_id.get(str(finals[-1].get("parameterId")))
    return params, metric if isinstance(metric, dict) else None


def correct_parameters(results: ResultSet, jobs: list[dict[str, Any]]) -> ResultSet:
    """Give each result the parameters its own final metric names (see :func:`job_view`)."""
    by_id = parameters_by_id(jobs)
    ran = {job["trialJobId"]: job_view(job, by_id)[0] for job in jobs}
    trials = []
    for trial in results.trials:
        params = ran.get(trial.trial_id)
        trials.append(trial if params is None or params == trial.parameters else replace(trial, parameters=params))
    results.trials = trials
    return results


def _read_rest(port: int, experiment_id: str | None) -> ResultSet:
    from nni.experiment import Experiment

    experiment = Experiment.connect(port)
    if experiment_id is not None and experiment.id != experiment_id:
        raise ValueError(f"port {port} serves experiment {experiment.id!r}, not {experiment_id!r}")
    results = ResultSet(source=f"nni experiment {experiment.id} (port {port})")
    jobs = experiment.list_trial_jobs()
    for job in jobs:
        if job.status in FAILED_STATUSES:
            results.failed[job.trialJobId] = job.status
        elif job.status != "SUCCEEDED":
            results.pending.append(job.trialJobId)
        elif not job.finalMetricData:
            results.failed[job.trialJobId] = "SUCCEEDED without a final metric"
    exported = experiment.export_data()
    for record in exported:
        results.add(record.trialJobId, record.parameter or {}, record.value)
    # export_data pairs trials with the parameters NNI recorded, which concurrency can swap: use the reported id
    return correct_parameters(results, [_job_record(job) for job in jobs])


def _job_record(job: Any) -> dict[str, Any]:
    """A ``TrialJob`` of ``Experiment.list_trial_jobs()`` in the ``/trial-jobs`` JSON shape :func:`job_view` reads."""
    params = [vars(h) if hasattr(h, "__dict__") else h for h in getattr(job, "hyperParameters", None) or []]
    finals = [{"parameterId": getattr(m, "parameterId", None), "data": getattr(m, "data", None)}
              for m in getattr(job, "finalMetricData", None) or [] if hasattr(m, "data")]
    return {"trialJobId": job.trialJobId, "hyperParameters": params, "finalMetricData": finals}


def read_experiment(experiment_id: str, port: int | None = None, root: str | Path | None = None) -> ResultSet:
    """All trials of an NNI experiment; failed and cancelled trials are skipped and counted.

    Args:
        experiment_id: NNI experiment id (as printed by ``nnictl create`` / ``adaptive-svdprune search``).
        port: REST port of the *running* experiment; when given the live server is asked first, and the
            database is read if that fails.
        root: NNI working directory holding ``<id>/`` (default: as recorded by nnictl, or ``~/nni-experiments``).
    """
    rest_error = ""
    if port is not None:
        try:
            return _read_rest(port, experiment_id)
        except ValueError:
            raise
        except Exception as err:  # server gone (stopped experiment): the database still has everything
            rest_error = f"REST on port {port} failed ({type(err).__name__}: {err}); "
    db = experiment_dir(experiment_id, root) / "db" / "nni.sqlite"
    if not db.is_file():
        raise FileNotFoundError(
            f"{rest_error}no NNI database for experiment {experiment_id!r} at {db}; pass the working directory "
            "(root) or the REST port of the running experiment"
        )
    results = read_nni_database(db)
    results.source = f"nni experiment {experiment_id} ({rest_error}{db})"
    return results
