"""Trial results of a threshold search: one record per NNI trial, readers for every shape NNI hands out.

A trial reports ``{"default": objective, "accuracy": ..., "tflops": ..., "mean_kept_tokens": ..., ...}`` as
its final metric, for parameters ``{"variance_threshold": eps, "budget": int | "adaptive", ...}``. The readers
never raise on one bad trial: a trial without a usable final metric is *skipped and recorded* in
:attr:`ResultSet.failed` with the reason, so a search's results are never lost to one broken row.

Shapes handled (checked against NNI 3.0):

* ``Experiment.export_data()``: objects with ``.parameter`` (dict), ``.value`` (already decoded: a dict, or a
  float for a scalar metric) and ``.trialJobId``;
* the REST ``/export-data`` payload and ``nnictl experiment export --type json`` files: the same keys, with
  ``value`` a JSON *string*;
* ``nnictl experiment export --type csv`` files: one row per trial, the parameter columns, the metric's keys
  and ``trialJobId`` (the metric's keys overwrite parameters of the same name, as nnictl writes them);
* our own JSON (:func:`save_results`, or the ``trials`` of a ``pareto.json``).

Which parameters a trial ran: NNI 3.0 can pair concurrent trials with the wrong parameter sets in its REST
API and exports (DESIGN.md, "Traps"). Our trials therefore report the parameters they received, with their
``parameter_id``, inside the final metric (:data:`PARAMETER_KEYS`); every reader here takes them from there
first and only falls back to the parameters NNI recorded next to the metric.

Example:
    >>> rs = from_nni_export([
    ...     {"parameter": {"variance_threshold": 0.9, "budget": "adaptive"}, "trialJobId": "a",
    ...      "value": '{"default": 0.5, "accuracy": 0.6, "tflops": 1.5, "mean_kept_tokens": 80}'},
    ...     {"parameter": {"variance_threshold": 0.5, "budget": 32}, "trialJobId": "b", "value": 0.3},
    ... ])
    >>> [(t.trial_id, t.budget, t.tflops) for t in rs.trials], rs.failed
    ([('a', None, 1.5)], {'b': 'final metric has no accuracy'})
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "PARAMETER_KEYS",
    "ResultSet",
    "TrialResult",
    "decode_metric",
    "from_nni_csv",
    "from_nni_export",
    "load_results",
    "normalize_budget",
    "save_results",
    "trial_from_metric",
]

_RAW_KEYS = ("default", "accuracy", "tflops", "mean_kept_tokens")
#: The parameters of a trial (the search space's keys); a final metric that carries them names what really ran.
PARAMETER_KEYS: tuple[str, ...] = ("variance_threshold", "budget", "min_tokens", "max_tokens", "anyres_split",
                                   "center")


def normalize_budget(value: Any) -> int | None:
    """Map an NNI ``budget`` choice to ``SVDPruneConfig.budget``: ``"adaptive"``/``None`` -> ``None``.

    Example:
        >>> normalize_budget("adaptive"), normalize_budget(64), normalize_budget(64.0), normalize_budget("32")
        (None, 64, 64, 32)
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("adaptive", "none", "null", "")):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"budget must be a positive int, 'adaptive' or None, got {value!r}")
    return value


def decode_metric(value: Any) -> Any:
    """Undo NNI's JSON encoding of a metric, however many times it was applied (the database stores it twice).

    Example:
        >>> decode_metric(json.dumps(json.dumps({"accuracy": 0.5})))
        {'accuracy': 0.5}
    """
    for _ in range(4):
        if not isinstance(value, str):
            return value
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


@dataclass(frozen=True)
class TrialResult:
    """One successful search trial.

    Args:
        trial_id: NNI trial job id.
        parameters: the trial's parameters as sampled (``budget`` may be ``"adaptive"``).
        accuracy: task accuracy in ``[0, 1]``.
        tflops: mean TFLOPs per sample.
        mean_kept_tokens: mean vision tokens kept per image.
        objective: the ``default`` metric the tuner maximised (NaN when it was not reported).
        status: NNI trial status, ``"SUCCEEDED"`` for a usable result.
        metrics: any further metrics the trial reported (latency, fidelity, ...).
    """

    trial_id: str
    parameters: dict[str, Any]
    accuracy: float
    tflops: float
    mean_kept_tokens: float
    objective: float = math.nan
    status: str = "SUCCEEDED"
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("accuracy", "tflops", "mean_kept_tokens", "objective"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"trial {self.trial_id}: {name} must be a number, got {value!r}")
            if math.isnan(value) and name != "objective":
                raise ValueError(f"trial {self.trial_id}: {name} is NaN")
            object.__setattr__(self, name, float(value))
        if not isinstance(self.parameters, Mapping):
            raise TypeError(f"trial {self.trial_id}: parameters must be a dict, got {self.parameters!r}")
        normalize_budget(self.parameters.get("budget"))  # a bad budget makes the trial unusable
        eps = self.parameters.get("variance_threshold")
        if eps is not None and (isinstance(eps, bool) or not isinstance(eps, (int, float))):
            raise ValueError(f"trial {self.trial_id}: variance_threshold must be a number, got {eps!r}")

    @property
    def variance_threshold(self) -> float | None:
        """Epsilon of the trial (``None`` when the search space did not have it)."""
        eps = self.parameters.get("variance_threshold")
        return None if eps is None else float(eps)

    @property
    def budget(self) -> int | None:
        """Fixed token budget, ``None`` for adaptive selection."""
        return normalize_budget(self.parameters.get("budget"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (NaN objective written as ``None``)."""
        objective = None if math.isnan(self.objective) else self.objective
        return {
            "trial_id": self.trial_id,
            "parameters": dict(self.parameters),
            "accuracy": self.accuracy,
            "tflops": self.tflops,
            "mean_kept_tokens": self.mean_kept_tokens,
            "objective": objective,
            "status": self.status,
            "metrics": dict(self.metrics),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialResult:
        """Inverse of :meth:`to_dict`."""
        missing = [k for k in ("trial_id", "accuracy", "tflops", "mean_kept_tokens") if k not in data]
        if missing:
            raise ValueError(f"trial record is missing {missing}: {dict(data)!r}")
        objective = data.get("objective")
        return cls(
            trial_id=str(data["trial_id"]),
            parameters=dict(data.get("parameters") or {}),
            accuracy=float(data["accuracy"]),
            tflops=float(data["tflops"]),
            mean_kept_tokens=float(data["mean_kept_tokens"]),
            objective=math.nan if objective is None else float(objective),
            status=str(data.get("status", "SUCCEEDED")),
            metrics=dict(data.get("metrics") or {}),
        )


def trial_from_metric(trial_id: str, parameters: Mapping[str, Any], value: Any) -> TrialResult:
    """Build a :class:`TrialResult` from one final metric in any NNI encoding; ``ValueError`` if unusable."""
    metric = decode_metric(value)
    if not isinstance(metric, Mapping):
        metric = {"default": metric}
    for key in ("accuracy", "tflops", "mean_kept_tokens"):
        if key not in metric:
            raise ValueError(f"final metric has no {key}")
    numbers: dict[str, float] = {}
    for key in _RAW_KEYS:
        raw = metric.get(key, math.nan)
        try:
            numbers[key] = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"final metric {key} is not a number: {raw!r}") from None
    # the parameters the trial says it ran win over the ones NNI paired it with (see the module docstring)
    params = {**dict(parameters), **{k: metric[k] for k in PARAMETER_KEYS if k in metric}}
    return TrialResult(
        trial_id=str(trial_id),
        parameters=params,
        accuracy=numbers["accuracy"],
        tflops=numbers["tflops"],
        mean_kept_tokens=numbers["mean_kept_tokens"],
        objective=numbers["default"],
        metrics={k: v for k, v in metric.items() if k not in _RAW_KEYS and k not in PARAMETER_KEYS},
    )


@dataclass
class ResultSet:
    """Successful trials, the trials that were skipped with why, and the ones still running.

    Args:
        trials: usable results, in the order they were read.
        failed: trial id -> status (``FAILED``, ``USER_CANCELED``, ...) or why its metric was unusable.
        pending: ids of trials that have not finished (waiting or running) when the results were read.
        source: where the results came from, for reports.
    """

    trials: list[TrialResult] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def n_failed(self) -> int:
        """Number of skipped trials (failed, cancelled, or without a usable final metric)."""
        return len(self.failed)

    def add(self, trial_id: str, parameters: Mapping[str, Any], value: Any) -> None:
        """Parse one final metric; record the trial as failed instead of raising when it is unusable."""
        try:
            self.trials.append(trial_from_metric(trial_id, parameters, value))
        except (ValueError, TypeError) as err:
            self.failed[str(trial_id)] = str(err)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary: all trials and the failed ones."""
        return {
            "source": self.source,
            "n_trials": len(self.trials),
            "failed": self.n_failed,
            "failed_trials": dict(self.failed),
            "pending": list(self.pending),
            "trials": [t.to_dict() for t in self.trials],
        }


def _field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, Mapping) else getattr(record, name, None)


def from_nni_export(data: Iterable[Any], source: str = "nni export") -> ResultSet:
    """Read ``Experiment.export_data()`` output, its REST/``nnictl`` JSON form, or a list of such dicts.

    NNI exports only trials with a final metric, so failures show up here only as unusable metrics; use
    :func:`adaptive_svdprune.search.nni_results.read_experiment` to also count failed trials.
    """
    results = ResultSet(source=source)
    for index, record in enumerate(data):
        trial_id = _field(record, "trialJobId") or f"#{index}"
        results.add(trial_id, _field(record, "parameter") or {}, _field(record, "value"))
    return results


def _csv_value(text: str) -> Any:
    """A CSV cell as the JSON value nnictl wrote (numbers, ``"adaptive"``, ...); empty cells are ``None``."""
    if text == "":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def from_nni_csv(path: str | Path) -> ResultSet:
    """Read an ``nnictl experiment export --type csv`` file (parameters and metric keys side by side).

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        ...     _ = f.write("budget,variance_threshold,default,accuracy,tflops,mean_kept_tokens,trialJobId\\n"
        ...                 "adaptive,0.9,0.5,0.6,1.5,80,a\\n")
        >>> [(t.trial_id, t.budget, t.variance_threshold) for t in from_nni_csv(f.name).trials]
        [('a', None, 0.9)]
    """
    import csv

    path = Path(path)
    results = ResultSet(source=str(path))
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "trialJobId" not in reader.fieldnames:
            raise ValueError(f"{path}: not an nnictl CSV export (no trialJobId column); columns: {reader.fieldnames}")
        for index, row in enumerate(reader):
            values = {k: _csv_value(v or "") for k, v in row.items() if k is not None}
            trial_id = str(values.pop("trialJobId") or f"#{index}")
            metric = {k: v for k, v in values.items() if v is not None}
            params = {k: metric[k] for k in PARAMETER_KEYS if k in metric}
            if "reward" in metric and "default" not in metric:
                metric["default"] = metric.pop("reward")
            results.add(trial_id, params, metric)
    return results


def load_results(path: str | Path) -> ResultSet:
    """Load trials from JSON (our list of trial dicts, an NNI export list, a ``pareto.json``) or an nnictl CSV."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file not found: {path}")
    if path.suffix.lower() == ".csv":
        return from_nni_csv(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    failed: dict[str, str] = {}
    if isinstance(data, Mapping):
        if not isinstance(data.get("trials"), list):
            raise ValueError(f"{path}: expected a list of trials or a document with a 'trials' list")
        failed = {str(k): str(v) for k, v in (data.get("failed_trials") or {}).items()}
        data = data["trials"]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of trials, got {type(data).__name__}")
    if data and all(isinstance(r, Mapping) and "trialJobId" in r for r in data):
        results = from_nni_export(data, source=str(path))
    else:
        results = ResultSet(source=str(path))
        for index, record in enumerate(data):
            try:
                trial = TrialResult.from_dict(record)
            except (ValueError, TypeError, AttributeError) as err:
                results.failed[str(_field(record, "trial_id") or f"#{index}")] = str(err)
                continue
            if trial.status == "SUCCEEDED":
                results.trials.append(trial)
            else:
                results.failed[trial.trial_id] = trial.status
    results.failed = {**failed, **results.failed}
    return results


def save_results(results: ResultSet | Iterable[TrialResult], path: str | Path) -> Path:
    """Write trials as a JSON list of dicts that :func:`load_results` reads back."""
    trials = results.trials if isinstance(results, ResultSet) else list(results)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([t.to_dict() for t in trials], indent=2) + "\n")
    return path
