"""Pareto plot: a PNG with the trials and the front, for both colourings and for no trials."""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptive_svdprune.tradeoffs.pareto import pareto_front
from adaptive_svdprune.tradeoffs.plots import figure_to_array, pareto_figure, plot_pareto
from adaptive_svdprune.tradeoffs.results import ResultSet, TrialResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("color_by", ["variance_threshold", "budget"])
def test_writes_png(tmp_path: Path, trials: list[TrialResult], color_by: str) -> None:
    path = plot_pareto(
        ResultSet(trials=trials), pareto_front(trials), tmp_path / "a.png", task="gqa", color_by=color_by
    )  # type: ignore[arg-type]
    assert path == tmp_path / "a.png"
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_directory_target_and_no_trials(tmp_path: Path) -> None:
    path = plot_pareto([], [], tmp_path / "out")
    assert path == tmp_path / "out" / "pareto.png" and path.read_bytes()[:8] == PNG_MAGIC


def test_figure_content(trials: list[TrialResult]) -> None:
    fig = pareto_figure(trials, pareto_front(trials), task="textvqa")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "TFLOPs per sample" and ax.get_ylabel() == "accuracy"
    assert "textvqa" in ax.get_title()
    step = ax.lines[0]
    assert list(step.get_xdata()) == [0.5, 1.0, 2.0] and list(step.get_ydata()) == [0.5, 0.6, 0.7]
    pixels = figure_to_array(fig)
    assert pixels.ndim == 3 and pixels.shape[2] == 4


def test_bad_color_by(trials: list[TrialResult]) -> None:
    with pytest.raises(ValueError, match=r"color_by must be .* got 'kept'"):
        pareto_figure(trials, [], color_by="kept")  # type: ignore[arg-type]
