"""Pictures of an analysis result: keep heat maps, row/column profiles, attention shares, attention by position.

Heat maps show the keep *rate* of each cell (kept tokens over the tokens there): on LLaVA-1.5's patch grid that is
the share of questions keeping the patch; in relative coordinates (anyres, Qwen) it stays comparable across cells
that hold different numbers of tokens. Anyres results add one heat map per view (base view, crops).

Every figure is drawn from the JSON-ready result of :func:`~adaptive_svdprune.analysis.run.analyze` alone (so
``analysis.json`` can be re-plotted), on a :class:`matplotlib.figure.Figure` with an Agg canvas: no ``pyplot``,
no global backend state.

Example:
    >>> import tempfile
    >>> heat = [[1, 0], [0, 1]]
    >>> result = {"grid": {"rows": 2, "cols": 2, "tokens": 4, "centre": [0.5, 0.5]}, "samples": 1, "budget": 2,
    ...           "methods": {"uniform": {"heatmap": heat, "mean_row": 0.5, "mean_col": 0.5, "object_recall": None,
    ...                                   "row_profile": [0.5, 0.5], "col_profile": [0.5, 0.5]}},
    ...           "attention": None}
    >>> with tempfile.TemporaryDirectory() as out:
    ...     sorted(write_figures(result, out))
    ['keep_heatmaps', 'row_col_profiles']
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["FIGURE_FILES", "write_figures"]

#: figure name -> file name inside the output folder
FIGURE_FILES: dict[str, str] = {
    "keep_heatmaps": "keep_heatmaps.png",
    "row_col_profiles": "row_col_profiles.png",
    "attention_shares": "attention_shares.png",
    "position_scores": "position_scores.png",
    "keep_heatmaps_by_view": "keep_heatmaps_by_view.png",
}


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def _keep_rate(m: dict[str, Any], samples: int) -> np.ndarray:
    """Share of the tokens in each cell that were kept (NaN where no token fell); older results: counts/samples."""
    if "keep_rate" in m:
        return np.asarray([[np.nan if v is None else v for v in row] for row in m["keep_rate"]], dtype=float)
    return np.asarray(m["heatmap"], dtype=float) / samples


def _heatmaps(result: dict[str, Any]) -> Figure:
    methods = result["methods"]
    n = len(methods)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = _figure(3.4 * ncols, 3.3 * nrows)
    samples = max(int(result["samples"]), 1)
    image = None
    for k, (name, m) in enumerate(methods.items()):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        freq = _keep_rate(m, samples)
        image = ax.imshow(freq, cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest")
        if m["mean_row"] is not None:
            ax.plot([m["mean_col"]], [m["mean_row"]], marker="+", color="cyan", markersize=12, mew=2)
        ax.set_title(f"{name}: row {_fmt(m['mean_row'], '.1f')}, col {_fmt(m['mean_col'], '.1f')}\n"
                     f"object recall {_fmt(m['object_recall'])}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if image is not None:
        fig.colorbar(image, ax=fig.axes, shrink=0.8, label="share of the tokens there that are kept")
    where = "" if result.get("coordinates", "patch") == "patch" else ", placed in the image"
    fig.suptitle(f"Kept positions at {result['budget']} tokens over {result['samples']} questions{where} "
                 f"(+ = mean kept row/column)")
    return fig


def _heatmaps_by_view(result: dict[str, Any]) -> Figure:
    """Anyres: one row per method, one column per view (base view, crops), each in image coordinates."""
    methods = result["methods"]
    views = result["views"]
    samples = max(int(result["samples"]), 1)
    fig = _figure(3.2 * len(views), 3.0 * len(methods))
    image = None
    for i, (name, m) in enumerate(methods.items()):
        for j, view in enumerate(views):
            v = m["views"][view]
            ax = fig.add_subplot(len(methods), len(views), i * len(views) + j + 1)
            image = ax.imshow(_keep_rate(v, samples), cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest")
            if v["mean_row"] is not None:
                ax.plot([v["mean_col"]], [v["mean_row"]], marker="+", color="cyan", markersize=12, mew=2)
            ax.set_title(f"{name}, {view}: {v['kept_tokens_total']} kept", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    if image is not None:
        fig.colorbar(image, ax=fig.axes, shrink=0.6, label="share of the tokens there that are kept")
    fig.suptitle(f"Kept positions per view at {result['budget']} positions ({result.get('anyres_split')} split)")
    return fig


def _profiles(result: dict[str, Any]) -> Figure:
    fig = _figure(10, 3.8)
    grid = result["grid"]
    for k, (axis, size) in enumerate((("row", grid["rows"]), ("col", grid["cols"]))):
        ax = fig.add_subplot(1, 2, k + 1)
        for name, m in result["methods"].items():
            ax.plot(range(size), m[f"{axis}_profile"], marker=".", label=name)
        ax.axhline(1 / size, color="grey", linestyle="--", linewidth=1, label="no bias (1/size)")
        ax.set_xlabel("row (top to bottom)" if axis == "row" else "column (left to right)")
        ax.set_ylabel("share of kept tokens")
    fig.axes[-1].legend(fontsize=8)
    fig.suptitle("Where kept tokens fall")
    return fig


def _shares(attention: dict[str, Any]) -> Figure:
    fig = _figure(max(5.0, 0.5 * attention["layers"] + 3), 3.8)
    ax = fig.add_subplot()
    layers = np.arange(attention["layers"])
    bottom = np.zeros(attention["layers"])
    for group in attention["groups"]:
        values = np.asarray(attention["shares"][group])
        ax.bar(layers, values, bottom=bottom, label=group)
        bottom += values
    ax.set_xlabel("decoder layer")
    ax.set_ylabel("share of the last token's attention")
    ax.set_xticks(layers)
    ax.set_ylim(0, 1.0)
    ax.legend(fontsize=8)
    ax.set_title(f"Attention by token group (head mean, {attention['samples']} questions)")
    return fig


def _position_scores(attention: dict[str, Any], grid: dict[str, Any], result_is_patch: bool = True) -> Figure:
    scores = attention["position_scores"]
    fig = _figure(10, 7.5)
    for k, scheme in enumerate(scores["schemes"]):
        entry = scores[scheme]
        values = np.asarray(entry["scores"], dtype=float)
        ax = fig.add_subplot(2, 2, k + 1)
        ax.plot(np.arange(values.size), values, linewidth=0.8)
        ax.set_xlabel("image token index (row-major)" if result_is_patch else "cell (row-major)")
        ax.set_ylabel("mean attention received" if result_is_patch else "mean attention mass in the cell")
        ax.set_title(f"{scheme.replace('_', ' ')} (layer {scores['layer']})", fontsize=10)
        ax = fig.add_subplot(2, 2, k + 3)
        image = ax.imshow(values.reshape(grid["rows"], grid["cols"]), cmap="viridis", interpolation="nearest")
        if entry["mean_row"] is not None:
            ax.plot([entry["mean_col"]], [entry["mean_row"]], marker="+", color="red", markersize=12, mew=2)
        ax.set_title(f"score-weighted row {_fmt(entry['mean_row'], '.1f')}, col {_fmt(entry['mean_col'], '.1f')}",
                     fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle("Attention-based scores by position: averaged over all queries vs. from the last token")
    return fig


def write_figures(result: dict[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Write the PNGs of ``result`` into ``out_dir``; returns figure name -> file name (attention: when measured)."""
    out = Path(out_dir)
    figures: dict[str, Figure] = {"keep_heatmaps": _heatmaps(result), "row_col_profiles": _profiles(result)}
    if any("views" in m for m in result["methods"].values()):
        figures["keep_heatmaps_by_view"] = _heatmaps_by_view(result)
    attention = result.get("attention")
    if attention and attention.get("samples"):
        figures["attention_shares"] = _shares(attention)
        figures["position_scores"] = _position_scores(attention, result["grid"],
                                                      result.get("coordinates", "patch") == "patch")
    written = {}
    for name, fig in figures.items():
        fig.savefig(out / FIGURE_FILES[name])
        written[name] = FIGURE_FILES[name]
    return written
