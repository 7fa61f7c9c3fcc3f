"""Log a search's trials, its Pareto front and deployment profiles to Weights & Biases (offline by default).

One W&B run per call, ready for dashboards that also hold ``eval`` runs:

* ``group``: the experiment id (search, pareto) or the profile name (profile); ``job_type``: ``search``,
  ``pareto`` or ``profile``; ``tags``: task, model, method; ``model``, ``task`` and ``method`` in the config.
* Metric names as in ``eval``: one step per trial with ``accuracy``, ``tflops`` and ``mean_kept_tokens`` (plus
  ``variance_threshold``, ``budget`` when fixed, ``on_front``), a table of every trial, a native scatter of that
  table, the matplotlib Pareto plot and summary values (front size, best accuracy, cheapest TFLOPs, failures).
* A profile is logged as a W&B artifact of type ``"profile"`` holding the YAML file (:func:`log_profile_to_wandb`).

The mode is ``WANDB_MODE`` when set (``online`` uploads, ``disabled`` writes nothing) and ``offline`` otherwise;
an explicit ``mode`` argument wins except over ``WANDB_MODE=disabled``, so unit tests and CI never write runs.
Every run is finished before returning, because several offline runs in one process need ``wandb.finish()``.

Offline runs land in ``<dir>/wandb/offline-run-*``; upload them later with ``wandb sync <run dir>``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from adaptive_svdprune.tradeoffs.results import ResultSet, TrialResult

__all__ = [
    "TABLE_COLUMNS",
    "WandbMode",
    "log_pareto_to_wandb",
    "log_profile_to_wandb",
    "resolve_mode",
    "run_tags",
    "summary_values",
    "trial_rows",
]

WandbMode = Literal["online", "offline", "disabled"]
TABLE_COLUMNS: tuple[str, ...] = (
    "trial_id",
    "epsilon",
    "budget",
    "accuracy",
    "tflops",
    "mean_kept_tokens",
    "objective",
    "on_front",
)


def trial_rows(trials: Sequence[TrialResult], front: Sequence[TrialResult]) -> list[list[Any]]:
    """Rows of the trials table, in :data:`TABLE_COLUMNS` order (budget ``"adaptive"`` when not fixed).

    Example:
        >>> t = TrialResult("a", {"variance_threshold": 0.9, "budget": "adaptive"}, 0.6, 1.5, 80.0, 0.4)
        >>> trial_rows([t], [t])
        [['a', 0.9, 'adaptive', 0.6, 1.5, 80.0, 0.4, True]]
    """
    on_front = {t.trial_id for t in front}
    return [
        [
            t.trial_id,
            t.variance_threshold,
            "adaptive" if t.budget is None else str(t.budget),
            t.accuracy,
            t.tflops,
            t.mean_kept_tokens,
            None if math.isnan(t.objective) else t.objective,
            t.trial_id in on_front,
        ]
        for t in trials
    ]


def summary_values(trials: Sequence[TrialResult], front: Sequence[TrialResult], failed: int) -> dict[str, Any]:
    """Summary numbers of a search (``None`` where there are no trials).

    Example:
        >>> summary_values([], [], failed=2)
        {'n_trials': 0, 'failed_trials': 2, 'front_size': 0, 'best_accuracy': None, 'min_tflops': None}
    """
    return {
        "n_trials": len(trials),
        "failed_trials": failed,
        "front_size": len(front),
        "best_accuracy": max((t.accuracy for t in trials), default=None),
        "min_tflops": min((t.tflops for t in trials), default=None),
    }


def resolve_mode(mode: WandbMode | None = None) -> WandbMode:
    """The W&B mode of a run: ``WANDB_MODE=disabled`` always wins, then ``mode``, then ``WANDB_MODE``, then offline.

    Example:
        >>> import os
        >>> before = os.environ.get("WANDB_MODE")
        >>> os.environ["WANDB_MODE"] = "online"
        >>> resolve_mode(), resolve_mode("offline")
        ('online', 'offline')
        >>> os.environ["WANDB_MODE"] = "disabled"
        >>> resolve_mode("online")
        'disabled'
        >>> _ = os.environ.pop("WANDB_MODE") if before is None else os.environ.update(WANDB_MODE=before)
    """
    if mode is not None and mode not in ("online", "offline", "disabled"):
        raise ValueError(f"mode must be 'online', 'offline' or 'disabled', got {mode!r}")
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env == "disabled":
        return "disabled"
    chosen = mode if mode is not None else env or "offline"
    if chosen == "dryrun":  # W&B's old name for offline
        chosen = "offline"
    if chosen not in ("online", "offline"):
        raise ValueError(f"WANDB_MODE must be 'online', 'offline' or 'disabled', got {chosen!r}")
    return chosen  # type: ignore[return-value]


def run_tags(task: str | None, model: str | None, method: str | None) -> list[str]:
    """The ``tags`` of a run: task, model, method (those known; W&B caps a tag at 64 characters).

    Example:
        >>> run_tags("gqa", "llava-hf/llava-1.5-7b-hf", "svd")
        ['gqa', 'llava-hf/llava-1.5-7b-hf', 'svd']
    """
    return [str(t)[-64:] for t in (task, model, method) if t]


def _trial_step(trial: TrialResult, on_front: bool) -> dict[str, Any]:
    step: dict[str, Any] = {"accuracy": trial.accuracy, "tflops": trial.tflops,
                            "mean_kept_tokens": trial.mean_kept_tokens, "on_front": on_front}
    if trial.variance_threshold is not None:
        step["variance_threshold"] = trial.variance_threshold
    if trial.budget is not None:
        step["budget"] = trial.budget
    return step


def log_pareto_to_wandb(
    results: ResultSet | Sequence[TrialResult],
    front: Sequence[TrialResult],
    project: str,
    name: str | None = None,
    mode: WandbMode | None = None,
    dir: str | Path | None = None,
    task: str | None = None,
    config: Mapping[str, Any] | None = None,
    failed: int | None = None,
    group: str | None = None,
    job_type: str = "pareto",
    model: str | None = None,
    method: str = "svd",
) -> str | None:
    """Log all trials and the front as one W&B run; returns the run directory (``None`` when disabled).

    Args:
        results: all successful trials (a :class:`ResultSet` also supplies the failed count).
        front: the Pareto-optimal trials, a subset of ``results`` (matched by ``trial_id``).
        project: W&B project.
        name: run name (default: W&B's).
        mode: ``"offline"``, ``"online"`` or ``"disabled"``; default ``WANDB_MODE``, else offline
            (:func:`resolve_mode`).
        dir: directory under which W&B writes ``wandb/`` (default: ``WANDB_DIR`` or the working directory).
        task: task name, stored in the run config and used in the plot title.
        config: extra run config (search space, objective, experiment id, ...).
        failed: number of failed trials when ``results`` is a plain sequence.
        group: W&B group, the experiment id (default: ``config["experiment"]`` when given).
        job_type: ``"search"`` or ``"pareto"``.
        model: model id or path the trials ran (tag and config).
        method: the selection method searched (tag and config).
    """
    mode = resolve_mode(mode)
    import wandb

    from adaptive_svdprune.tradeoffs.plots import figure_to_array, pareto_figure

    trials = list(results.trials) if isinstance(results, ResultSet) else list(results)
    n_failed = results.n_failed if isinstance(results, ResultSet) else int(failed or 0)
    if dir is not None:
        Path(dir).mkdir(parents=True, exist_ok=True)
    run_config = {"task": task, "model": model, "method": method, **(config or {})}
    if isinstance(results, ResultSet) and results.source:
        run_config.setdefault("source", results.source)
    run = wandb.init(
        project=project,
        name=name,
        mode=mode,
        dir=None if dir is None else str(dir),
        config=run_config,
        group=group if group is not None else run_config.get("experiment"),
        tags=run_tags(task, model, method),
        job_type=job_type,
        reinit="finish_previous",
    )
    try:
        on_front = {t.trial_id for t in front}
        for trial in trials:  # the same metric names as an eval run, one step per trial
            run.log(_trial_step(trial, trial.trial_id in on_front))
        table = wandb.Table(columns=list(TABLE_COLUMNS), data=trial_rows(trials, front))
        figure = pareto_figure(trials, front, task=task)
        run.log(
            {
                "trials": table,
                "pareto_scatter": wandb.plot.scatter(
                    table, "tflops", "accuracy", title=f"accuracy vs TFLOPs per sample{f' ({task})' if task else ''}"
                ),
                "pareto_plot": wandb.Image(figure_to_array(figure), caption="Pareto front (red)"),
            }
        )
        for key, value in summary_values(trials, front, n_failed).items():
            run.summary[key] = value
        run_dir = None if mode == "disabled" else str(Path(run.dir).parent)
    finally:
        run.finish()
    return run_dir


def log_profile_to_wandb(
    profile_path: str | Path,
    profile_name: str,
    task: str,
    entry: Mapping[str, Any],
    project: str,
    model: str | None = None,
    mode: WandbMode | None = None,
    dir: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
) -> str | None:
    """Log a deployment profile: a ``profile`` run (group = profile name) with the file as a ``profile`` artifact.

    Args:
        profile_path: the profile YAML written.
        profile_name: the profile's name (W&B group and artifact name).
        task: the task entry just chosen.
        entry: that entry (``trial_id``, ``variance_threshold``, ``budget``, ``accuracy``, ``tflops``,
            ``mean_kept_tokens``, ...), logged as config and metrics.
        project: W&B project.
        model: the model the search ran (tag and config).
        mode: see :func:`resolve_mode`.
        dir: folder under which W&B writes ``wandb/``.
        config: extra run config.

    Returns:
        The run directory (``None`` when disabled).
    """
    import re

    import wandb

    mode = resolve_mode(mode)
    if dir is not None:
        Path(dir).mkdir(parents=True, exist_ok=True)
    method = "svd"
    run = wandb.init(
        project=project, name=f"profile-{profile_name}-{task}", mode=mode, dir=None if dir is None else str(dir),
        group=profile_name, job_type="profile", tags=run_tags(task, model, method), reinit="finish_previous",
        config={"task": task, "model": model, "method": method, "profile": profile_name, **dict(entry),
                **(config or {})},
    )
    try:
        metrics = {k: entry[k] for k in ("accuracy", "tflops", "mean_kept_tokens") if entry.get(k) is not None}
        run.log(metrics)
        for key, value in metrics.items():
            run.summary[key] = value
        artifact = wandb.Artifact(re.sub(r"[^\w.-]", "-", f"profile-{profile_name}"), type="profile",
                                  metadata={"task": task, "model": model, **dict(entry)})
        artifact.add_file(str(profile_path))
        run.log_artifact(artifact)
        run_dir = None if mode == "disabled" else str(Path(run.dir).parent)
    finally:
        run.finish()
    return run_dir
