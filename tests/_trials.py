"""Search trials at chosen (accuracy, TFLOPs) points, shared by the trade-off, profile and search tests."""

from __future__ import annotations

from collections.abc import Sequence

from adaptive_svdprune.tradeoffs.results import TrialResult

__all__ = ["make_trials"]


def make_trials(
    points: Sequence[tuple[float, float]], budgets: Sequence[int | None] | None = None
) -> list[TrialResult]:
    """Trials ``t0, t1, ...`` at (accuracy, tflops) points, epsilon 0.5 + 0.05 i."""
    budgets = budgets or [None] * len(points)
    return [
        TrialResult(
            f"t{i}",
            {"variance_threshold": round(0.5 + 0.05 * i, 4), "budget": b or "adaptive"},
            a,
            f,
            100.0 * f,
            a - 0.5 * f,
        )
        for i, ((a, f), b) in enumerate(zip(points, budgets, strict=True))
    ]
