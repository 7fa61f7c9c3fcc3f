"""Launch an NNI experiment from Python, wait for its trials, read the results, and always stop the manager.

``nni.experiment.Experiment.run()`` does not return on its own when the trials are done and
``export_data()`` needs a live manager (DESIGN.md, "Traps"), so :func:`run_experiment` starts the manager on a
free port, polls ``/check-status`` and the trial jobs until ``maxTrialNumber`` trials have ended (succeeded,
failed or cancelled), the manager reports ``DONE``/``ERROR``, or the timeout passes; reads every trial while the
manager still runs; and stops it in a ``finally`` whatever happened: the end of the trials, the timeout, an
error, Ctrl-C, SIGTERM or SIGHUP (handlers installed for the run turn those signals into :class:`Terminated`,
a ``KeyboardInterrupt``, and are restored afterwards). On an interruption the trials finished so far are read
before the manager stops and travel with the exception (``err.outcome``), so the caller can still write them.
A failed trial is a result like any other:
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
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptive_svdprune.resources import is_packaged, resolve_config
from adaptive_svdprune.search.nni_results import job_view, parameters_by_id
from adaptive_svdprune.search.space import check_search_space
from adaptive_svdprune.tradeoffs.results import ResultSet

if TYPE_CHECKING:  # pragma: no cover
    from nni.experiment import ExperimentConfig

__all__ = [
    "ENDED_STATUSES",
    "STOP_SIGNALS",
    "ExperimentOutcome",
    "Terminated",
    "TrialEvent",
    "build_experiment_config",
    "free_port",
    "load_experiment_config",
    "raise_if_stopped",
    "run_experiment",
    "stop_signals_raise",
    "trial_command_of",
]

#: Trial statuses after which a trial runs no more.
ENDED_STATUSES: tuple[str, ...] = ("SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED")
_FINAL_EXPERIMENT_STATUSES = ("DONE", "STOPPED", "ERROR")
_NO_MORE_TRIALS = ("NO_MORE_TRIAL", "TUNER_NO_MORE_TRIAL")
# NOTE: after the tuner says "no more trials" (a grid exhausted before maxTrialNumber) the manager never reports
# DONE, and trials it has queued but not yet submitted are not listed; its loop runs every 5 s, so "all listed
# trials ended" must hold this long before we believe it.
_SETTLE_S = 12.0
# NOTE: NNI 3.0's dispatcher can die while the manager keeps reporting RUNNING (TPE's duplicate-parameter fallback
# raises KeyError in receive_trial_result); then no trial is ever submitted again. A tuner answers a finished
# trial within seconds, so every listed trial ended, fewer than maxTrialNumber, and no new trial for this long
# means the search has stalled: stop it (keeping the finished trials) instead of waiting for the timeout.
_STALL_S = 120.0


#: Signals that stop a running experiment the way Ctrl-C does.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Terminated(KeyboardInterrupt):
    """A stop signal (SIGTERM, SIGHUP) arrived; unwinds like Ctrl-C so every ``finally`` runs.

    ``signum`` is the signal (the CLI exits ``128 + signum``); ``outcome`` is set by :func:`run_experiment` to
    what it read before stopping the manager.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = int(signum)


#: The stop signal received while :func:`stop_signals_raise` is active (``None``: none yet).
_pending_signal: int | None = None


def raise_if_stopped() -> None:
    """Raise :class:`Terminated` if a stop signal arrived (its exception can be swallowed: see below)."""
    if _pending_signal is not None:
        raise Terminated(_pending_signal)


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While active, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread; old handlers restored after.

    NOTE: Python runs a signal handler between two bytecodes of whatever the main thread executes; when that
    is a finalizer (``__del__``, ``weakref.finalize``) the exception is printed as "ignored" and lost. The
    signal is therefore also recorded, and polling loops call :func:`raise_if_stopped`.
    Outside the main thread (where Python cannot install handlers) it does nothing.
    """
    global _pending_signal
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        global _pending_signal
        _pending_signal = signum
        raise Terminated(signum)

    _pending_signal = None
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _pending_signal = None


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
    to the current directory. A packaged config (a name such as ``demo``, see
    :func:`adaptive_svdprune.resources.resolve_config`) runs its trials in the current directory and keeps NNI's
    files under ``runs/nni`` there, not inside the installed package.

    Args:
        path: the YAML file, or the name of a packaged one (``demo``, ``gqa``, ...).
        trials: ``maxTrialNumber``.
        concurrency: ``trialConcurrency``.
        working_directory: ``experimentWorkingDirectory`` (where NNI keeps logs, trials and its database).
        trial_args: extra arguments appended to ``trialCommand`` (e.g. ``"--limit 8"``).
        max_trial_duration: ``maxTrialDuration`` (e.g. ``"10m"``).
    """
    import yaml
    from nni.experiment import ExperimentConfig

    try:
        path = resolve_config(path, "search")
    except FileNotFoundError as err:
        raise FileNotFoundError(f"experiment config not found: {err}") from None
    try:
        config = ExperimentConfig.load(str(path))
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    except (AttributeError, AssertionError, TypeError, ValueError, KeyError) as err:  # NNI's schema errors
        raise ValueError(f"{path} is not a valid NNI experiment config: {err}") from None
    if is_packaged(path):
        config.trial_code_directory = _absolute(".")
        if working_directory is None:
            working_directory = "runs/nni"
    _override(config, trials, concurrency, working_directory, trial_args, max_trial_duration)
    try:
        canonical = config.canonical_copy()  # NNI's own validation, now rather than when the manager starts
    except (AttributeError, AssertionError, TypeError, ValueError, KeyError) as err:
        raise ValueError(f"{path} is not a valid NNI experiment config: {err}") from None
    if not trial_command_of(canonical).strip():
        platform = canonical.training_service.platform
        raise ValueError(f"{path}: trials would run an empty command on the {platform} training service; set "
                         "trialCommand (NNI 3.0 reuse mode runs it, not worker.command)")
    return config


def trial_command_of(canonical: ExperimentConfig) -> str:
    """The command NNI 3.0 runs for each trial of a canonical config (``""`` when there is none).

    Reuse mode, NNI 3.0's default on Kubernetes services, runs the top-level ``trialCommand`` in each pod; only
    outside it does a Kubernetes service run its ``worker.command`` (DESIGN.md, "Traps").
    """
    service = canonical.training_service
    worker = getattr(service, "worker", None)
    if getattr(service, "platform", None) in ("kubeflow", "frameworkcontroller") and not getattr(
        service, "reuse_mode", True
    ) and worker is not None:
        return str(worker.command or "")
    return str(canonical.trial_command or "")


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


def _wait(
    exp: Any, total: int | None, deadline: float | None, poll_s: float, on_trial: Callable[[TrialEvent], None] | None
) -> tuple[str, bool, list[str]]:
    from nni.experiment import rest

    seen: set[str] = set()
    settled_since: float | None = None
    stalled_since: float | None = None
    stalled_jobs = 0
    while True:
        raise_if_stopped()
        check = rest.get(exp.port, "/check-status")
        status = str(check.get("status"))
        errors = [str(e) for e in check.get("errors") or []]
        jobs = rest.get(exp.port, "/trial-jobs") or []
        ended = [j for j in jobs if j.get("status") in ENDED_STATUSES]
        for job in ended:
            if job["trialJobId"] not in seen:
                seen.add(job["trialJobId"])
                if on_trial is not None:
                    params, metric = job_view(job, parameters_by_id(jobs))
                    on_trial(TrialEvent(job["trialJobId"], job["status"], params, metric, job.get("stderrPath"),
                                        len(seen), total or len(jobs)))
        all_ended = bool(jobs) and len(ended) == len(jobs)
        if status in _FINAL_EXPERIMENT_STATUSES or (total is not None and len(ended) >= total):
            return status, False, errors
        if all_ended and status not in _NO_MORE_TRIALS:
            stalled_since = stalled_since if stalled_since is not None and len(jobs) == stalled_jobs else None
            stalled_since = time.monotonic() if stalled_since is None else stalled_since
            stalled_jobs = len(jobs)
            if time.monotonic() - stalled_since >= _STALL_S:
                return "STALLED", False, [*errors, (
                    f"NNI submitted no new trial for {_STALL_S:.0f} s after {len(jobs)} of "
                    f"{total if total is not None else '?'} trials ended (status {status}): its dispatcher has "
                    f"probably died; see log/dispatcher.log in the experiment folder")]
        else:
            stalled_since = None
        if status in _NO_MORE_TRIALS and all_ended:
            settled_since = settled_since if settled_since is not None else time.monotonic()
            if time.monotonic() - settled_since >= _SETTLE_S:
                return status, False, errors
        else:
            settled_since = None
        if deadline is not None and time.monotonic() >= deadline:
            return status, True, errors
        time.sleep(poll_s)


def _read_now(exp: Any, port: int, root: Path) -> ResultSet:
    """Every trial so far, read while the manager runs (``export_data`` needs it; the database is the fallback)."""
    from adaptive_svdprune.search.nni_results import read_experiment

    return read_experiment(exp.id, port=port, root=root)  # REST route corrects the pairing itself


def run_experiment(
    config: ExperimentConfig,
    port: int | None = None,
    timeout: float | None = None,
    poll_s: float = 2.0,
    on_trial: Callable[[TrialEvent], None] | None = None,
    quiet: bool = True,
    env: Mapping[str, str] | None = None,
    on_start: Callable[[str, int], None] | None = None,
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
        on_start: called with the experiment id and port once the manager runs (to print the id at once).

    Raises:
        ValueError: a search space the tuner cannot sample (see ``check_search_space``), or a busy ``port``.
        RuntimeError: the manager could not be started.
        KeyboardInterrupt: Ctrl-C, or :class:`Terminated` for SIGTERM/SIGHUP; the manager, its dispatcher and
            the trials are stopped first, and ``err.outcome`` holds the trials finished until then (status
            ``INTERRUPTED``; no trials when the manager had not started yet).
    """
    from nni.experiment import Experiment

    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    if quiet:
        from nni.runtime.log import silence_stdout

        silence_stdout()
    tuner = config.tuner.name if config.tuner is not None else None
    canonical = config.canonical_copy()  # validates, and loads searchSpaceFile
    check_search_space(canonical.search_space, tuner)
    if port is not None:
        _check_port(port)
    root = Path(str(canonical.experiment_working_directory))
    root.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    exp = Experiment(config)
    chosen = port if port is not None else free_port()
    started = False
    with stop_signals_raise():
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
            started = True
            if on_start is not None:
                on_start(exp.id, chosen)
            status, timed_out, errors = _wait(exp, config.max_trial_number, deadline, poll_s, on_trial)
            results = _read_now(exp, chosen, root)
            raise_if_stopped()
        except KeyboardInterrupt as err:  # Ctrl-C or Terminated: keep what finished, then stop (finally)
            finished = ResultSet(source=f"nni experiment {exp.id} (interrupted before it started)")
            if started:
                with contextlib.suppress(Exception):
                    finished = _read_now(exp, chosen, root)
            err.outcome = ExperimentOutcome(  # type: ignore[attr-defined]
                exp.id, chosen, "INTERRUPTED", finished, root, wall_s=time.monotonic() - start,
                errors=[f"interrupted: {err or 'Ctrl-C'}"])
            raise
        finally:
            _stop_quietly(exp)
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


def _check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be in 1..65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("localhost", port))
        except OSError:
            raise ValueError(f"port {port} is busy (another process listens on it); choose another") from None


def _stop_quietly(exp: Any) -> None:
    """``exp.stop()`` with further stop signals held back, so a second SIGTERM cannot cut the clean-up short."""
    held: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, lambda signum, frame: held.append(signum)) for sig in STOP_SIGNALS}
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        exp.stop()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
