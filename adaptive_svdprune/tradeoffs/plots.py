"""Pareto plot of a search: every trial, coloured by its setting, and the front as a staircase.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas, never through ``pyplot``, so no
global backend or figure state is touched (safe in servers, tests and notebooks alike).

Example:
    >>> import tempfile
    >>> from adaptive_svdprune.tradeoffs.results import TrialResult
    >>> trials = [TrialResult("a", {"variance_threshold": 0.9, "budget": "adaptive"}, 0.6, 2.0, 90.0),
    ...           TrialResult("b", {"variance_threshold": 0.5, "budget": 32}, 0.5, 1.0, 32.0)]
    >>> with tempfile.TemporaryDirectory() as out:
    ...     plot_pareto(trials, trials, out, task="gqa").name
    'pareto.png'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from adaptive_svdprune.tradeoffs.results import ResultSet, TrialResult

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from matplotlib.figure import Figure

__all__ = ["ColorBy", "figure_to_array", "pareto_figure", "plot_pareto"]

ColorBy = Literal["variance_threshold", "budget"]


def _trials(results: ResultSet | Sequence[TrialResult]) -> list[TrialResult]:
    return list(results.trials) if isinstance(results, ResultSet) else list(results)


def pareto_figure(
    results: ResultSet | Sequence[TrialResult],
    front: Sequence[TrialResult],
    task: str | None = None,
    color_by: ColorBy = "variance_threshold",
) -> Figure:
    """Scatter of all trials (adaptive: circles, fixed budget: squares) with the front as a step line.

    Args:
        results: all successful trials.
        front: the Pareto-optimal trials (see :func:`~adaptive_svdprune.tradeoffs.pareto.pareto_front`).
        task: task name for the title.
        color_by: ``"variance_threshold"`` (epsilon) or ``"budget"`` (adaptive trials drawn in grey).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if color_by not in ("variance_threshold", "budget"):
        raise ValueError(f"color_by must be 'variance_threshold' or 'budget', got {color_by!r}")
    trials = _trials(results)
    fig = Figure(figsize=(6.4, 4.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    values: dict[int, float] = {}  # trial index -> colour value; adaptive trials have no budget (grey)
    for i, t in enumerate(trials):
        value = t.variance_threshold if color_by == "variance_threshold" else t.budget
        if value is not None:
            values[i] = float(value)
    vmin, vmax = (min(values.values()), max(values.values())) if values else (0.0, 1.0)
    mappable = None
    for adaptive, marker, label in ((True, "o", "adaptive"), (False, "s", "fixed budget")):
        idx = [i for i, t in enumerate(trials) if (t.budget is None) == adaptive]
        if not idx:
            continue
        colored = [i for i in idx if i in values]
        grey = [i for i in idx if i not in values]
        if colored:
            mappable = ax.scatter(
                [trials[i].tflops for i in colored],
                [trials[i].accuracy for i in colored],
                c=[values[i] for i in colored],
                cmap="viridis",
                vmin=vmin,
                vmax=vmax,
                marker=marker,
                s=36,
                alpha=0.85,
                label=label,
                edgecolors="none",
            )
        if grey:
            ax.scatter(
                [trials[i].tflops for i in grey],
                [trials[i].accuracy for i in grey],
                c="0.6",
                marker=marker,
                s=36,
                alpha=0.85,
                label=label if not colored else None,
                edgecolors="none",
            )
    if front:
        ordered = sorted(front, key=lambda t: t.tflops)
        ax.step(
            [t.tflops for t in ordered],
            [t.accuracy for t in ordered],
            where="post",
            color="crimson",
            linewidth=1.5,
            label=f"Pareto front ({len(ordered)})",
        )
        ax.scatter(
            [t.tflops for t in ordered],
            [t.accuracy for t in ordered],
            facecolors="none",
            edgecolors="crimson",
            s=90,
            linewidths=1.5,
        )
    if mappable is not None:
        fig.colorbar(mappable, ax=ax, label="epsilon" if color_by == "variance_threshold" else "budget")
    if not trials:
        ax.text(0.5, 0.5, "no successful trials", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("TFLOPs per sample")
    ax.set_ylabel("accuracy")
    ax.set_title(f"SVD-Prune search{f': {task}' if task else ''} ({len(trials)} trials)")
    ax.grid(True, alpha=0.3)
    if trials:
        ax.legend(loc="lower right", fontsize="small")
    return fig


def figure_to_array(fig: Figure) -> np.ndarray:
    """RGBA pixels of a figure (``H x W x 4`` uint8), e.g. for ``wandb.Image``."""
    import numpy as np

    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).copy()  # type: ignore[attr-defined]


def plot_pareto(
    results: ResultSet | Sequence[TrialResult],
    front: Sequence[TrialResult],
    path: str | Path,
    task: str | None = None,
    color_by: ColorBy = "variance_threshold",
) -> Path:
    """Write the Pareto plot as PNG; ``path`` is a ``.png`` file or a directory (then ``path/pareto.png``)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path / "pareto.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    pareto_figure(results, front, task=task, color_by=color_by).savefig(path)
    return path
