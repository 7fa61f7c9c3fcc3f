"""Pareto front of search trials: higher accuracy and fewer FLOPs.

Point ``a`` *dominates* ``b`` when ``a.accuracy >= b.accuracy`` and ``a.tflops <= b.tflops`` with at least
one of the two strict. The front is the set of points no other point dominates.

Ties: identical points (same accuracy *and* same TFLOPs) do not dominate each other, so **all of them are
kept** -- two settings that cost and score the same are both worth reporting. Points with the same TFLOPs
but lower accuracy (or the same accuracy but more TFLOPs) are dominated and dropped. The front is returned
sorted by TFLOPs ascending (hence accuracy ascending), ties in input order, so the result is deterministic.

Example:
    >>> pareto_indices(accuracy=[0.5, 0.7, 0.6, 0.7], tflops=[1.0, 3.0, 3.0, 2.0])
    [0, 3]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, TypeVar

__all__ = ["SupportsAccuracyFlops", "dominates", "pareto_front", "pareto_indices"]


class SupportsAccuracyFlops(Protocol):
    """Anything with ``accuracy`` and ``tflops`` (e.g. :class:`~adaptive_svdprune.tradeoffs.results.TrialResult`)."""

    @property
    def accuracy(self) -> float: ...

    @property
    def tflops(self) -> float: ...


P = TypeVar("P", bound=SupportsAccuracyFlops)


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether ``a = (accuracy, tflops)`` dominates ``b``.

    Example:
        >>> dominates((0.7, 1.0), (0.7, 2.0)), dominates((0.7, 1.0), (0.7, 1.0))
        (True, False)
    """
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def _check(name: str, values: Sequence[float]) -> list[float]:
    out = [float(v) for v in values]
    for index, value in enumerate(out):
        if math.isnan(value):
            raise ValueError(f"{name} must not contain NaN, got {name}[{index}]={value}")
    return out


def pareto_indices(accuracy: Sequence[float], tflops: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points, sorted by TFLOPs then input order. O(n log n).

    Sort by TFLOPs, then sweep the groups of equal TFLOPs keeping the best accuracy seen so far: a group's
    best points survive only if they beat every cheaper point strictly.

    Example:
        >>> pareto_indices([0.5, 0.5, 0.4], [1.0, 1.0, 0.5])  # identical points are all kept
        [2, 0, 1]
    """
    if len(accuracy) != len(tflops):
        raise ValueError(f"accuracy and tflops must have the same length, got {len(accuracy)=} and {len(tflops)=}")
    acc, cost = _check("accuracy", accuracy), _check("tflops", tflops)
    order = sorted(range(len(acc)), key=lambda i: (cost[i], i))
    front: list[int] = []
    best = -math.inf
    start = 0
    while start < len(order):
        stop = start
        while stop < len(order) and cost[order[stop]] == cost[order[start]]:
            stop += 1
        group = order[start:stop]
        group_best = max(acc[i] for i in group)
        if group_best > best:
            front.extend(i for i in group if acc[i] == group_best)
            best = group_best
        start = stop
    return front


def pareto_front(points: Sequence[P]) -> list[P]:
    """The non-dominated points (accuracy up, TFLOPs down), sorted by TFLOPs; identical points all kept.

    Example:
        >>> from adaptive_svdprune.tradeoffs.results import TrialResult
        >>> trials = [TrialResult(str(i), {}, a, f, 0.0) for i, (a, f) in enumerate([(0.6, 2), (0.5, 3), (0.4, 1)])]
        >>> [t.trial_id for t in pareto_front(trials)]
        ['2', '0']
    """
    keep = pareto_indices([p.accuracy for p in points], [p.tflops for p in points])
    return [points[i] for i in keep]
