"""Launch an NNI experiment from Python, wait for its trials, read the results, and always stop the manager.

``nni.experiment.Experiment.run()`` does not return on its own when the trials are done and
``export_data()`` needs a live manager (DESIGN.md, "Traps"), so :func:`run_experiment` starts the manager on a
free port, polls ``/check-status`` and the trial jobs until ``maxTrialNumber`` trials have ended (succeeded,
failed or cancelled), the manager reports ``DONE``/``ERROR``, or the timeout passes; reads every trial while the
manager still runs; and stops it in a ``finally`` whatever happened. A failed trial is a result like any other:
it is counted in :attr:`ResultSet.failed` and the experiment carries on with the next trial.

Trials inherit the environment of the manager, which is started with this interpreter's ``bin`` folder first on
``PATH``, so a ``trialCommand`` that says ``python -m ...`` runs the same virtualenv as the caller.

Example (not run here: it starts a real manager and trials)::

    config = load_experiment_config("search/demo.yml", trials=4, working_directory="runs/nni")
    outcome = run_experiment(config, timeout=600)
    print(outcome.experiment_id, len(outcome.results.trials), outcome.results.failed)
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptive_svdprune.search.space import check_search_space
from adaptive_svdprune.tradeoffs.results import ResultSet, decode_metric

if TYPE_CHECKING:  # pragma: no cover
    from nni.experiment import ExperimentConfig

__all__ = [
    "ENDED_STATUSES",
    "ExperimentOutcome",
    "TrialEvent",
    "build_experiment_config",
    "free_port",
    "load_experiment_config",
    "run_experiment",
]

#: Trial statuses after which a trial runs no more.
ENDED_STATUSES: tuple[str, ...] = ("SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED")
_FINAL_EXPERIMENT_STATUSES = ("DONE", "STOPPED", "ERROR")
_NO_MORE_TRIALS = ("NO_MORE_TRIAL", "TUNER_NO_MORE_TRIAL")
# NOTE: after the tuner says "no more trials" (a grid exhausted before maxTrialNumber) the manager never reports
# DONE, and trials it has queued but not yet submitted are not listed; its loop runs every 5 s, so "all listed
# trials ended" must hold this long before we believe it.
_SETTLE_S = 12.0


@dataclass(frozen=True)
class TrialEvent:
    """A trial that has just ended, as seen while polling (for progress prints).

    ``parameters`` are the ones the trial reported a result for; ``None`` when it reported none (failed).
    """

    trial_id: str
    status: str
    parameters: dict[str, Any] | None
    metric: dict[str, Any] | None
    stderr: str | None
    ended: int
    total: int


@dataclass
class ExperimentOutcome:
    """What :func:`run_experiment` saw: the experiment, its last status and every trial's result."""

    experiment_id: str
    port: int
    status: str
    results: ResultSet
    working_directory: Path
    timed_out: bool = False
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def directory(self) -> Path:
        """``<working directory>/<experiment id>``: NNI's logs, trial folders and database."""
        return self.working_directory / self.experiment_id


def free_port(pairs: bool = True) -> int:
    """A TCP port free on localhost now (and ``port + 1`` too when ``pairs``: remote services need it)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("localhost", 0))
            port = int(sock.getsockname()[1])
        if not pairs or port >= 65535:
            return port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("localhost", port + 1)) != 0:
                return port
    raise RuntimeError("no free port pair found on localhost")


def _absolute(path: str | os.PathLike[str]) -> str:
    return str(Path(path).expanduser().resolve())


def load_experiment_config(
    path: str | os.PathLike[str],
    trials: int | None = None,
    concurrency: int | None = None,
    working_directory: str | os.PathLike[str] | None = None,
    trial_args: str | None = None,
    max_trial_duration: str | None = None,
) -> ExperimentConfig:
    """An NNI experiment YAML (``nnictl create --config`` format), with optional overrides.

    Relative paths in the file are relative to the file, as with ``nnictl``; the overrides are taken relative
    to the current directory.

    Args:
        path: the YAML file.
        trials: ``maxTrialNumber``.
        concurrency: ``trialConcurrency``.
        working_directory: ``experimentWorkingDirectory`` (where NNI keeps logs, trials and its database).
        trial_args: extra arguments appended to ``trialCommand`` (e.g. ``"--limit 8"``).
        max_trial_duration: ``maxTrialDuration`` (e.g. ``"10m"``).
    """
    from nni.experiment import ExperimentConfig

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"experiment config not found: {path}")
    config = ExperimentConfig.load(str(path))
    _override(config, trials, concurrency, working_directory, trial_args, max_trial_duration)
    return config


def _override(
    config: ExperimentConfig,
    trials: int | None,
    concurrency: int | None,
    working_directory: str | os.PathLike[str] | None,
    trial_args: str | None,
    max_trial_duration: str | None,
) -> None:
    for name, value in (("trials", trials), ("concurrency", concurrency)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if trials is not None:
        config.max_trial_number = trials
    if concurrency is not None:
        config.trial_concurrency = concurrency
    if working_directory is not None:
        config.experiment_working_directory = _absolute(working_directory)
    if trial_args:
        config.trial_command = f"{config.trial_command} {trial_args}"
    if max_trial_duration is not None:
        config.max_trial_duration = max_trial_duration


def build_experiment_config(
    trial_command: str,
    search_space: Mapping[str, Any],
    trials: int,
    concurrency: int = 1,
    name: str = "svdprune-search",
    tuner: str = "TPE",
    working_directory: str | os.PathLike[str] = "runs/nni",
    code_directory: str | os.PathLike[str] = ".",
    max_trial_duration: str | None = None,
    seed: int | None = None,
) -> ExperimentConfig:
    """An experiment config for the local training service, built in code (CPU trials, no GPU settings).

    Args:
        trial_command: the command each trial runs, from ``code_directory``.
        search_space: NNI search space (see :func:`~adaptive_svdprune.search.space.search_space`).
        trials: ``maxTrialNumber``.
        concurrency: trials run at once.
        name: experiment name.
        tuner: one of :data:`~adaptive_svdprune.search.space.SUPPORTED_TUNERS`; maximises ``default``.
        working_directory: NNI's working directory (default ``runs/nni``, not ``~/nni-experiments``).
        code_directory: folder trials run in.
        max_trial_duration: e.g. ``"10m"``; a trial running longer is killed (and FAILED).
        seed: tuner seed (TPE and Random take one), for reproducible demos.
    """
    from nni.experiment import ExperimentConfig

    check_search_space(search_space, tuner)
    config = ExperimentConfig("local")
    config.experiment_name = name
    config.search_space = dict(search_space)
    config.trial_command = trial_command
    config.trial_code_directory = _absolute(code_directory)
    config.tuner.name = tuner
    class_args: dict[str, Any] = {} if tuner in ("GridSearch", "Random") else {"optimize_mode": "maximize"}
    if seed is not None and tuner in ("TPE", "Random"):
        class_args["seed"] = seed
    config.tuner.class_args = class_args
    config.training_service.use_active_gpu = False
    _override(config, trials, concurrency, working_directory, None, max_trial_duration)
    return config


@contextlib.contextmanager
def _manager_environment(env: Mapping[str, str] | None) -> Iterator[None]:
    """This interpreter's ``bin`` first on ``PATH`` plus ``env``, for the manager process (and so its trials)."""
    changes = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
               **(env or {})}
    old = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _parameters_by_id(jobs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every parameter set the tuner sent, by parameter id (whichever trial it was submitted with)."""
    by_id: dict[str, dict[str, Any]] = {}
    for job in jobs:
        for raw in job.get("hyperParameters") or []:
            record = json.loads(raw) if isinstance(raw, str) else raw
            if isinstance(record, Mapping) and isinstance(record.get("parameters"), Mapping):
                by_id[str(record.get("parameter_id"))] = dict(record["parameters"])
    return by_id


def _job_view(
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


def _correct_parameters(results: ResultSet, jobs: list[dict[str, Any]]) -> ResultSet:
    """Give each result the parameters its own final metric names (see :func:`_job_view`)."""
    by_id = _parameters_by_id(jobs)
    ran = {job["trialJobId"]: _job_view(job, by_id)[0] for job in jobs}
    trials = []
    for trial in results.trials:
        params = ran.get(trial.trial_id)
        trials.append(trial if params is None or params == trial.parameters else replace(trial, parameters=params))
    results.trials = trials
    return results


def _wait(
    exp: Any, total: int | None, deadline: float | None, poll_s: float, on_trial: Callable[[TrialEvent], None] | None
) -> tuple[str, bool, list[str]]:
    from nni.experiment import rest

    seen: set[str] = set()
    settled_since: float | None = None
    while True:
        check = rest.get(exp.port, "/check-status")
        status = str(check.get("status"))
        errors = [str(e) for e in check.get("errors") or []]
        jobs = rest.get(exp.port, "/trial-jobs") or []
        ended = [j for j in jobs if j.get("status") in ENDED_STATUSES]
        for job in ended:
            if job["trialJobId"] not in seen:
                seen.add(job["trialJobId"])
                if on_trial is not None:
                    params, metric = _job_view(job, _parameters_by_id(jobs))
                    on_trial(TrialEvent(job["trialJobId"], job["status"], params, metric, job.get("stderrPath"),
                                        len(seen), total or len(jobs)))
        all_ended = bool(jobs) and len(ended) == len(jobs)
        if status in _FINAL_EXPERIMENT_STATUSES or (total is not None and len(ended) >= total):
            return status, False, errors
        if status in _NO_MORE_TRIALS and all_ended:
            settled_since = settled_since if settled_since is not None else time.monotonic()
            if time.monotonic() - settled_since >= _SETTLE_S:
                return status, False, errors
        else:
            settled_since = None
        if deadline is not None and time.monotonic() >= deadline:
            return status, True, errors
        time.sleep(poll_s)


def run_experiment(
    config: ExperimentConfig,
    port: int | None = None,
    timeout: float | None = None,
    poll_s: float = 2.0,
    on_trial: Callable[[TrialEvent], None] | None = None,
    quiet: bool = True,
    env: Mapping[str, str] | None = None,
) -> ExperimentOutcome:
    """Start the experiment, wait for its trials, read them all, stop the manager (always).

    Args:
        config: an NNI ``ExperimentConfig`` (:func:`load_experiment_config` or :func:`build_experiment_config`).
        port: REST port of the manager (default: a free one).
        timeout: seconds to wait for the trials; then the results so far are read and the manager stopped.
        poll_s: seconds between status polls.
        on_trial: called once for each trial that ends (progress reports).
        quiet: keep NNI's own log lines off stdout (they still go to the experiment's log file).
        env: extra environment variables for the manager and so for every trial (e.g. ``OMP_NUM_THREADS``).

    Raises:
        ValueError: a search space the tuner cannot sample (see ``check_search_space``).
        RuntimeError: the manager could not be started.
    """
    from nni.experiment import Experiment, rest

    from adaptive_svdprune.search.nni_results import read_experiment

    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    if quiet:
        from nni.runtime.log import silence_stdout

        silence_stdout()
    tuner = config.tuner.name if config.tuner is not None else None
    canonical = config.canonical_copy()  # validates, and loads searchSpaceFile
    check_search_space(canonical.search_space, tuner)
    root = Path(str(canonical.experiment_working_directory))
    root.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    exp = Experiment(config)
    chosen = port if port is not None else free_port()
    try:
        with _manager_environment(env):
            for attempt in range(3):
                try:
                    exp.start(chosen)
                    break
                except RuntimeError as err:  # another process took the free port in between: pick again
                    if port is not None or "is not idle" not in str(err) or attempt == 2:
                        raise
                    chosen = free_port()
        status, timed_out, errors = _wait(exp, config.max_trial_number, deadline, poll_s, on_trial)
        # read while the manager runs (export_data needs it); the database is the fallback
        results = _correct_parameters(read_experiment(exp.id, port=chosen, root=root),
                                      rest.get(chosen, "/trial-jobs") or [])
    finally:
        exp.stop()
    return ExperimentOutcome(
        experiment_id=exp.id,
        port=chosen,
        status=status,
        results=results,
        working_directory=root,
        timed_out=timed_out,
        wall_s=time.monotonic() - start,
        errors=errors,
    )
