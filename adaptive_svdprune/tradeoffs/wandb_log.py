"""Log a search's trials and Pareto front to Weights & Biases (offline by default).

One W&B run per call: a table of every trial (``on_front`` marks the Pareto-optimal ones), a native W&B
scatter of that table, the matplotlib Pareto plot as an image, and summary values (front size, best
accuracy, cheapest TFLOPs, failed trials). The run is always finished before returning, because several
offline runs in one process need ``wandb.finish()`` in between.

``WANDB_MODE=disabled`` in the environment wins over the ``mode`` argument (``wandb.init(mode=...)`` would
otherwise override it), so unit tests and CI never write runs.

Offline runs land in ``<dir>/wandb/offline-run-*``; upload them later with ``wandb sync <run dir>``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from adaptive_svdprune.tradeoffs.results import ResultSet, TrialResult

__all__ = ["TABLE_COLUMNS", "WandbMode", "log_pareto_to_wandb", "summary_values", "trial_rows"]

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


def log_pareto_to_wandb(
    results: ResultSet | Sequence[TrialResult],
    front: Sequence[TrialResult],
    project: str,
    name: str | None = None,
    mode: WandbMode = "offline",
    dir: str | Path | None = None,
    task: str | None = None,
    config: Mapping[str, Any] | None = None,
    failed: int | None = None,
) -> str | None:
    """Log all trials and the front as one W&B run; returns the run directory (``None`` when disabled).

    Args:
        results: all successful trials (a :class:`ResultSet` also supplies the failed count).
        front: the Pareto-optimal trials, a subset of ``results`` (matched by ``trial_id``).
        project: W&B project.
        name: run name (default: W&B's).
        mode: ``"offline"`` (default), ``"online"`` or ``"disabled"``; ``WANDB_MODE=disabled`` overrides it.
        dir: directory under which W&B writes ``wandb/`` (default: ``WANDB_DIR`` or the working directory).
        task: task name, stored in the run config and used in the plot title.
        config: extra run config (search space, objective, experiment id, ...).
        failed: number of failed trials when ``results`` is a plain sequence.
    """
    if mode not in ("online", "offline", "disabled"):
        raise ValueError(f"mode must be 'online', 'offline' or 'disabled', got {mode!r}")
    import wandb

    from adaptive_svdprune.tradeoffs.plots import figure_to_array, pareto_figure

    trials = list(results.trials) if isinstance(results, ResultSet) else list(results)
    n_failed = results.n_failed if isinstance(results, ResultSet) else int(failed or 0)
    if os.environ.get("WANDB_MODE", "").lower() == "disabled":
        mode = "disabled"
    if dir is not None:
        Path(dir).mkdir(parents=True, exist_ok=True)
    run_config = {"task": task, **(config or {})}
    if isinstance(results, ResultSet) and results.source:
        run_config.setdefault("source", results.source)
    run = wandb.init(
        project=project,
        name=name,
        mode=mode,
        dir=None if dir is None else str(dir),
        config=run_config,
        job_type="pareto",
        reinit="finish_previous",
    )
    try:
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
